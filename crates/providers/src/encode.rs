//! Encoding images into the output formats clients ask for.

use image::codecs::{jpeg::JpegEncoder, png, webp::WebPEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use mediagate_core::task::ImageFormat;

/// An image made here as a result: encoded in the format and quality asked for.
pub fn image_artifact(
    img: &RgbImage,
    output: &mediagate_core::task::OutputOptions,
    seed: Option<u64>,
) -> Result<crate::Artifact, crate::ProviderError> {
    let fmt = output.format;
    let bytes = encode(img, fmt, output.quality).map_err(|e| {
        crate::ProviderError::new(
            mediagate_core::ErrorCode::ProviderError,
            "Encoding the output failed.",
            e.to_string(),
        )
    })?;
    Ok(crate::Artifact {
        bytes,
        content_type: fmt.content_type(),
        extension: fmt.extension(),
        seed,
        completion: None,
        fields: Default::default(),
    })
}

/// Encodes an RGB image. `quality` (20..=99) applies to JPG; PNG and WebP are lossless.
pub fn encode(img: &RgbImage, format: ImageFormat, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 2 + 256);
    let (w, h) = img.dimensions();
    match format {
        ImageFormat::Png => {
            // Fast compression: outputs are served once and re-encoded by clients anyway; the
            // default level costs several times the CPU for a few percent of size.
            png::PngEncoder::new_with_quality(&mut out, png::CompressionType::Fast, png::FilterType::Sub)
                .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)?
        }
        ImageFormat::Jpg => JpegEncoder::new_with_quality(&mut out, quality).write_image(
            img.as_raw(),
            w,
            h,
            ExtendedColorType::Rgb8,
        )?,
        ImageFormat::Webp => {
            WebPEncoder::new_lossless(&mut out).write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)?
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_decodes_back_to_the_same_size() {
        let img = crate::procedural::render("t", 1, 128, 64);
        for (f, guess) in [
            (ImageFormat::Png, image::ImageFormat::Png),
            (ImageFormat::Jpg, image::ImageFormat::Jpeg),
            (ImageFormat::Webp, image::ImageFormat::WebP),
        ] {
            let bytes = encode(&img, f, 90).unwrap();
            assert_eq!(image::guess_format(&bytes).unwrap(), guess);
            let back = image::load_from_memory(&bytes).unwrap();
            assert_eq!((back.width(), back.height()), (128, 64));
        }
    }
}
