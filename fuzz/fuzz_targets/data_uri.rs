//! Data URI parsing: never panics, and whatever parses re-encodes to something that parses to
//! the same bytes and media type.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use mediagate_assets::data_uri;

fuzz_target!(|input: &[u8]| {
    let Ok(s) = std::str::from_utf8(input) else {
        return;
    };
    // Also exercise the `data:` prefix path for arbitrary tails.
    for candidate in [s.to_string(), format!("data:{s}")] {
        if let Ok(d) = data_uri::parse(&candidate) {
            assert!(!d.bytes.is_empty());
            assert_eq!(d.essence, d.essence.to_ascii_lowercase());
            let again = format!(
                "data:{};base64,{}",
                d.essence,
                base64::engine::general_purpose::STANDARD.encode(&d.bytes)
            );
            let d2 = data_uri::parse(&again).expect("re-encoded data URI parses");
            assert_eq!(d2, d);
        }
        let _ = data_uri::decode_base64(&candidate);
    }
});
