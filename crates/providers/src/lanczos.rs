//! Upscaling by real Lanczos3 resampling (no learned detail).

use image::{DynamicImage, RgbImage, imageops::FilterType};

/// Resizes `img` by an integer factor with a Lanczos3 filter.
pub fn upscale(img: &DynamicImage, factor: u32) -> RgbImage {
    let rgb = img.to_rgb8();
    image::imageops::resize(&rgb, rgb.width() * factor, rgb.height() * factor, FilterType::Lanczos3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_keeps_content() {
        let src = crate::procedural::render("u", 3, 64, 128);
        let out = upscale(&DynamicImage::ImageRgb8(src.clone()), 2);
        assert_eq!(out.dimensions(), (128, 256));
        // Mean colour survives resampling (a resize that dropped content would not keep it).
        let mean = |i: &RgbImage| {
            let n = (i.width() * i.height()) as f64;
            let mut s = [0f64; 3];
            for p in i.pixels() {
                for k in 0..3 {
                    s[k] += p[k] as f64;
                }
            }
            s.map(|v| v / n)
        };
        let (a, b) = (mean(&src), mean(&out));
        for k in 0..3 {
            assert!((a[k] - b[k]).abs() < 3.0, "{a:?} vs {b:?}");
        }
    }
}
