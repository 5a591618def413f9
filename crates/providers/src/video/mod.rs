//! The procedural video stand-in.
//!
//! **Not a generative model.** It draws a deterministic animation from (prompt, seed, size,
//! duration, frame rate): a seeded two-colour gradient whose direction turns slowly, with soft
//! discs, rings and rounded boxes drifting over it on Lissajous paths, a progress bar, and a
//! burnt-in "PROCEDURAL STAND-IN" caption. The prompt picks the palette, the seed nudges it and
//! picks the layout and motion, so the same inputs give byte-identical files and another seed a
//! visibly different video. An optional input image becomes the background the shapes fade in
//! over (image-to-video). It exists so the whole video path (validation, credits, storage,
//! delivery, players) runs without a GPU.
//!
//! # Why these encoders and containers
//!
//! Everything builds from crates.io with the C compiler already needed for other `-sys`
//! crates; no system library, no apt package, no binary download:
//!
//! * **MP4 = H.264 (Constrained Baseline) via [`openh264`]** (Cisco OpenH264, BSD-2-Clause; the
//!   crate vendors the C++ source and compiles it with `cc`). H.264 in MP4 is the most widely
//!   supported video format: browsers, phones and desktop players open it. The encoder runs single-threaded with
//!   a fixed configuration so output is byte-identical run to run.
//! * **WebM = VP8 via `libwebp-sys`** (libwebp's vendored C source, BSD-3-Clause; crate MIT). A
//!   lossy WebP image *is* one VP8 key frame, so libwebp's well-tested VP8 encoder gives us
//!   standard VP8 intra frames, which we lift out of the WebP RIFF wrapper and put in WebM. An
//!   all-key-frame stream is larger than one with inter frames (about 1 MB for 5 s at 640x360,
//!   against about 150 KB for the H.264 file) but seeks anywhere, and it avoids the
//!   alternatives: libvpx needs `libvpx-dev` from apt, and `rav1e` (AV1, pure Rust) is a far
//!   heavier dependency whose encoding costs much more CPU per frame.
//! * **Both containers are written here** (`mp4.rs`: ISO-BMFF boxes; `webm.rs`: EBML
//!   elements; a few hundred lines). One video track needs few structures; writing them
//!   ourselves keeps every byte deterministic (no wall-clock creation times) and puts
//!   [`STAND_IN_LABEL`] into the title metadata that players show. The tests parse the files
//!   back with independent demuxers (`mp4`, `matroska-demuxer`), decode frames with
//!   independent decoders (OpenH264's decoder, the pure-Rust `image-webp` VP8 decoder) and,
//!   where installed, check them with `ffprobe`.
//!
//! Drawing uses only IEEE-exact float operations (add, multiply, divide, sqrt, floor) and a
//! polynomial sine, never the platform's `libm`, so frames do not depend on the C library.

mod frames;
mod h264;
mod mp4;
mod vp8;
mod webm;
mod yuv;

use std::str::FromStr;

use image::RgbImage;

/// One sentence users see wherever the video stand-in is named (API responses, docs, the
/// container's title metadata).
pub const STAND_IN_LABEL: &str = "Procedural video stand-in, not a generative model: it \
    animates seeded gradients and shapes so the video pipeline runs without a GPU.";

/// Smallest accepted width or height, in pixels.
pub const MIN_SIDE: u32 = 64;
/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 1920;
/// Largest accepted frame area (1920x1080), which bounds render time and memory.
pub const MAX_PIXELS: u32 = 1920 * 1080;
/// Longest accepted clip, in seconds.
pub const MAX_DURATION_SECS: u32 = 10;
/// Highest accepted frame rate, in frames per second.
pub const MAX_FPS: u32 = 30;

/// Container and codec of the rendered file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoFormat {
    /// H.264 video in an MP4 container (`video/mp4`).
    Mp4,
    /// VP8 video in a WebM container (`video/webm`).
    Webm,
}

impl VideoFormat {
    /// The MIME type of files in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            VideoFormat::Mp4 => "video/mp4",
            VideoFormat::Webm => "video/webm",
        }
    }

    /// The file extension (without the dot) of files in this format.
    pub fn extension(self) -> &'static str {
        match self {
            VideoFormat::Mp4 => "mp4",
            VideoFormat::Webm => "webm",
        }
    }
}

impl FromStr for VideoFormat {
    type Err = VideoError;

    /// Parses the wire value of `outputFormat` (`MP4` or `WEBM`, any letter case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("mp4") {
            Ok(VideoFormat::Mp4)
        } else if s.eq_ignore_ascii_case("webm") {
            Ok(VideoFormat::Webm)
        } else {
            Err(VideoError::Format(s.to_string()))
        }
    }
}

/// What to render.
#[derive(Debug, Clone)]
pub struct VideoSpec {
    /// The prompt; it picks the palette (it is hashed, never interpreted).
    pub prompt: String,
    /// The seed; it nudges the palette and picks layout and motion.
    pub seed: u64,
    /// Width in pixels: even, [`MIN_SIDE`]..=[`MAX_SIDE`].
    pub width: u32,
    /// Height in pixels: even, [`MIN_SIDE`]..=[`MAX_SIDE`].
    pub height: u32,
    /// Length in whole seconds: 1..=[`MAX_DURATION_SECS`].
    pub duration_secs: u32,
    /// Frames per second: 1..=[`MAX_FPS`].
    pub fps: u32,
    /// Container and codec.
    pub format: VideoFormat,
    /// Optional input image (image-to-video): scaled to cover the frame and used as the
    /// background of every frame, with the animation fading in over it.
    pub first_frame: Option<RgbImage>,
}

impl VideoSpec {
    /// Number of frames the clip has (`duration_secs * fps`).
    pub fn frame_count(&self) -> u32 {
        self.duration_secs.saturating_mul(self.fps)
    }
}

/// A finished video file.
#[derive(Debug, Clone)]
pub struct RenderedVideo {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Its MIME type: `video/mp4` or `video/webm`.
    pub content_type: &'static str,
    /// Its file extension: `mp4` or `webm`.
    pub extension: &'static str,
    /// Number of frames in the file.
    pub frames: u32,
}

/// Why a video could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// A width or height out of range or odd.
    #[error("{name} must be an even number of pixels between {MIN_SIDE} and {MAX_SIDE}, got {value}")]
    Dimension {
        /// `width` or `height`.
        name: &'static str,
        /// The rejected value.
        value: u32,
    },
    /// Both sides valid, but the frame area too large.
    #[error("frame size {width}x{height} exceeds the limit of {MAX_PIXELS} pixels (1920x1080)")]
    TooManyPixels {
        /// The requested width.
        width: u32,
        /// The requested height.
        height: u32,
    },
    /// Duration out of range.
    #[error("duration must be between 1 and {MAX_DURATION_SECS} seconds, got {0}")]
    Duration(u32),
    /// Frame rate out of range.
    #[error("fps must be between 1 and {MAX_FPS}, got {0}")]
    Fps(u32),
    /// An input image with no pixels.
    #[error("the input image is empty ({width}x{height})")]
    EmptyFirstFrame {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// An `outputFormat` other than `MP4` or `WEBM`.
    #[error("unsupported video format {0:?}: expected MP4 or WEBM")]
    Format(String),
    /// The encoder failed (an internal error, not the caller's fault).
    #[error("video encoder failed: {0}")]
    Encode(String),
    /// The caller stopped the render (its task was cancelled).
    #[error("rendering was stopped")]
    Stopped,
}

/// Checks a spec's numbers and input image without rendering anything.
pub fn validate(spec: &VideoSpec) -> Result<(), VideoError> {
    for (name, value) in [("width", spec.width), ("height", spec.height)] {
        // Even sides because 4:2:0 chroma halves both; the codecs would otherwise crop.
        if !(MIN_SIDE..=MAX_SIDE).contains(&value) || value % 2 != 0 {
            return Err(VideoError::Dimension { name, value });
        }
    }
    if spec.width * spec.height > MAX_PIXELS {
        return Err(VideoError::TooManyPixels { width: spec.width, height: spec.height });
    }
    if !(1..=MAX_DURATION_SECS).contains(&spec.duration_secs) {
        return Err(VideoError::Duration(spec.duration_secs));
    }
    if !(1..=MAX_FPS).contains(&spec.fps) {
        return Err(VideoError::Fps(spec.fps));
    }
    if let Some(img) = &spec.first_frame
        && (img.width() == 0 || img.height() == 0)
    {
        return Err(VideoError::EmptyFirstFrame { width: img.width(), height: img.height() });
    }
    Ok(())
}

/// Draws frame `index` (0-based; past the end, the last frame) exactly as [`render_video`]
/// feeds it to the encoder, before compression. Useful for posters/thumbnails and for checking
/// decoded output.
pub fn draw_frame(spec: &VideoSpec, index: u32) -> Result<RgbImage, VideoError> {
    validate(spec)?;
    let scene = frames::Scene::new(spec);
    Ok(scene.draw(index.min(spec.frame_count() - 1)))
}

/// Renders the whole clip and encodes it. CPU-bound and synchronous: call it from a blocking
/// thread (e.g. `tokio::task::spawn_blocking`), not from an async task.
pub fn render_video(spec: &VideoSpec) -> Result<RenderedVideo, VideoError> {
    render_video_with(spec, &mut |_, _| true)
}

/// [`render_video`], calling `on_frame(done, total)` after each frame; when it returns false
/// the render stops with [`VideoError::Stopped`] (a cancelled task frees its core at once).
pub fn render_video_with(
    spec: &VideoSpec,
    on_frame: &mut dyn FnMut(u32, u32) -> bool,
) -> Result<RenderedVideo, VideoError> {
    validate(spec)?;
    let scene = frames::Scene::new(spec);
    let count = spec.frame_count();
    let (w, h) = (spec.width, spec.height);
    let bytes = match spec.format {
        VideoFormat::Mp4 => {
            let mut enc = h264::H264Encoder::new(w, h, spec.fps)?;
            let mut planes = yuv::I420::new(w, h);
            for i in 0..count {
                planes.fill_from_rgb(&scene.draw(i));
                enc.encode(&planes, i)?;
                if !on_frame(i + 1, count) {
                    return Err(VideoError::Stopped);
                }
            }
            let stream = enc.finish()?;
            mp4::mux(&stream, w, h, spec.fps, STAND_IN_LABEL)
        }
        VideoFormat::Webm => {
            let enc = vp8::Vp8Encoder::new(w, h)?;
            let mut planes = yuv::I420::new(w, h);
            let mut encoded = Vec::with_capacity(count as usize);
            for i in 0..count {
                planes.fill_from_rgb(&scene.draw(i));
                encoded.push(enc.encode_key_frame(&planes)?);
                if !on_frame(i + 1, count) {
                    return Err(VideoError::Stopped);
                }
            }
            webm::mux(&encoded, w, h, spec.fps, STAND_IN_LABEL)
        }
    };
    Ok(RenderedVideo {
        bytes,
        content_type: spec.format.content_type(),
        extension: spec.format.extension(),
        frames: count,
    })
}
