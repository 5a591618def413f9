//! The media probe: sniffing and header-only dimensions never panic, and never loop (libFuzzer's
//! timeout catches that) on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_assets::probe::{self, Dimensions, Format};

fuzz_target!(|data: &[u8]| {
    if let Some(f) = probe::sniff(data) {
        let _ = f.name();
        let _ = probe::dimensions(f, data);
    }
    // Every parser on every input, not only on inputs that sniff as its format.
    let _ = probe::mp4_dimensions(data);
    let _ = probe::ebml_dimensions(data);
    for f in [Format::Png, Format::Jpeg, Format::Webp, Format::Gif, Format::Bmp, Format::Tiff] {
        if let Dimensions::Known(w, h) = probe::dimensions(f, data) {
            // Dimensions come from the header; they fit u32 by construction.
            let _ = (w, h);
        }
    }
});
