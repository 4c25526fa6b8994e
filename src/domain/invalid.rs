//! What is wrong with an input, field by field. The validators return these
//! values and know nothing of status codes; the HTTP layer decides that a
//! body's [`Invalid`] is a 422 and a query's [`FieldError`] a 400.

use serde::Serialize;

/// Most field errors kept (and listed in a problem body); the rest are only
/// counted. A 64 KB body can hold 32,000 bad items, and answering each would
/// make the 422 forty times the size of the request.
pub const ERRORS_MAX: usize = 20;

/// One field-level complaint, rendered in the problem's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The body field (`title`, `tags[3]`) or query parameter at fault.
    pub field: String,
    /// What is wrong with it, phrased to follow the field name.
    pub message: String,
}

impl FieldError {
    /// Shorthand used by the validators.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every bad field of one input, in the order they were found: the first
/// [`ERRORS_MAX`] in full, the others only counted, so collecting them costs
/// the same whatever a client sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalid {
    errors: Vec<FieldError>,
    more: usize,
}

impl Invalid {
    /// Records one more bad field.
    pub fn push(&mut self, error: FieldError) {
        if self.errors.len() < ERRORS_MAX {
            self.errors.push(error);
        } else {
            self.more += 1;
        }
    }

    /// The errors kept, at most [`ERRORS_MAX`].
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// No error was recorded: the input is valid.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The API's `detail` text: `field message` of the errors kept, joined by
/// `; `, then how many more there are ("; and 31980 more errors"). Every
/// front door (HTTP problem, MCP tool error) shows this same text.
impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{} {}", e.field, e.message)?;
        }
        match self.more {
            0 => Ok(()),
            1 => f.write_str("; and 1 more error"),
            more => write!(f, "; and {more} more errors"),
        }
    }
}

impl FromIterator<FieldError> for Invalid {
    fn from_iter<I: IntoIterator<Item = FieldError>>(errors: I) -> Self {
        let mut invalid = Self::default();
        for error in errors {
            invalid.push(error);
        }
        invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HTTP tests see the first 20 and "and 31980 more errors".
    #[test]
    fn one_error_past_the_cap_is_counted_in_the_singular() {
        let invalid: Invalid = (0..=ERRORS_MAX)
            .map(|i| FieldError::new(format!("tags[{i}]"), "must be a string"))
            .collect();
        assert!(
            invalid
                .to_string()
                .ends_with("; tags[19] must be a string; and 1 more error")
        );
    }
}
