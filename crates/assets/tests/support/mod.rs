//! Shared test support: the testkit's asset server (included by path, see Cargo.toml) and
//! helpers to point an intake at it.
#![allow(dead_code)]

#[path = "../../../testkit/src/asset_server.rs"]
pub mod asset_server;

use asset_server::AssetServer;
use mediagate_assets::{AssetKind, AssetRequest, IntakeConfig, NoStoredAssets, StoredAssets};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use std::io::Cursor;

/// An intake config that reaches `server` through the `resolve` override, trusts its CA and
/// exempts exactly its address from the deny table (the rest of the policy stays on).
pub fn config_for(server: &AssetServer) -> IntakeConfig {
    let mut c = IntakeConfig::default();
    c.resolve.insert(server.host().to_string(), vec![server.addr().ip()]);
    c.allowed_networks = vec![ipnet::IpNet::from(server.addr().ip())];
    c.extra_ca_certs = vec![server.ca_file().to_path_buf()];
    c.fetch_timeout_ms = 3000;
    c
}

pub static NO_STORE: NoStoredAssets = NoStoredAssets;

pub fn req(kind: AssetKind) -> AssetRequest<'static> {
    req_with(kind, &NO_STORE)
}

pub fn req_with(kind: AssetKind, stored: &dyn StoredAssets) -> AssetRequest<'_> {
    AssetRequest { kind, param: ParamPath::key("inputImage"), aspect: None, account_id: 7, stored }
}

/// Asserts the error's code, that its message is exactly `msg` (or starts with it when `msg`
/// ends with `…`), and that it carries the parameter path.
#[track_caller]
pub fn assert_err(r: Result<mediagate_assets::Asset, ApiError>, code: ErrorCode, msg: &str) -> ApiError {
    let e = match r {
        Ok(a) => panic!("expected {code}, got an asset of {} bytes ({})", a.bytes.len(), a.media_type),
        Err(e) => e,
    };
    assert_eq!(e.code, code, "message: {}", e.message);
    if let Some(prefix) = msg.strip_suffix('…') {
        assert!(e.message.starts_with(prefix), "message {:?} should start with {prefix:?}", e.message);
    } else {
        assert_eq!(e.message, msg);
    }
    assert_eq!(
        e.parameter.as_ref().and_then(|p| p.first()).map(|p| p.to_string()).as_deref(),
        Some("inputImage")
    );
    e
}

pub fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// A real PNG of this size.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    encode(image::DynamicImage::new_rgb8(w, h), image::ImageFormat::Png)
}

pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(image::DynamicImage::new_rgb8(w, h), image::ImageFormat::Jpeg)
}

pub fn webp(w: u32, h: u32) -> Vec<u8> {
    encode(image::DynamicImage::new_rgba8(w, h), image::ImageFormat::WebP)
}

/// Signature + IHDR only: what a header-only probe reads, without megapixels of test data.
pub fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(13u32.to_be_bytes());
    v.extend(b"IHDR");
    v.extend(w.to_be_bytes());
    v.extend(h.to_be_bytes());
    v.extend([8, 2, 0, 0, 0]);
    v.extend([0, 0, 0, 0]);
    v
}

fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(payload);
    v
}

/// A minimal MP4 with one video track of this size (`moov` after `mdat`).
pub fn mp4(w: u32, h: u32) -> Vec<u8> {
    let mut tkhd = vec![0u8; 4 + 20 + 16 + 36];
    tkhd.extend((w << 16).to_be_bytes());
    tkhd.extend((h << 16).to_be_bytes());
    let moov = bx(b"moov", &bx(b"trak", &bx(b"tkhd", &tkhd)));
    let mut f = bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41");
    f.extend(bx(b"mdat", &[0x55; 2000]));
    f.extend(moov);
    f
}

/// An MP3 file: ID3v2 header followed by MPEG frames.
pub fn mp3() -> Vec<u8> {
    let mut v = b"ID3\x04\0\0\0\0\0\x0a".to_vec();
    v.extend([0u8; 10]);
    for _ in 0..20 {
        v.extend([0xff, 0xfb, 0x90, 0x64]);
        v.extend([0u8; 413]);
    }
    v
}

pub fn wav() -> Vec<u8> {
    let mut v = b"RIFF".to_vec();
    v.extend(1036u32.to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend([1, 0, 1, 0, 0x44, 0xac, 0, 0, 0x88, 0x58, 1, 0, 2, 0, 16, 0]);
    v.extend(b"data");
    v.extend(1000u32.to_le_bytes());
    v.extend([0u8; 1000]);
    v
}
