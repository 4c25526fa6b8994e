//! Unit tests of `config.rs`: every variable read, defaulted and refused
//! with its sentence.

use super::*;
use std::collections::HashMap;

fn load(vars: &[(&str, &str)], dev: bool) -> Result<Config, Vec<String>> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(&|k| map.get(k).cloned(), dev)
}

/// `vars` after a valid `BETTER_AUTH_SECRET`, outside dev mode.
fn with_secret(vars: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    let secret = "s".repeat(32);
    let mut all = vec![("BETTER_AUTH_SECRET", secret.as_str())];
    all.extend_from_slice(vars);
    load(&all, false)
}

#[test]
fn missing_secret_is_an_error_outside_dev_mode() {
    let problems = load(&[], false).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("BETTER_AUTH_SECRET is not set"));
    assert!(load(&[], true).is_ok());
    // A JWKS alone is enough: Better Auth's own tokens need no secret.
    let config = load(&[("BETTER_AUTH_URL", "https://auth.example.com/")], false).unwrap();
    assert_eq!(
        config.jwks_url.as_deref(),
        Some("https://auth.example.com/api/auth/jwks")
    );
    assert_eq!(
        config.jwks_issuer.as_deref(),
        Some("https://auth.example.com")
    );
    assert_eq!(
        config.jwt_issuer, None,
        "HS tokens keep no iss rule by default"
    );
}

#[test]
fn mcp_allowed_hosts_default_to_loopback_and_star_turns_the_check_off() {
    let hosts = |v: &str| with_secret(&[("MCP_ALLOWED_HOSTS", v)]);
    let default = with_secret(&[]).unwrap().mcp_allowed_hosts;
    assert_eq!(default, ["localhost", "127.0.0.1", "::1"]);
    let listed = hosts(" api.example.com, api.example.com:8443 ").unwrap();
    assert_eq!(
        listed.mcp_allowed_hosts,
        ["api.example.com", "api.example.com:8443"]
    );
    assert!(hosts("*").unwrap().mcp_allowed_hosts.is_empty());
    for bad in ["*,localhost", "https://api.example.com"] {
        let problems = hosts(bad).unwrap_err();
        assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let problems = load(
        &[
            ("BETTER_AUTH_SECRET", "short"),
            ("DATABASE_URL", "mysql://x"),
            ("PORT", "eighty"),
        ],
        false,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn defaults_match_the_readme() {
    let config = with_secret(&[]).unwrap();
    assert_eq!(config.port, 8000);
    assert_eq!(config.host.to_string(), "127.0.0.1");
    assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(config.cors_origins, ["http://localhost:3000"]);
    assert!(!format!("{config:?}").contains(&"s".repeat(32)));
    assert_eq!(config.db_prepared_statements, None, "auto");
    assert_eq!(config.db_shared_read_connections, None, "auto");
    assert_eq!(config.max_connections_per_ip, 1024);
    assert_eq!(config.client_stall_timeout, Duration::from_secs(30));
}

#[test]
fn a_zero_stall_timeout_is_refused() {
    let problems = with_secret(&[("CLIENT_STALL_TIMEOUT_SECONDS", "0")]).unwrap_err();
    assert_eq!(
        problems,
        ["CLIENT_STALL_TIMEOUT_SECONDS must be at least 1."]
    );
}

#[test]
fn per_ip_connection_cap_is_a_number_and_zero_disables_it() {
    let with = |v: &str| with_secret(&[("MAX_CONNECTIONS_PER_IP", v)]);
    assert_eq!(with("4").unwrap().max_connections_per_ip, 4);
    assert_eq!(with("0").unwrap().max_connections_per_ip, 0);
    assert_eq!(
        with("-1").unwrap_err(),
        ["MAX_CONNECTIONS_PER_IP must be a whole number, got \"-1\"."]
    );
}

#[test]
fn http2_cleartext_is_off_unless_on() {
    let with = |v: &str| with_secret(&[("HTTP2_CLEARTEXT", v)]);
    assert!(!with_secret(&[]).unwrap().http2_cleartext);
    assert!(with("on").unwrap().http2_cleartext);
    assert!(!with("off").unwrap().http2_cleartext);
    assert_eq!(
        with("yes").unwrap_err(),
        ["HTTP2_CLEARTEXT must be off or on, got \"yes\"."]
    );
}

#[test]
fn shared_read_connections_are_auto_or_fewer_than_the_pool() {
    let with = |v: &str| with_secret(&[("DB_POOL_SIZE", "4"), ("DB_SHARED_READ_CONNECTIONS", v)]);
    assert_eq!(with("auto").unwrap().db_shared_read_connections, None);
    assert_eq!(with("0").unwrap().db_shared_read_connections, Some(0));
    assert_eq!(with("3").unwrap().db_shared_read_connections, Some(3));
    for bad in ["4", "-1", "two"] {
        assert_eq!(
            with(bad).unwrap_err(),
            [format!(
                "DB_SHARED_READ_CONNECTIONS must be auto or a number below DB_POOL_SIZE (4), got {bad:?}."
            )],
        );
    }
}

#[test]
fn prepared_statements_are_auto_on_or_off() {
    let with = |v: &str| with_secret(&[("DB_PREPARED_STATEMENTS", v)]);
    assert_eq!(with("auto").unwrap().db_prepared_statements, None);
    assert_eq!(with("on").unwrap().db_prepared_statements, Some(true));
    assert_eq!(with("off").unwrap().db_prepared_statements, Some(false));
    assert_eq!(
        with("yes").unwrap_err(),
        ["DB_PREPARED_STATEMENTS must be auto, on or off, got \"yes\"."]
    );
}
