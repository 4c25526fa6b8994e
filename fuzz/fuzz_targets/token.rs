//! Bearer-token verification on arbitrary input. Two modes, chosen by the
//! first byte: the rest as a raw token (must never verify: the fuzzer cannot
//! forge an HMAC), or the rest as a JWT payload that this target signs with
//! the secret (exercises every claim rule: whatever verifies must name a
//! valid user). Never a panic in either.
#![no_main]

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use tasks_api::{
    auth::{ClaimRules, Verifier},
    config::Secret,
};

const SECRET: &str = "fuzz-secret-0123456789-abcdefghijklmnop";

fn signed(payload: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#), B64.encode(payload));
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes())
        .unwrap_or_else(|_| unreachable!());
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let secret = Secret::new(SECRET);
    let verifier = Verifier::new(Some(&secret), ClaimRules::default(), None, Duration::from_secs(60));
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(identity) = futures::executor::block_on(verifier.verify(token)) {
            panic!("accepted a forged token for {:?}", identity.sub);
        }
    } else if let Ok(identity) = futures::executor::block_on(verifier.verify(&signed(rest))) {
        let n = identity.sub.chars().count();
        assert!((1..=255).contains(&n) && !identity.sub.contains('\0'));
    }
});
