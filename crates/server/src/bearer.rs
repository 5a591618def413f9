//! The one reading of `Authorization: Bearer <token>`, for both dialects and the admin API.
//!
//! The scheme is matched without regard to case (RFC 7235 §2.1: `bearer`, `Bearer` and `BEARER`
//! are the same scheme) and separated from the token by one or more spaces; the token is one
//! word. Each caller turns [`Credential::Missing`] and [`Credential::Malformed`] into its own
//! dialect's error. Hand-written rather than `headers::Authorization<Bearer>` (axum-extra): it
//! is a dozen lines, and a typed header's rejection would not say what to send in each dialect.

use axum::http::{HeaderMap, header};

/// What the `Authorization` header of a request holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header.
    Missing,
    /// A bearer token.
    Bearer(&'a str),
    /// A header that is not `Bearer <token>` (another scheme, no token, not text).
    Malformed,
}

/// Reads the request's `Authorization` header.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credential::Missing;
    };
    let Ok(text) = value.to_str() else {
        return Credential::Malformed;
    };
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Credential::Malformed;
    };
    let token = rest.trim_start_matches(' ').trim_end();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Credential::Malformed;
    }
    Credential::Bearer(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_one_word() {
        for ok in ["Bearer key_1", "bearer key_1", "BEARER key_1", "Bearer   key_1", "bEaReR key_1 "] {
            assert_eq!(credential(&with(ok)), Credential::Bearer("key_1"), "{ok}");
        }
        for bad in ["Basic a2V5", "Bearer", "Bearer ", "Bearerkey_1", "Bearer key_1 key_2", "key_1"] {
            assert_eq!(credential(&with(bad)), Credential::Malformed, "{bad}");
        }
        assert_eq!(credential(&HeaderMap::new()), Credential::Missing);
    }
}
