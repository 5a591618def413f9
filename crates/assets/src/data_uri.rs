//! `data:` URIs and raw base64. Fuzzed by `fuzz/fuzz_targets/data_uri.rs`.
//!
//! Grammar accepted: `data:<type>/<subtype>[;<name>=<value>]*;base64,<base64>`, with the
//! `data:` prefix and `;base64` matched case-insensitively. Base64 is required (Runway's inputs
//! page: "non-base64 may be rejected"); padding may be omitted and ASCII whitespace inside the
//! data is skipped, as the Fetch standard's forgiving base64 does.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const FORGIVING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// A parsed data URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUri {
    /// The media type's essence, lowercased (not yet checked against any allowlist).
    pub essence: String,
    /// The decoded bytes.
    pub bytes: Vec<u8>,
}

/// Why a data URI was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataUriError {
    /// Structurally malformed (detail for the message).
    Malformed(&'static str),
    /// No media type, or one that does not parse.
    MissingType,
    /// The data is not base64 (no `;base64`), or does not decode.
    NotBase64(&'static str),
}

impl DataUriError {
    /// The error message: the source document's reason text, then what exactly is wrong.
    pub fn message(&self) -> String {
        match self {
            DataUriError::Malformed(d) | DataUriError::NotBase64(d) => {
                format!("Invalid data URI. {d}")
            }
            DataUriError::MissingType => UNSUPPORTED.to_string(),
        }
    }
}

/// The source document's reason text for a missing or unsupported media type.
pub const UNSUPPORTED: &str =
    "Unsupported asset type. Data URIs must include the content type of the value they encode.";

/// Whether a reference is (meant to be) a data URI: starts with `data:` in any case.
pub fn is_data_uri(s: &str) -> bool {
    s.len() >= 5 && s.as_bytes()[..5].eq_ignore_ascii_case(b"data:")
}

/// Decodes standard base64, skipping ASCII whitespace, padding optional.
pub fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let has_ws = data.bytes().any(|b| b.is_ascii_whitespace());
    if has_ws {
        let compact: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        FORGIVING.decode(compact).ok()
    } else {
        FORGIVING.decode(data).ok()
    }
}

/// Parses a data URI. The caller checks the size limit first (on the string as sent).
pub fn parse(input: &str) -> Result<DataUri, DataUriError> {
    if !is_data_uri(input) {
        return Err(DataUriError::Malformed("It must start with \"data:\"."));
    }
    let rest = &input[5..];
    let Some((header, data)) = rest.split_once(',') else {
        return Err(DataUriError::Malformed("A comma must separate the media type from the data."));
    };
    let mut params: Vec<&str> = header.split(';').map(str::trim).collect();
    let last = params.last().copied().unwrap_or("");
    if !last.eq_ignore_ascii_case("base64") {
        return Err(DataUriError::NotBase64(
            "The data must be base64-encoded, declared with \";base64,\" right before the data.",
        ));
    }
    params.pop();
    let media = params.join(";");
    let essence = if media.trim().is_empty() {
        return Err(DataUriError::MissingType);
    } else {
        crate::content_type::parse_essence(&media).ok_or(DataUriError::MissingType)?
    };
    let bytes = decode_base64(data)
        .ok_or(DataUriError::NotBase64("The data after the comma is not valid base64."))?;
    if bytes.is_empty() {
        return Err(DataUriError::Malformed("It carries no data."));
    }
    Ok(DataUri { essence, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_uris_parse() {
        let d = parse("data:image/png;base64,iVBORw0KGgo=").unwrap();
        assert_eq!(d.essence, "image/png");
        assert_eq!(d.bytes, b"\x89PNG\r\n\x1a\n");
        let d = parse("DATA:Image/JPG;name=a.jpg;BASE64,/9j/4A").unwrap();
        assert_eq!(d.essence, "image/jpg");
        assert_eq!(d.bytes, [0xff, 0xd8, 0xff, 0xe0]);
        let d = parse("data:video/mp4;base64,AAAA\nAAAA").unwrap();
        assert_eq!(d.bytes.len(), 6);
    }

    #[test]
    fn malformed_uris_are_invalid() {
        for s in [
            "data:image/png;base64",
            "data:image/pngbase64iVBOR",
            "image/png;base64,iVBORw0KGgo=",
            "data:image/png;base64,",
        ] {
            let e = parse(s).expect_err(s);
            assert!(e.message().starts_with("Invalid data URI."), "{s}: {e:?}");
        }
    }

    #[test]
    fn base64_is_required_and_must_decode() {
        for s in [
            "data:image/png,%89PNG",
            "data:image/png;charset=utf-8,abc",
            "data:image/png;base64,!!!!",
            "data:image/png;base64,iVBORw0KGgo=x",
            "data:image/png;base64,iVBORw0KGgo==",
            "data:image/png;base64,iVBO-w0KGgo",
        ] {
            assert!(matches!(parse(s), Err(DataUriError::NotBase64(_))), "{s}");
        }
    }

    #[test]
    fn missing_or_junk_media_type_is_unsupported() {
        for s in [
            "data:;base64,iVBORw0KGgo=",
            "data:base64,iVBORw0KGgo=",
            "data:image;base64,iVBORw0KGgo=",
            "data:image/png,text/html;base64,iVBORw0KGgo=",
        ] {
            let r = parse(s);
            assert!(
                matches!(r, Err(DataUriError::MissingType) | Err(DataUriError::NotBase64(_))),
                "{s}: {r:?}"
            );
        }
        assert_eq!(parse("data:;base64,iVBORw0KGgo="), Err(DataUriError::MissingType));
        assert_eq!(parse("data:base64,iVBORw0KGgo="), Err(DataUriError::MissingType));
        assert_eq!(
            DataUriError::MissingType.message(),
            "Unsupported asset type. Data URIs must include the content type of the value they encode."
        );
    }
}
