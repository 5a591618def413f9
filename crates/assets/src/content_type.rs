//! Which media types each asset kind accepts, and strict parsing of a `Content-Type` value.
//!
//! Matching is on the parsed essence (`type/subtype`, lowercased, parameters dropped). A value
//! that is not exactly one media type (`image/png, text/html`, `image/png text/html`, a second
//! type hidden in the parameters) is refused, as go-camo does. File extensions are never looked
//! at: the header (and then the bytes) decide.

use crate::AssetKind;

/// Image types accepted (Runway's inputs page: JPEG, PNG, WebP; no GIF).
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/jpg", "image/png", "image/webp"];

/// Video types accepted (Runway's inputs page).
pub const VIDEO_TYPES: &[&str] =
    &["video/mp4", "video/webm", "video/quicktime", "video/mov", "video/ogg", "video/h264"];

/// Audio types accepted: MP3, AAC, FLAC, PCM (WAV) and ALAC (in MP4), under the spellings
/// servers actually send.
pub const AUDIO_TYPES: &[&str] = &[
    "audio/mpeg",
    "audio/mp3",
    "audio/mpeg3",
    "audio/aac",
    "audio/x-aac",
    "audio/aacp",
    "audio/flac",
    "audio/x-flac",
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "audio/mp4",
    "audio/x-m4a",
    "audio/m4a",
];

/// Generic "some bytes" types that say nothing about the media; refused with the source
/// document's dedicated message.
pub const GENERIC_TYPES: &[&str] = &[
    "application/octet-stream",
    "binary/octet-stream",
    "application/binary",
    "application/unknown",
    "application/force-download",
    "application/x-download",
    "application/download",
];

/// The accepted types for a kind.
pub fn accepted(kind: AssetKind) -> &'static [&'static str] {
    match kind {
        AssetKind::Image => IMAGE_TYPES,
        AssetKind::Video => VIDEO_TYPES,
        AssetKind::Audio => AUDIO_TYPES,
    }
}

/// The kind a media type belongs to, if it is accepted for any kind.
pub fn kind_of(essence: &str) -> Option<AssetKind> {
    [AssetKind::Image, AssetKind::Video, AssetKind::Audio]
        .into_iter()
        .find(|k| accepted(*k).contains(&essence))
}

/// The one spelling used in [`crate::Asset::media_type`] for each accepted alias.
pub fn canonical(essence: &str) -> &str {
    match essence {
        "image/jpg" => "image/jpeg",
        "video/mov" => "video/quicktime",
        "audio/mp3" | "audio/mpeg3" => "audio/mpeg",
        "audio/x-aac" | "audio/aacp" => "audio/aac",
        "audio/x-flac" => "audio/flac",
        "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "audio/wav",
        "audio/x-m4a" | "audio/m4a" => "audio/mp4",
        other => other,
    }
}

fn is_token(s: &str) -> bool {
    // RFC 9110 token characters.
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses one media type (`type/subtype *( ; param=value )`) and returns its lowercased essence,
/// or `None` when the value is not exactly one well-formed media type.
pub fn parse_essence(value: &str) -> Option<String> {
    let mut parts = value.split(';');
    let essence = parts.next()?.trim();
    let (t, s) = essence.split_once('/')?;
    if !is_token(t) || !is_token(s) {
        return None;
    }
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (name, v) = p.split_once('=')?;
        if !is_token(name.trim()) {
            return None;
        }
        let v = v.trim();
        let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
        // A parameter value that is neither a token nor a quoted string, e.g. `x=text/html`
        // with a slash, is how a second type gets smuggled past prefix matching.
        if !quoted && !is_token(v) {
            return None;
        }
    }
    Some(essence.to_ascii_lowercase())
}

/// The outcome of judging a `Content-Type` for a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeVerdict {
    /// Accepted; the canonical essence.
    Ok(String),
    /// No header.
    Missing,
    /// A generic type such as `application/octet-stream` (the raw value).
    Generic(String),
    /// Any other refused value (the raw value).
    Unsupported(String),
}

/// Judges a raw `Content-Type` value (or its absence) for a kind.
pub fn judge(raw: Option<&str>, kind: AssetKind) -> TypeVerdict {
    let Some(raw) = raw else {
        return TypeVerdict::Missing;
    };
    if raw.trim().is_empty() {
        return TypeVerdict::Missing;
    }
    match parse_essence(raw) {
        Some(e) if accepted(kind).contains(&e.as_str()) => TypeVerdict::Ok(canonical(&e).to_string()),
        Some(e) if GENERIC_TYPES.contains(&e.as_str()) => TypeVerdict::Generic(e),
        _ => TypeVerdict::Unsupported(raw.to_string()),
    }
}

/// The message for a refused `Content-Type` (source document's reason texts).
pub fn message(v: &TypeVerdict) -> String {
    match v {
        TypeVerdict::Ok(_) => String::new(),
        TypeVerdict::Missing => {
            "Assets must use an approved Content-Type response header. We received none.".to_string()
        }
        TypeVerdict::Generic(e) => format!(
            "Assets must use an approved Content-Type response header. We received \"{e}\", which is not allowed."
        ),
        TypeVerdict::Unsupported(raw) => {
            format!("Unsupported Content-Type response header: \"{}\".", raw.escape_debug())
        }
    }
}

/// The file extension of a (canonical) media type, for stored files' URLs; `bin` when unknown.
pub fn extension_of(media_type: &str) -> &'static str {
    match media_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/bmp" => "bmp",
        "image/avif" => "avif",
        "image/svg+xml" => "svg",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "video/ogg" => "ogv",
        "audio/mpeg" => "mp3",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/ogg" => "ogg",
        "audio/flac" => "flac",
        "audio/aac" => "aac",
        "audio/mp4" => "m4a",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AssetKind::*;

    #[test]
    fn essence_is_case_insensitive_and_ignores_parameters() {
        assert_eq!(judge(Some("IMAGE/PNG"), Image), TypeVerdict::Ok("image/png".into()));
        assert_eq!(judge(Some("image/jpg; charset=binary"), Image), TypeVerdict::Ok("image/jpeg".into()));
        assert_eq!(
            judge(Some("video/mp4; codecs=\"avc1.42E01E, mp4a.40.2\""), Video),
            TypeVerdict::Ok("video/mp4".into())
        );
        assert_eq!(judge(Some(" audio/x-wav "), Audio), TypeVerdict::Ok("audio/wav".into()));
    }

    #[test]
    fn smuggled_and_junk_values_are_refused() {
        for v in [
            "image/png, text/html",
            "image/png text/html",
            "image/png;text/html",
            "image/png;x=text/html",
            "image/png;;;charset",
            "image/",
            "/png",
            "image",
            "image/png\u{0}",
            "image/gif",
            "text/html",
            "image/svg+xml",
            "video/mp4",
        ] {
            assert!(matches!(judge(Some(v), Image), TypeVerdict::Unsupported(_)), "{v}");
        }
        assert_eq!(
            message(&judge(Some("text/html"), Image)),
            "Unsupported Content-Type response header: \"text/html\"."
        );
    }

    #[test]
    fn generic_types_get_the_dedicated_message() {
        let v = judge(Some("application/octet-stream"), Image);
        assert_eq!(
            message(&v),
            "Assets must use an approved Content-Type response header. We received \"application/octet-stream\", which is not allowed."
        );
        assert!(matches!(judge(Some("Binary/Octet-Stream"), Video), TypeVerdict::Generic(_)));
        assert_eq!(judge(None, Image), TypeVerdict::Missing);
        assert_eq!(judge(Some("  "), Audio), TypeVerdict::Missing);
    }

    #[test]
    fn each_kind_accepts_only_its_own_types() {
        for k in [Image, Video, Audio] {
            for t in accepted(k) {
                assert!(matches!(judge(Some(t), k), TypeVerdict::Ok(_)), "{t}");
                for other in [Image, Video, Audio].into_iter().filter(|o| *o != k) {
                    assert!(matches!(judge(Some(t), other), TypeVerdict::Unsupported(_)), "{t} as {other:?}");
                }
            }
        }
    }
}
