//! VP8 key frames from libwebp.
//!
//! A lossy WebP file is a RIFF wrapper around exactly one VP8 key frame (WebP: RFC 9649; VP8:
//! RFC 6386), so libwebp's encoder is a VP8 intra-frame encoder. We feed it our own I420
//! planes, take the `VP8 ` chunk out of the RIFF container and hand it to the WebM muxer.

use std::ffi::c_void;

use libwebp_sys as webp;

use super::VideoError;
use super::yuv::I420;

/// Quality 0..=100 as libwebp defines it; 80 keeps gradients free of visible banding.
const QUALITY: f32 = 80.0;
/// Encoder effort 0..=6; 2 is several times faster than the default 4 and, for smooth
/// synthetic content, barely larger.
const METHOD: i32 = 2;

pub(crate) struct Vp8Encoder {
    config: webp::WebPConfig,
    width: u32,
    height: u32,
}

impl Vp8Encoder {
    pub fn new(width: u32, height: u32) -> Result<Self, VideoError> {
        let mut config = std::mem::MaybeUninit::<webp::WebPConfig>::uninit();
        // SAFETY: WebPConfigInitInternal fully initialises the struct when it returns non-zero.
        let config = unsafe {
            if webp::WebPConfigInitInternal(
                config.as_mut_ptr(),
                webp::WebPPreset::WEBP_PRESET_DEFAULT,
                QUALITY,
                webp::WEBP_ENCODER_ABI_VERSION as i32,
            ) == 0
            {
                return Err(VideoError::Encode("libwebp: config init failed".into()));
            }
            config.assume_init()
        };
        let mut config = config;
        config.method = METHOD;
        // Single-threaded: the output must not depend on scheduling.
        config.thread_level = 0;
        config.lossless = 0;
        // SAFETY: `config` is an initialised WebPConfig.
        if unsafe { webp::WebPValidateConfig(&config) } == 0 {
            return Err(VideoError::Encode("libwebp rejected the VP8 config".into()));
        }
        Ok(Vp8Encoder { config, width, height })
    }

    /// Encodes one frame as a VP8 key frame and returns the raw VP8 bitstream.
    pub fn encode_key_frame(&self, planes: &I420) -> Result<Vec<u8>, VideoError> {
        debug_assert_eq!((planes.width, planes.height), (self.width, self.height));
        let webp_file = self.encode_webp(planes)?;
        vp8_chunk(&webp_file)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| VideoError::Encode("libwebp output has no VP8 chunk".into()))
    }

    fn encode_webp(&self, planes: &I420) -> Result<Vec<u8>, VideoError> {
        let mut pic = std::mem::MaybeUninit::<webp::WebPPicture>::uninit();
        // SAFETY: WebPPictureInitInternal fully initialises the struct when it returns non-zero.
        let mut pic = unsafe {
            if webp::WebPPictureInitInternal(pic.as_mut_ptr(), webp::WEBP_ENCODER_ABI_VERSION as i32) == 0 {
                return Err(VideoError::Encode("libwebp: picture init failed".into()));
            }
            pic.assume_init()
        };
        pic.use_argb = 0;
        pic.colorspace = webp::WebPEncCSP::WEBP_YUV420;
        pic.width = self.width as i32;
        pic.height = self.height as i32;
        let mut writer = std::mem::MaybeUninit::<webp::WebPMemoryWriter>::uninit();
        // SAFETY: WebPMemoryWriterInit initialises every field.
        let mut writer = unsafe {
            webp::WebPMemoryWriterInit(writer.as_mut_ptr());
            writer.assume_init()
        };
        // SAFETY: `pic` was initialised and given a size and colour space above; after a
        // successful WebPPictureAlloc its y/u/v planes hold at least `stride * rows` bytes,
        // which bounds every copy below. `writer` outlives the WebPEncode call that uses it
        // through `custom_ptr`, and both are freed on every path after allocation.
        unsafe {
            if webp::WebPPictureAlloc(&mut pic) == 0 {
                return Err(VideoError::Encode("libwebp: out of memory".into()));
            }
            let (w, h) = (self.width as usize, self.height as usize);
            copy_plane(&planes.y, w, h, pic.y, pic.y_stride as usize);
            copy_plane(&planes.u, w / 2, h / 2, pic.u, pic.uv_stride as usize);
            copy_plane(&planes.v, w / 2, h / 2, pic.v, pic.uv_stride as usize);
            pic.writer = Some(webp::WebPMemoryWrite);
            pic.custom_ptr = (&raw mut writer).cast::<c_void>();
            let ok = webp::WebPEncode(&self.config, &mut pic) != 0;
            let error = pic.error_code;
            webp::WebPPictureFree(&mut pic);
            let result = if ok && !writer.mem.is_null() {
                Ok(std::slice::from_raw_parts(writer.mem, writer.size).to_vec())
            } else {
                Err(VideoError::Encode(format!("libwebp: {error:?}")))
            };
            webp::WebPMemoryWriterClear(&mut writer);
            result
        }
    }
}

/// Copies `rows` rows of `width` bytes into a plane with its own stride.
///
/// # Safety
/// `dst` must be valid for writes of `stride * (rows - 1) + width` bytes and `stride >= width`.
unsafe fn copy_plane(src: &[u8], width: usize, rows: usize, dst: *mut u8, stride: usize) {
    for (r, line) in src.chunks_exact(width).take(rows).enumerate() {
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::copy_nonoverlapping(line.as_ptr(), dst.add(r * stride), width) };
    }
}

/// Finds the payload of the `VP8 ` chunk in a WebP RIFF file.
fn vp8_chunk(file: &[u8]) -> Option<&[u8]> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WEBP" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= file.len() {
        let fourcc = &file[at..at + 4];
        let size = u32::from_le_bytes(file[at + 4..at + 8].try_into().ok()?) as usize;
        let body = file.get(at + 8..at + 8 + size)?;
        if fourcc == b"VP8 " {
            return Some(body);
        }
        // Chunks are padded to an even length.
        at += 8 + size + (size & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_vp8_chunk_after_other_chunks() {
        let mut file = b"RIFF\0\0\0\0WEBP".to_vec();
        file.extend_from_slice(b"VP8X\x03\0\0\0abc\0");
        file.extend_from_slice(b"VP8 \x02\0\0\0xy");
        assert_eq!(vp8_chunk(&file), Some(&b"xy"[..]));
        assert_eq!(vp8_chunk(b"RIFF\0\0\0\0WEBPVP8 \x09\0\0\0short"), None);
        assert_eq!(vp8_chunk(b"not a webp file"), None);
    }

    #[test]
    fn encodes_a_key_frame_with_the_requested_size() {
        let planes = I420 {
            width: 64,
            height: 48,
            y: vec![120; 64 * 48],
            u: vec![100; 32 * 24],
            v: vec![150; 32 * 24],
        };
        let frame = Vp8Encoder::new(64, 48).unwrap().encode_key_frame(&planes).unwrap();
        // RFC 6386 §9.1: bit 0 of the first byte clear = key frame, then the start code
        // 9d 01 2a and 14-bit width and height.
        assert_eq!(frame[0] & 1, 0);
        assert_eq!(&frame[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([frame[6], frame[7]]) & 0x3FFF, 64);
        assert_eq!(u16::from_le_bytes([frame[8], frame[9]]) & 0x3FFF, 48);
    }
}
