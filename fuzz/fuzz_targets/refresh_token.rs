//! Credentials as presented: refresh tokens (`api::auth::RefreshToken::parse`, the
//! records they name), the bearer header and the access cookie
//! (`api::auth::presented_token`), and access JWTs (`JwtKeys::verify`, HS256 only).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use safe_yolo_api::auth::{JwtKeys, RefreshToken, presented_token};

fn keys() -> &'static JwtKeys {
    static KEYS: OnceLock<JwtKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join("safe-yolo-fuzz-jwt");
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        JwtKeys::load_or_create(&dir).expect("a JWT key in the temporary directory")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RefreshToken::parse(text) {
        Some(RefreshToken::First { session }) => {
            assert_eq!(session.matches('.').count(), 1, "{session}");
        }
        Some(RefreshToken::Rotated { session, record }) => {
            assert_eq!(session.matches('.').count(), 1, "{session}");
            let hash = record
                .strip_prefix(&format!("{session}."))
                .expect("record under session");
            assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        None => {}
    }
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(text) {
        headers.insert(http::header::COOKIE, v.clone());
        if let Some(tok) = presented_token(&headers) {
            assert!(text.contains(tok));
        }
        headers.insert(http::header::AUTHORIZATION, v);
        if let Some(tok) = presented_token(&headers) {
            assert!(text.contains(tok));
        }
    }
    if let Ok(claims) = keys().verify(text) {
        assert_eq!(claims.typ, "access");
    }
});
