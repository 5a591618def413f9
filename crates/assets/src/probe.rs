//! Media sniffing (magic bytes) and header-only dimensions. Nothing here decodes pixels or
//! allocates in proportion to the input: every parser walks the bytes it is given with bounds
//! checks and gives up after a fixed number of steps. Fuzzed by `fuzz/fuzz_targets/probe.rs`.

use crate::AssetKind;

/// A container or file format recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG.
    Png,
    /// JPEG / JFIF / EXIF.
    Jpeg,
    /// WebP (RIFF `WEBP`).
    Webp,
    /// GIF (recognised so that the error can name it; not accepted).
    Gif,
    /// BMP (recognised, not accepted).
    Bmp,
    /// TIFF (recognised, not accepted).
    Tiff,
    /// ISO base media (MP4, MOV, M4A, AVIF, HEIC), with its major brand.
    IsoBmff {
        /// The `ftyp` major brand, or `b"qt  "` for old QuickTime files without `ftyp`.
        brand: [u8; 4],
    },
    /// Matroska or WebM (EBML header).
    Matroska,
    /// Ogg.
    Ogg,
    /// H.264 Annex B elementary stream.
    H264,
    /// MP3 or AAC behind an ID3v2 tag.
    Id3,
    /// MPEG audio frame (MP3).
    Mp3,
    /// AAC in ADTS frames.
    Adts,
    /// FLAC.
    Flac,
    /// WAV (RIFF `WAVE`).
    Wav,
}

impl Format {
    /// A short name for reports, e.g. `PNG`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Webp => "WebP",
            Format::Gif => "GIF",
            Format::Bmp => "BMP",
            Format::Tiff => "TIFF",
            Format::IsoBmff { brand } => match &brand {
                b"qt  " => "QuickTime",
                b"avif" | b"avis" => "AVIF",
                b"heic" | b"heix" | b"mif1" | b"msf1" => "HEIF",
                b"M4A " | b"M4B " => "M4A",
                _ => "MP4",
            },
            Format::Matroska => "Matroska/WebM",
            Format::Ogg => "Ogg",
            Format::H264 => "H.264 elementary stream",
            Format::Id3 => "ID3-tagged audio",
            Format::Mp3 => "MP3",
            Format::Adts => "AAC (ADTS)",
            Format::Flac => "FLAC",
            Format::Wav => "WAV",
        }
    }

    /// Whether bytes of this format may be labelled with the (canonical) media type `essence`.
    pub fn matches(self, essence: &str) -> bool {
        match self {
            Format::Png => essence == "image/png",
            Format::Jpeg => essence == "image/jpeg",
            Format::Webp => essence == "image/webp",
            Format::IsoBmff { brand } => {
                // An AVIF or HEIC still image is ISO-BMFF too, but it is not a video.
                let still = matches!(&brand, b"avif" | b"heic" | b"heix" | b"mif1");
                !still && matches!(essence, "video/mp4" | "video/quicktime" | "audio/mp4")
            }
            Format::Matroska => essence == "video/webm",
            Format::Ogg => essence == "video/ogg",
            Format::H264 => essence == "video/h264",
            // ID3v2 tags precede MP3 and sometimes AAC streams.
            Format::Id3 => matches!(essence, "audio/mpeg" | "audio/aac"),
            Format::Mp3 => essence == "audio/mpeg",
            Format::Adts => essence == "audio/aac",
            Format::Flac => essence == "audio/flac",
            Format::Wav => essence == "audio/wav",
            Format::Gif | Format::Bmp | Format::Tiff => false,
        }
    }

    /// The media type to assume for undeclared bytes (raw base64, local files) of this format,
    /// given the kind the parameter wants; `None` when the format is not accepted at all.
    pub fn media_type_for(self, kind: AssetKind) -> Option<&'static str> {
        let t = match (self, kind) {
            (Format::Png, _) => "image/png",
            (Format::Jpeg, _) => "image/jpeg",
            (Format::Webp, _) => "image/webp",
            (Format::IsoBmff { .. }, AssetKind::Audio) => "audio/mp4",
            (Format::IsoBmff { brand }, _) if &brand == b"qt  " => "video/quicktime",
            (Format::IsoBmff { .. }, _) => "video/mp4",
            (Format::Matroska, _) => "video/webm",
            (Format::Ogg, _) => "video/ogg",
            (Format::H264, _) => "video/h264",
            (Format::Id3 | Format::Mp3, _) => "audio/mpeg",
            (Format::Adts, _) => "audio/aac",
            (Format::Flac, _) => "audio/flac",
            (Format::Wav, _) => "audio/wav",
            (Format::Gif, _) => "image/gif",
            (Format::Bmp, _) => "image/bmp",
            (Format::Tiff, _) => "image/tiff",
        };
        Some(t).filter(|t| self.matches(t))
    }
}

/// Recognises a format from the first bytes (16 are enough for every format here).
pub fn sniff(b: &[u8]) -> Option<Format> {
    let at = |i: usize, m: &[u8]| b.len() >= i + m.len() && &b[i..i + m.len()] == m;
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if at(0, &[0xff, 0xd8, 0xff]) {
        return Some(Format::Jpeg);
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Some(Format::Webp);
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some(Format::Wav);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return Some(Format::Gif);
    }
    if at(0, b"BM") && b.len() >= 26 {
        return Some(Format::Bmp);
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") {
        return Some(Format::Tiff);
    }
    if at(4, b"ftyp") && b.len() >= 12 {
        let mut brand = [0u8; 4];
        brand.copy_from_slice(&b[8..12]);
        return Some(Format::IsoBmff { brand });
    }
    // QuickTime files from before `ftyp` start straight with one of these atoms.
    if at(4, b"moov") || at(4, b"mdat") || at(4, b"wide") || at(4, b"free") {
        return Some(Format::IsoBmff { brand: *b"qt  " });
    }
    if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) {
        return Some(Format::Matroska);
    }
    if at(0, b"OggS") {
        return Some(Format::Ogg);
    }
    if at(0, b"fLaC") {
        return Some(Format::Flac);
    }
    if at(0, b"ID3") {
        return Some(Format::Id3);
    }
    if b.len() >= 2 && b[0] == 0xff && b[1] & 0xe0 == 0xe0 {
        // 11-bit frame sync. Layer bits 00 are reserved in MPEG audio and mean ADTS (AAC).
        let layer = (b[1] >> 1) & 0b11;
        return Some(if layer == 0 { Format::Adts } else { Format::Mp3 });
    }
    if (at(0, &[0, 0, 0, 1]) && b.len() > 4 && b[4] & 0x80 == 0)
        || (at(0, &[0, 0, 1]) && b.len() > 3 && b[3] & 0x80 == 0)
    {
        return Some(Format::H264);
    }
    None
}

/// What the header says about the size of the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimensions {
    /// Width and height in pixels.
    Known(u32, u32),
    /// The format has no cheap header size (audio, Ogg, H.264 streams) or none was found.
    NotApplicable,
    /// An image whose header is truncated or unreadable.
    Unreadable,
}

/// Reads width and height from the header only. Images: PNG, JPEG, WebP, GIF, BMP, TIFF via
/// `imagesize`; video: MP4/MOV (`tkhd`) and WebM/Matroska (`PixelWidth`/`PixelHeight`).
pub fn dimensions(format: Format, b: &[u8]) -> Dimensions {
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    match format {
        Format::Png | Format::Jpeg | Format::Webp | Format::Gif | Format::Bmp | Format::Tiff => {
            match imagesize::blob_size(b) {
                Ok(s) => Dimensions::Known(clamp(s.width as u64), clamp(s.height as u64)),
                Err(_) => Dimensions::Unreadable,
            }
        }
        Format::IsoBmff { .. } => match mp4_dimensions(b) {
            Some((w, h)) => Dimensions::Known(w, h),
            None => Dimensions::NotApplicable,
        },
        Format::Matroska => match ebml_dimensions(b) {
            Some((w, h)) => Dimensions::Known(clamp(w), clamp(h)),
            None => Dimensions::NotApplicable,
        },
        _ => Dimensions::NotApplicable,
    }
}

/// What decoding an image would allocate, read from its header only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per pixel of the decoded picture (e.g. 8 for 16-bit RGBA).
    pub bytes_per_pixel: u8,
    /// The decoded pixel layout, e.g. `Rgba16`.
    pub color: image::ColorType,
}

impl DecodedSize {
    /// Bytes of the decoded picture: width × height × bytes per pixel.
    pub fn bytes(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.bytes_per_pixel)
    }
}

/// The decoded size of a PNG, JPEG or WebP from its header, without decoding a pixel: a few
/// hundred compressed kilobytes can declare gigabytes of pixels, so this is what every decode
/// is judged by before it allocates. `None` when the header does not parse or the format is
/// one the server does not decode.
pub fn decoded_size(b: &[u8]) -> Option<DecodedSize> {
    use image::ImageDecoder;
    let reader = image::ImageReader::new(std::io::Cursor::new(b)).with_guessed_format().ok()?;
    // The header parse itself is bounded by the image crate's default limits.
    let decoder = reader.into_decoder().ok()?;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    Some(DecodedSize { width, height, bytes_per_pixel: color.bytes_per_pixel(), color })
}

/// Upper bound on boxes / elements visited, so a hostile file costs a bounded amount of work.
const MAX_STEPS: usize = 4096;

fn be_u32(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_be_bytes(a)
    })
}

/// Iterates the boxes directly inside `b`: (type, payload).
fn boxes(b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    let mut steps = 0usize;
    std::iter::from_fn(move || {
        steps += 1;
        if steps > MAX_STEPS || pos + 8 > b.len() {
            return None;
        }
        let size32 = be_u32(b, pos)? as u64;
        let mut typ = [0u8; 4];
        typ.copy_from_slice(&b[pos + 4..pos + 8]);
        let (header, size) = match size32 {
            1 => (16u64, be_u64(b, pos + 8)?),
            0 => (8u64, (b.len() - pos) as u64), // extends to the end
            n => (8u64, n),
        };
        if size < header {
            return None;
        }
        // A 64-bit size may be anything (found by `cargo fuzz`: u64::MAX overflowed the sum). A
        // box claiming more than we have is truncated: read what is there.
        let end = (pos as u64).saturating_add(size).min(b.len() as u64) as usize;
        let start = pos + header as usize;
        if start > end {
            return None;
        }
        let payload = &b[start..end];
        pos = end;
        Some((typ, payload))
    })
}

/// Width and height of the first track with a non-zero `tkhd` size (the video track; audio
/// tracks have 0×0). `moov` may sit after `mdat`: the top level is walked by box sizes without
/// reading `mdat`.
pub fn mp4_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let moov = boxes(b).find(|(t, _)| t == b"moov")?.1;
    for (t, trak) in boxes(moov) {
        if &t != b"trak" {
            continue;
        }
        let Some((_, tkhd)) = boxes(trak).find(|(t, _)| t == b"tkhd") else {
            continue;
        };
        let version = *tkhd.first()?;
        // full box header (4) + times/ids/duration (20 or 32) + reserved (8) + layer, group,
        // volume, reserved (8) + matrix (36), then width and height as 16.16 fixed point.
        let off = 4 + if version == 1 { 32 } else { 20 } + 8 + 8 + 36;
        let (w, h) = (be_u32(tkhd, off)? >> 16, be_u32(tkhd, off + 4)? >> 16);
        if w != 0 || h != 0 {
            return Some((w, h));
        }
    }
    None
}

/// Reads an EBML variable-length integer at `i`: (value, length). With `keep_marker` the length
/// marker bit stays in (element IDs); without it, it is removed (sizes) and all-ones means
/// "unknown size" (`None` value).
fn vint(b: &[u8], i: usize, keep_marker: bool) -> Option<(Option<u64>, usize)> {
    let first = *b.get(i)?;
    if first == 0 {
        return None;
    }
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || i + len > b.len() {
        return None;
    }
    let mut v: u64 = if keep_marker { first as u64 } else { (first as u64) & ((1u64 << (8 - len)) - 1) };
    for k in 1..len {
        v = (v << 8) | b[i + k] as u64;
    }
    if !keep_marker && v == (1u64 << (7 * len)) - 1 {
        return Some((None, len));
    }
    Some((Some(v), len))
}

/// `PixelWidth` / `PixelHeight` of the first video track of a WebM / Matroska file.
pub fn ebml_dimensions(b: &[u8]) -> Option<(u64, u64)> {
    const SEGMENT: u64 = 0x1853_8067;
    const TRACKS: u64 = 0x1654_AE6B;
    const TRACK_ENTRY: u64 = 0xAE;
    const VIDEO: u64 = 0xE0;
    const PIXEL_WIDTH: u64 = 0xB0;
    const PIXEL_HEIGHT: u64 = 0xBA;
    const CLUSTER: u64 = 0x1F43_B675;
    // Master elements we descend into on the way to the video settings.
    let descend = |id: u64| matches!(id, SEGMENT | TRACKS | TRACK_ENTRY | VIDEO);

    let mut pos = 0usize;
    let mut end_stack: Vec<usize> = Vec::new();
    let mut width = None;
    let mut height = None;
    let mut steps = 0usize;
    while pos < b.len() {
        steps += 1;
        if steps > MAX_STEPS {
            return None;
        }
        while let Some(&e) = end_stack.last() {
            if pos >= e {
                end_stack.pop();
                // Leaving a Video element with both sizes read: done.
                if let (Some(w), Some(h)) = (width, height) {
                    return Some((w, h));
                }
            } else {
                break;
            }
        }
        let (id, idlen) = vint(b, pos, true)?;
        let id = id?;
        let (size, szlen) = vint(b, pos + idlen, false)?;
        let data = pos + idlen + szlen;
        let parent_end = end_stack.last().copied().unwrap_or(b.len());
        let end = match size {
            Some(s) => usize::try_from(s)
                .ok()
                .and_then(|s| data.checked_add(s))
                .unwrap_or(usize::MAX)
                .min(parent_end),
            None => parent_end, // unknown size (live streams): runs to the parent's end
        };
        if id == CLUSTER {
            // Tracks come before the first cluster; media data is not worth walking.
            break;
        }
        if descend(id) {
            if end_stack.len() >= 8 {
                return None;
            }
            end_stack.push(end);
            pos = data;
            continue;
        }
        if id == PIXEL_WIDTH || id == PIXEL_HEIGHT {
            let n = end.saturating_sub(data);
            if n == 0 || n > 8 || end > b.len() {
                return None;
            }
            let v = b[data..end].iter().fold(0u64, |a, x| (a << 8) | *x as u64);
            if id == PIXEL_WIDTH {
                width = Some(v);
            } else {
                height = Some(v);
            }
            if let (Some(w), Some(h)) = (width, height) {
                return Some((w, h));
            }
        }
        if end <= pos {
            return None;
        }
        pos = end;
    }
    match (width, height) {
        (Some(w), Some(h)) => Some((w, h)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {

    /// Found by `cargo fuzz run probe`: a 64-bit box size of u64::MAX overflowed the box end.
    #[test]
    fn huge_64_bit_box_sizes_do_not_overflow() {
        let crash = [
            0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20, 0x0d, 0x0a, 0x87, 0x0a, 0x00, 0x00, 0x00, 0x01,
            0x00, 0xde, 0xde, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0xde, 0xde,
            0xde, 0xde, 0xde, 0xde, 0xde, 0xe0,
        ];
        let _ = mp4_dimensions(&crash);
        let mut b = vec![0, 0, 0, 1, b'm', b'o', b'o', b'v'];
        b.extend_from_slice(&u64::MAX.to_be_bytes());
        b.extend_from_slice(&[0; 16]);
        assert_eq!(mp4_dimensions(&b), None);
    }

    use super::*;

    fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(payload);
        v
    }

    /// A minimal MP4: `ftyp`, a big `mdat`, then `moov` with an audio and a video track.
    pub(crate) fn mp4(w: u32, h: u32, version1: bool) -> Vec<u8> {
        let tkhd = |w: u32, h: u32| {
            let mut p = vec![if version1 { 1 } else { 0 }, 0, 0, 0];
            p.extend(vec![0u8; if version1 { 32 } else { 20 }]);
            p.extend([0u8; 16]);
            p.extend([0u8; 36]);
            p.extend((w << 16).to_be_bytes());
            p.extend((h << 16).to_be_bytes());
            bx(b"tkhd", &p)
        };
        let audio = bx(b"trak", &tkhd(0, 0));
        let video = bx(b"trak", &[tkhd(w, h), bx(b"mdia", &[0u8; 12])].concat());
        let moov = bx(b"moov", &[bx(b"mvhd", &[0u8; 100]), audio, video].concat());
        let mut f = bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41");
        f.extend(bx(b"mdat", &vec![0xAB; 5000]));
        f.extend(moov);
        f
    }

    fn el(id: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        // 8-byte size vint: 0x01 followed by 7 bytes.
        let n = payload.len() as u64;
        v.push(0x01);
        v.extend(&n.to_be_bytes()[1..]);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn webm(w: u16, h: u16, unknown_segment_size: bool) -> Vec<u8> {
        let header = el(&[0x1a, 0x45, 0xdf, 0xa3], &el(&[0x42, 0x82], b"webm"));
        let video = el(&[0xE0], &[el(&[0xB0], &w.to_be_bytes()), el(&[0xBA], &h.to_be_bytes())].concat());
        let audio_entry = el(&[0xAE], &[el(&[0xD7], &[1]), el(&[0x83], &[2])].concat());
        let video_entry = el(&[0xAE], &[el(&[0xD7], &[2]), el(&[0x83], &[1]), video].concat());
        let tracks = el(&[0x16, 0x54, 0xAE, 0x6B], &[audio_entry, video_entry].concat());
        let info = el(&[0x15, 0x49, 0xA9, 0x66], &[0u8; 20]);
        let cluster = el(&[0x1F, 0x43, 0xB6, 0x75], &[0u8; 64]);
        let body = [info, tracks, cluster].concat();
        let segment = if unknown_segment_size {
            let mut s = vec![0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
            s.extend(body);
            s
        } else {
            el(&[0x18, 0x53, 0x80, 0x67], &body)
        };
        [header, segment].concat()
    }

    pub(crate) fn png(w: u32, h: u32) -> Vec<u8> {
        // Header-only PNG: signature + IHDR. Enough for every header-only probe.
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        v.extend(13u32.to_be_bytes());
        v.extend(b"IHDR");
        v.extend(w.to_be_bytes());
        v.extend(h.to_be_bytes());
        v.extend([8, 6, 0, 0, 0]);
        v.extend([0, 0, 0, 0]); // CRC (not checked by header probes)
        v
    }

    #[test]
    fn sniffs_every_family() {
        assert_eq!(sniff(&png(1, 1)), Some(Format::Png));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(Format::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Some(Format::Wav));
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Some(Format::Gif));
        assert_eq!(sniff(&mp4(2, 2, false)), Some(Format::IsoBmff { brand: *b"isom" }));
        assert_eq!(sniff(&webm(2, 2, false)), Some(Format::Matroska));
        assert_eq!(sniff(b"OggS\0\x02"), Some(Format::Ogg));
        assert_eq!(sniff(b"fLaC\0\0\0\x22"), Some(Format::Flac));
        assert_eq!(sniff(b"ID3\x04\0\0"), Some(Format::Id3));
        assert_eq!(sniff(&[0xff, 0xfb, 0x90, 0x00]), Some(Format::Mp3));
        assert_eq!(sniff(&[0xff, 0xf1, 0x50, 0x80]), Some(Format::Adts));
        assert_eq!(sniff(&[0, 0, 0, 1, 0x67, 0x42]), Some(Format::H264));
        assert_eq!(sniff(b"<!doctype html><html>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(&[0x89, b'P']), None);
    }

    #[test]
    fn png_labelled_jpeg_does_not_match() {
        assert!(!Format::Png.matches("image/jpeg"));
        assert!(Format::Png.matches("image/png"));
        assert!(!Format::Gif.matches("image/gif"));
        assert!(!Format::IsoBmff { brand: *b"avif" }.matches("video/mp4"));
        assert!(Format::IsoBmff { brand: *b"qt  " }.matches("video/quicktime"));
    }

    #[test]
    fn image_dimensions_from_header_only() {
        assert_eq!(dimensions(Format::Png, &png(9000, 100)), Dimensions::Known(9000, 100));
        // Truncated in the middle of IHDR.
        assert_eq!(dimensions(Format::Png, &png(10, 10)[..18]), Dimensions::Unreadable);
    }

    #[test]
    fn mp4_dimensions_skip_mdat_and_audio_tracks() {
        assert_eq!(mp4_dimensions(&mp4(1920, 1080, false)), Some((1920, 1080)));
        assert_eq!(mp4_dimensions(&mp4(640, 360, true)), Some((640, 360)));
        let m = mp4(640, 360, false);
        assert_eq!(mp4_dimensions(&m[..m.len() - 25]), None, "truncated tkhd");
        assert_eq!(dimensions(Format::Ogg, b"OggS"), Dimensions::NotApplicable);
    }

    #[test]
    fn webm_dimensions_with_known_and_unknown_segment_size() {
        assert_eq!(ebml_dimensions(&webm(1280, 720, false)), Some((1280, 720)));
        assert_eq!(ebml_dimensions(&webm(9000, 10, true)), Some((9000, 10)));
        assert_eq!(ebml_dimensions(&webm(1, 1, false)[..40]), None);
    }

    #[test]
    fn hostile_inputs_terminate() {
        // A box of size 0 ("to end") and size < header must not loop.
        let mut b = 0u32.to_be_bytes().to_vec();
        b.extend(b"moov");
        b.extend(4u32.to_be_bytes());
        b.extend(b"trak");
        assert_eq!(mp4_dimensions(&b), None);
        // Deeply nested unknown-size masters.
        let mut e = Vec::new();
        for _ in 0..100 {
            e.extend([0x18, 0x53, 0x80, 0x67, 0xff]);
        }
        assert_eq!(ebml_dimensions(&e), None);
    }
}
