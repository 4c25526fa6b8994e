//! Unit tests of `token.rs`: the token rules, one by one.

use super::*;
use serde_json::json;

fn verifier() -> Verifier {
    Verifier::new(None, ClaimRules::default(), None, Duration::from_secs(60))
}

fn none() -> ClaimRules {
    ClaimRules::default()
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn sub_present_but_invalid_never_falls_back_to_id() {
    let v = verifier();
    let c = claims(json!({"exp": 2e9, "sub": 7, "id": "u1"}));
    assert!(v.check_claims(&c, 1e9, &none()).is_err());
    let c = claims(json!({"exp": 2e9, "id": "u1"}));
    assert_eq!(v.check_claims(&c, 1e9, &none()).unwrap().0.sub, "u1");
}

#[test]
fn leeway_applies_to_exp_nbf_and_iat() {
    let v = verifier();
    assert!(
        v.check_claims(&claims(json!({"exp": 1000, "sub": "u"})), 1059.0, &none())
            .is_ok()
    );
    assert!(
        v.check_claims(&claims(json!({"exp": 1000, "sub": "u"})), 1061.0, &none())
            .is_err()
    );
    assert!(
        v.check_claims(
            &claims(json!({"exp": 9e9, "nbf": 1100, "sub": "u"})),
            1000.0,
            &none()
        )
        .is_err()
    );
    assert!(
        v.check_claims(
            &claims(json!({"exp": 9e9, "iat": 1050, "sub": "u"})),
            1000.0,
            &none()
        )
        .is_ok()
    );
    assert!(
        v.check_claims(&claims(json!({"exp": "9e9", "sub": "u"})), 1000.0, &none())
            .is_err()
    );
}

#[test]
fn audience_may_be_a_string_or_a_list() {
    let v = verifier();
    let rules = ClaimRules {
        issuer: Some("https://a".into()),
        audience: Some("https://a".into()),
    };
    let ok = claims(json!({"exp": 9e9, "sub": "u", "iss": "https://a", "aud": ["x", "https://a"]}));
    assert!(v.check_claims(&ok, 1.0, &rules).is_ok());
    let bad = claims(json!({"exp": 9e9, "sub": "u", "iss": "https://a", "aud": "https://b"}));
    assert!(v.check_claims(&bad, 1.0, &rules).is_err());
}
