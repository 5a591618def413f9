//! Image files built in tests: ordinary ones and hostile ones.

use std::io::Write;

/// A PNG whose IHDR declares `width`×`height` 16-bit RGBA (8 bytes a pixel: 8000×8000 is 512 MB
/// decoded) followed by one compressed zero row and IEND: a few hundred bytes on the wire, a
/// valid header for every parser, and a decode that would fail late, after allocating the
/// whole picture. A server must refuse it from the header.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    // Bit depth 16, colour type 6 (RGBA), deflate, adaptive filtering, no interlace.
    ihdr.extend([16, 6, 0, 0, 0]);
    let row = vec![0u8; 1 + width as usize * 8];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&row).expect("writing to a Vec cannot fail");
    let idat = z.finish().expect("writing to a Vec cannot fail");
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &idat), (b"IEND", &[])] {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.finalize().to_be_bytes());
    }
    out
}

/// An ordinary `width`×`height` RGB PNG (a gradient, so no two rows compress alike), as a
/// `data:` URI.
pub fn png_data_uri(width: u32, height: u32) -> String {
    use base64::Engine as _;
    let img =
        image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encoding to a Vec cannot fail");
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(out.into_inner()))
}
