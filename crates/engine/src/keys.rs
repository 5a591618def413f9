//! API keys: `key_` followed by 128 lowercase hex characters from the OS random source.
//!
//! Only a SHA-256 digest and a short display prefix are ever stored. The format is checked
//! before any store lookup, and error messages say what is wrong without echoing the key.

use sha2::{Digest, Sha256};

/// The fixed prefix of every key.
pub const PREFIX: &str = "key_";
/// Hex characters after the prefix.
pub const HEX_LEN: usize = 128;

/// A fresh key from the operating system's random source.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; HEX_LEN / 2];
    getrandom::fill(&mut raw)?;
    Ok(format!("{PREFIX}{}", hex::encode(raw)))
}

/// Why a string is not a well-formed key, in words that say what to change.
pub fn check_format(key: &str) -> Result<(), String> {
    let trimmed = key.trim_end();
    if trimmed.len() != key.len() {
        return Err("the API key ends with whitespace; remove the trailing spaces or newline".into());
    }
    if key.trim_start().len() != key.len() {
        return Err("the API key starts with whitespace; remove it".into());
    }
    let Some(hex) = key.strip_prefix(PREFIX) else {
        if key.starts_with(crate::admin_keys::PREFIX) {
            return Err("this is an admin key, which only the admin API (/admin/v1) accepts; use an API key                         ('key_…') here"
                .into());
        }
        return Err(format!("API keys start with '{PREFIX}'"));
    };
    if hex.len() != HEX_LEN {
        return Err(format!(
            "API keys are '{PREFIX}' followed by exactly {HEX_LEN} hexadecimal characters; this one has {}",
            hex.chars().count()
        ));
    }
    if let Some((i, _)) = hex.char_indices().find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "API keys contain only lowercase hexadecimal characters (0-9, a-f) after '{PREFIX}'; \
             character {} is not one",
            i + PREFIX.len() + 1
        ));
    }
    Ok(())
}

/// The SHA-256 digest under which a key is stored.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A short, non-secret label for a key: the prefix and its first eight hex characters.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(PREFIX.len() + 8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        check_format(&a).unwrap();
        assert_eq!(a.len(), 4 + 128);
    }

    #[test]
    fn malformed_keys_say_what_is_wrong_without_echoing() {
        let good = generate().unwrap();
        let cases = [
            (format!("{good} "), "whitespace"),
            (format!("{good}\n"), "whitespace"),
            (good.replacen("key_", "sk_x", 1), "start with"),
            (good[..100].to_string(), "exactly 128"),
            (good.to_uppercase().replacen("KEY_", "key_", 1), "lowercase hexadecimal"),
            (format!("{}g", &good[..good.len() - 1]), "character 132"),
        ];
        for (k, want) in cases {
            let msg = check_format(&k).unwrap_err();
            assert!(msg.contains(want), "{msg}");
            assert!(!msg.contains(&k[4..20]), "message echoes the key: {msg}");
        }
    }

    #[test]
    fn digest_is_sha256() {
        assert_eq!(
            hex::encode(digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
