//! The one timestamp module: how an instant is read from a client (and from
//! SQLite's text), written on the wire, and stored as SQLite text. Both
//! backends keep microseconds, so every instant is cut to them on the way
//! in, and a client reads back on SQLite exactly what it reads on
//! PostgreSQL (which decodes `timestamptz` with tokio-postgres's chrono
//! support).

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time at storage precision.
pub fn now() -> DateTime<Utc> {
    micros(Utc::now())
}

/// `ts` cut to microseconds.
fn micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(ts.timestamp_micros()).unwrap_or(ts)
}

/// An RFC 3339 date-time with seconds and an explicit offset (chrono's
/// parser demands both, and also takes a space or `t` for `T`), as UTC at
/// storage precision. What clients send (`due_date`, `due_before`) and
/// what SQLite stores ([`storage_text`], or older and hand-edited forms).
pub fn parse_input(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|ts| micros(ts.with_timezone(&Utc)))
}

/// The wire form: RFC 3339 UTC with `Z`, fractional digits only when
/// present (3, 6 or 9 of them), so a `due_date` sent with whole seconds
/// comes back exactly as sent.
pub fn format(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// SQLite's stored form: fixed width (always six fractional digits), so
/// that text order is time order in its indexes.
pub fn storage_text(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `#[serde(with = "time::rfc3339")]`: [`format`] out, [`parse_input`] in.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_input(&text)
            .ok_or_else(|| D::Error::custom("not an RFC 3339 date-time with an offset"))
    }

    /// The same for an `Option`, `null` for `None`.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            ts: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => super::serialize(ts, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Wire(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Wire>::deserialize(d)?.map(|Wire(ts)| ts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form is the one clients have always read: these literals
    /// are what earlier versions wrote for these instants.
    #[test]
    fn instants_are_written_as_before() {
        for (given, written) in [
            ("2026-12-01T10:00:00+01:00", "2026-12-01T09:00:00Z"),
            ("2026-12-01T09:00:00.5Z", "2026-12-01T09:00:00.500Z"),
            ("2026-11-30T10:11:12.123456Z", "2026-11-30T10:11:12.123456Z"),
            ("2026-11-30T10:11:12.120000Z", "2026-11-30T10:11:12.120Z"),
            ("0001-01-01T00:00:00.000001Z", "0001-01-01T00:00:00.000001Z"),
        ] {
            let ts = parse_input(given).unwrap();
            assert_eq!(format(&ts), written, "{given}");
            assert_eq!(parse_input(written), Some(ts), "{written}");
        }
        // Past year 9999 (only an offset gets there), written as chrono does.
        let late = parse_input("9999-12-31T23:59:59.999999-00:30").unwrap();
        assert_eq!(format(&late), "+10000-01-01T00:29:59.999999Z");
        // Cut to storage precision on the way in.
        let fine = parse_input("2026-12-01T09:00:00.1234567Z").unwrap();
        assert_eq!(format(&fine), "2026-12-01T09:00:00.123456Z");
        for bad in [
            "2026-12-01T10:00:00",
            "2026-12-01",
            "",
            "2026-02-30T00:00:00Z",
        ] {
            assert_eq!(parse_input(bad), None, "{bad}");
        }
    }

    #[test]
    fn stored_text_is_fixed_width_and_reads_back() {
        let ts = parse_input("2026-12-01T09:00:00Z").unwrap();
        assert_eq!(storage_text(&ts), "2026-12-01T09:00:00.000000Z");
        assert_eq!(parse_input(&storage_text(&ts)), Some(ts));
        assert_eq!(parse_input("2026-12-01t09:00:00.000000z"), Some(ts));
    }
}
