//! Image to image for the procedural stand-in: the seed image repainted by the stand-in's own
//! picture where the mask and `strength` say, and grown by `outpaint` borders.
//!
//! **Not a generative model**, like the stand-in itself: the "repainting" is a per-pixel blend
//! with the seeded drawing, so the parameters have their documented, visible effect (strength 0
//! keeps the seed image, 1 replaces it; black mask pixels are kept, white ones repainted; outpaint
//! borders are new picture around the untouched seed image, feathered over `blur` pixels) and the
//! whole image-to-image path (intake, decode bounds, pricing, delivery) runs without a GPU.

use image::imageops::{FilterType, resize};
use image::{DynamicImage, GrayImage, RgbImage};
use mediagate_core::task::Outpaint;

/// What the seed image becomes.
pub struct Edit<'a> {
    /// The seed image, decoded.
    pub seed: &'a DynamicImage,
    /// The mask, decoded: white repaints, black keeps.
    pub mask: Option<&'a DynamicImage>,
    /// 0 keeps the seed image, 1 replaces it (within the mask).
    pub strength: f64,
    /// Borders around the seed image (the output is then exactly the seed image plus them).
    pub outpaint: Option<Outpaint>,
}

/// The working memory of [`apply`] beyond the decodes, in bytes, for an output of `out` pixels:
/// the seed image resized to it (or placed in it), the resized mask and the weight map.
pub fn cost(seed: (u32, u32), mask: Option<(u32, u32)>, out: (u32, u32)) -> u64 {
    let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    px(seed) * 3
        + crate::decode::resize_cost(seed, out, 3)
        + mask.map_or(0, |m| px(m) + crate::decode::resize_cost(m, out, 1))
        + px(out) * 4
}

/// Blends `generated` (the stand-in's picture at the output size) over the seed image.
pub fn apply(generated: &RgbImage, edit: &Edit<'_>) -> RgbImage {
    let (w, h) = generated.dimensions();
    let p = edit.outpaint.unwrap_or_default();
    // Where the seed image lies in the output: all of it, or inside the borders.
    let (x0, y0) = (p.left.min(w), p.top.min(h));
    let (rw, rh) = (w.saturating_sub(p.left + p.right).max(1), h.saturating_sub(p.top + p.bottom).max(1));
    let seed = fit(edit.seed.to_rgb8(), rw, rh);
    let mask: Option<GrayImage> = edit.mask.map(|m| fit_gray(m.to_luma8(), rw, rh));
    let strength = edit.strength.clamp(0.0, 1.0) as f32;
    let blur = p.blur as f32;
    let mut out = generated.clone();
    for (x, y, px) in out.enumerate_pixels_mut() {
        let inside = x >= x0 && y >= y0 && x < x0 + rw && y < y0 + rh;
        if !inside {
            continue; // outpainted border: new picture only
        }
        let (sx, sy) = (x - x0, y - y0);
        let mut weight =
            strength * mask.as_ref().map_or(1.0, |m| f32::from(m.get_pixel(sx, sy).0[0]) / 255.0);
        if blur > 0.0 {
            // Feather toward each outpainted edge over `blur` pixels.
            let edges = [(p.left, sx), (p.right, rw - 1 - sx), (p.top, sy), (p.bottom, rh - 1 - sy)];
            for (border, d) in edges {
                if border > 0 && (d as f32) < blur {
                    weight = weight.max(1.0 - d as f32 / blur);
                }
            }
        }
        let s = seed.get_pixel(sx, sy).0;
        for (out, seed) in px.0.iter_mut().zip(s) {
            *out = (f32::from(seed) * (1.0 - weight) + f32::from(*out) * weight).round() as u8;
        }
    }
    out
}

fn fit(img: RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) { img } else { resize(&img, w, h, FilterType::Triangle) }
}

fn fit_gray(img: GrayImage, w: u32, h: u32) -> GrayImage {
    if img.dimensions() == (w, h) { img } else { resize(&img, w, h, FilterType::Triangle) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    fn solid(w: u32, h: u32, c: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(w, h, Rgb(c))
    }

    #[test]
    fn strength_moves_from_the_seed_image_to_the_drawing() {
        let generated = solid(64, 64, [200, 0, 0]);
        let seed = DynamicImage::ImageRgb8(solid(32, 32, [0, 0, 200]));
        let at = |strength| apply(&generated, &Edit { seed: &seed, mask: None, strength, outpaint: None });
        assert_eq!(at(0.0).get_pixel(10, 10).0, [0, 0, 200], "strength 0 keeps the seed image (resized)");
        assert_eq!(at(1.0).get_pixel(10, 10).0, [200, 0, 0], "strength 1 replaces it");
        assert_eq!(at(0.5).get_pixel(10, 10).0, [100, 0, 100]);
    }

    #[test]
    fn black_mask_pixels_are_kept_and_white_ones_repainted() {
        let generated = solid(64, 64, [200, 0, 0]);
        let seed = DynamicImage::ImageRgb8(solid(64, 64, [0, 0, 200]));
        let mut mask = GrayImage::new(64, 64);
        for x in 32..64 {
            for y in 0..64 {
                mask.put_pixel(x, y, Luma([255]));
            }
        }
        let mask = DynamicImage::ImageLuma8(mask);
        let out = apply(&generated, &Edit { seed: &seed, mask: Some(&mask), strength: 1.0, outpaint: None });
        assert_eq!(out.get_pixel(5, 5).0, [0, 0, 200]);
        assert_eq!(out.get_pixel(60, 5).0, [200, 0, 0]);
    }

    #[test]
    fn outpainting_keeps_the_seed_image_inside_new_borders() {
        let generated = solid(128, 64, [200, 0, 0]);
        let seed = DynamicImage::ImageRgb8(solid(64, 64, [0, 0, 200]));
        let outpaint = Some(Outpaint { left: 64, ..Outpaint::default() });
        let out = apply(&generated, &Edit { seed: &seed, mask: None, strength: 0.0, outpaint });
        assert_eq!(out.get_pixel(10, 10).0, [200, 0, 0], "the border is new");
        assert_eq!(out.get_pixel(100, 10).0, [0, 0, 200], "the seed image is untouched");
        // With a blur, the seed image's edge toward the border blends in.
        let outpaint = Some(Outpaint { left: 64, blur: 16, ..Outpaint::default() });
        let out = apply(&generated, &Edit { seed: &seed, mask: None, strength: 0.0, outpaint });
        assert_eq!(out.get_pixel(64, 10).0, [200, 0, 0]);
        assert_eq!(out.get_pixel(72, 10).0, [100, 0, 100]);
        assert_eq!(out.get_pixel(100, 10).0, [0, 0, 200]);
    }
}
