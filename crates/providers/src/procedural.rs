//! The procedural image stand-in.
//!
//! **Not a generative model.** It draws a deterministic picture from (prompt, seed, width,
//! height): a seeded two-colour gradient with soft shapes over it. The prompt picks the palette,
//! the seed the layout, so the same inputs give byte-identical output and another seed a visibly
//! different image. It exists so the whole pipeline (validation, credits, storage, delivery) runs
//! and can be benchmarked without a GPU.

use crate::seeded::{SplitMix, fnv1a};
use image::RgbImage;

/// One sentence users see wherever the stand-in is named.
pub const STAND_IN_LABEL: &str = "procedural stand-in (not a generative model): draws seeded \
    gradients and shapes so the pipeline runs without a GPU";

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = (h.rem_euclid(1.0)) * 6.0;
    let i = h.floor();
    let f = h - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match i as u32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

enum Shape {
    Disc { cx: f32, cy: f32, r: f32 },
    Ring { cx: f32, cy: f32, r: f32, w: f32 },
    Rect { cx: f32, cy: f32, hw: f32, hh: f32 },
}

struct Layer {
    shape: Shape,
    colour: [f32; 3],
    alpha: f32,
}

impl Shape {
    /// Coverage in [0, 1] of the points (`xs[i]`, `y`) into `out`, with a one-pixel soft edge
    /// (cheap anti-aliasing). The shape is matched once per row, not once per pixel.
    fn coverage_row(&self, xs: &[f32], y: f32, inv_px: f32, out: &mut [f32]) {
        let edge = |d: f32| (0.5 - d * inv_px).clamp(0.0, 1.0);
        match *self {
            // sqrt of the sum of squares, not hypot: no overflow is possible at these scales and
            // hypot costs several times as much.
            Shape::Disc { cx, cy, r } => {
                let dy2 = (y - cy) * (y - cy);
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = edge(((x - cx) * (x - cx) + dy2).sqrt() - r);
                }
            }
            Shape::Ring { cx, cy, r, w } => {
                let dy2 = (y - cy) * (y - cy);
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = edge((((x - cx) * (x - cx) + dy2).sqrt() - r).abs() - w);
                }
            }
            Shape::Rect { cx, cy, hw, hh } => {
                let dy = (y - cy).abs() - hh;
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = edge(((x - cx).abs() - hw).max(dy));
                }
            }
        }
    }

    /// Bounding box in normalised coordinates, to skip pixels a shape cannot touch.
    fn bounds(&self) -> (f32, f32, f32, f32) {
        match *self {
            Shape::Disc { cx, cy, r } => (cx - r, cy - r, cx + r, cy + r),
            Shape::Ring { cx, cy, r, w } => (cx - r - w, cy - r - w, cx + r + w, cy + r + w),
            Shape::Rect { cx, cy, hw, hh } => (cx - hw, cy - hh, cx + hw, cy + hh),
        }
    }
}

/// Renders the stand-in picture. Deterministic for equal inputs on every platform.
pub fn render(prompt: &str, seed: u64, width: u32, height: u32) -> RgbImage {
    let mut palette_rng = SplitMix(fnv1a(prompt));
    let mut rng = SplitMix(seed ^ fnv1a(prompt).rotate_left(17));
    let base_hue = palette_rng.unit();
    let spread = palette_rng.range(0.08, 0.45);
    let c0 = hsv(base_hue, palette_rng.range(0.45, 0.8), palette_rng.range(0.25, 0.5));
    let c1 = hsv(base_hue + spread, palette_rng.range(0.4, 0.9), palette_rng.range(0.7, 1.0));
    let angle = rng.range(0.0, std::f32::consts::TAU);
    let (gx, gy) = (angle.cos(), angle.sin());

    let aspect = width as f32 / height as f32;
    let n_layers = 4 + (rng.next() % 6) as usize;
    let layers: Vec<Layer> = (0..n_layers)
        .map(|i| {
            let cx = rng.range(0.1, 0.9) * aspect;
            let cy = rng.range(0.1, 0.9);
            let size = rng.range(0.06, 0.32);
            let shape = match rng.next() % 3 {
                0 => Shape::Disc { cx, cy, r: size },
                1 => Shape::Ring { cx, cy, r: size, w: size * rng.range(0.08, 0.25) },
                _ => Shape::Rect { cx, cy, hw: size * rng.range(0.5, 1.4), hh: size * rng.range(0.3, 1.0) },
            };
            let hue = base_hue + spread * (i as f32 / n_layers as f32) + rng.range(-0.1, 0.5);
            Layer {
                shape,
                colour: hsv(hue, rng.range(0.5, 0.95), rng.range(0.6, 1.0)),
                alpha: rng.range(0.45, 0.9),
            }
        })
        .collect();

    // Normalised coordinates: y in [0, 1], x in [0, aspect]; `px` is one pixel in those units.
    let px = 1.0 / height as f32;
    let inv_px = height as f32;
    let w = width as usize;
    let mut img = RgbImage::new(width, height);
    // One row at a time, a plane per channel: the per-shape loops below then run over plain
    // f32 slices, which the compiler vectorises (the stand-in's whole cost was this loop).
    let xs_norm: Vec<f32> = (0..w).map(|x| (x as f32 + 0.5) * px).collect();
    let (mut r, mut g, mut b) = (vec![0f32; w], vec![0f32; w], vec![0f32; w]);
    let mut cover = vec![0f32; w];
    for (y, out_row) in img.chunks_exact_mut(w * 3).enumerate() {
        let ny = (y as f32 + 0.5) * px;
        for x in 0..w {
            let t = (((xs_norm[x] / aspect - 0.5) * gx + (ny - 0.5) * gy) + 0.5).clamp(0.0, 1.0);
            r[x] = c0[0] + (c1[0] - c0[0]) * t;
            g[x] = c0[1] + (c1[1] - c0[1]) * t;
            b[x] = c0[2] + (c1[2] - c0[2]) * t;
        }
        for layer in &layers {
            let (x0, y0, x1, y1) = layer.shape.bounds();
            if ny < y0 - px || ny > y1 + px {
                continue;
            }
            let xs = (((x0 - px) * inv_px).floor().max(0.0)) as usize;
            let xe = ((((x1 + px) * inv_px).ceil()) as usize).min(w);
            if xs >= xe {
                continue;
            }
            layer.shape.coverage_row(&xs_norm[xs..xe], ny, inv_px, &mut cover[xs..xe]);
            let [lr, lg, lb] = layer.colour;
            for (((c, pr), pg), pb) in
                cover[xs..xe].iter().zip(&mut r[xs..xe]).zip(&mut g[xs..xe]).zip(&mut b[xs..xe])
            {
                // A zero coverage leaves the pixel exactly as it was, so no branch is needed.
                let a = c * layer.alpha;
                *pr += (lr - *pr) * a;
                *pg += (lg - *pg) * a;
                *pb += (lb - *pb) * a;
            }
        }
        for (x, px_out) in out_row.chunks_exact_mut(3).enumerate() {
            // `as u8` saturates, so +0.5 then truncation rounds without a libm call.
            px_out[0] = (r[x] * 255.0 + 0.5) as u8;
            px_out[1] = (g[x] * 255.0 + 0.5) as u8;
            px_out[2] = (b[x] * 255.0 + 0.5) as u8;
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_pixels_other_seed_other_picture() {
        let a = render("a red fox", 42, 128, 64);
        assert_eq!(a, render("a red fox", 42, 128, 64));
        let b = render("a red fox", 43, 128, 64);
        let differing = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
        // "Visibly different": most of the picture changes, not a handful of pixels.
        assert!(differing > (128 * 64) / 4, "only {differing} pixels differ");
    }

    #[test]
    fn the_prompt_changes_the_palette() {
        let a = render("sunset over the sea", 7, 64, 64);
        let b = render("a forest at night", 7, 64, 64);
        assert_ne!(a, b);
    }

    #[test]
    fn is_not_flat() {
        let a = render("x", 1, 64, 64);
        let first = a.get_pixel(0, 0);
        assert!(a.pixels().any(|p| p != first));
    }
}
