//! RGB to planar YUV 4:2:0 (I420), BT.601 limited range.
//!
//! Both codecs take 4:2:0 input and both decoders in browsers assume BT.601 limited range for
//! VP8 and for H.264 without other colour signalling, so one conversion serves both. Integer
//! arithmetic keeps it exact and platform-independent (the encoders' own converters use SIMD
//! paths we do not control).

use image::RgbImage;

/// Three planes; `width` and `height` are even (validated before we get here).
pub(crate) struct I420 {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl I420 {
    pub fn new(width: u32, height: u32) -> Self {
        let luma = (width * height) as usize;
        I420 { width, height, y: vec![0; luma], u: vec![0; luma / 4], v: vec![0; luma / 4] }
    }

    /// Converts `rgb` (same size as the planes) in place.
    pub fn fill_from_rgb(&mut self, rgb: &RgbImage) {
        debug_assert_eq!(rgb.dimensions(), (self.width, self.height));
        let w = self.width as usize;
        let px = rgb.as_raw();
        for (i, p) in px.chunks_exact(3).enumerate() {
            let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
            self.y[i] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
        let cw = w / 2;
        for cy in 0..(self.height as usize / 2) {
            for cx in 0..cw {
                // Average the 2x2 block in RGB, then convert: the standard 4:2:0 siting.
                let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let o = ((2 * cy + dy) * w + 2 * cx + dx) * 3;
                    r += i32::from(px[o]);
                    g += i32::from(px[o + 1]);
                    b += i32::from(px[o + 2]);
                }
                let (r, g, b) = ((r + 2) >> 2, (g + 2) >> 2, (b + 2) >> 2);
                let o = cy * cw + cx;
                self.u[o] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
                self.v[o] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_colours_convert_to_bt601_limited_range() {
        let mut planes = I420::new(2, 2);
        let white = RgbImage::from_pixel(2, 2, image::Rgb([255, 255, 255]));
        planes.fill_from_rgb(&white);
        assert_eq!((planes.y[0], planes.u[0], planes.v[0]), (235, 128, 128));
        let red = RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 0]));
        planes.fill_from_rgb(&red);
        assert_eq!((planes.y[3], planes.u[0], planes.v[0]), (82, 90, 240));
        let black = RgbImage::from_pixel(2, 2, image::Rgb([0, 0, 0]));
        planes.fill_from_rgb(&black);
        assert_eq!((planes.y[1], planes.u[0], planes.v[0]), (16, 128, 128));
    }
}
