//! Procedural frame drawing: the look of the stand-in.
//!
//! A scene is fixed once per spec (palette from the prompt, nudged by the seed; layout and
//! motion from the seed); frame `i` is that scene at time `i / fps`. All maths is f32 with
//! IEEE-exact operations and our own polynomial sine, so a frame depends on nothing but the spec.

use image::{RgbImage, imageops::FilterType};

use super::VideoSpec;
use crate::seeded::{SplitMix, fnv1a};

/// sin(2π·turns), max error about 0.001: a parabola refined once. Deliberately not `f32::sin`,
/// whose last bits depend on the platform's libm.
fn sin_turns(turns: f32) -> f32 {
    // Map to [-0.5, 0.5) turns, then to x in [-1, 1) where sin(pi x) is approximated.
    let x = 2.0 * (turns - (turns + 0.5).floor());
    let y = 4.0 * x * (1.0 - x.abs());
    0.225 * (y * y.abs() - y) + y
}

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = (h - h.floor()) * 6.0;
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

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[derive(Clone, Copy)]
enum Kind {
    Disc,
    Ring,
    Box,
}

/// One moving shape. Positions are fractions of the frame; sizes fractions of the short side.
struct Sprite {
    kind: Kind,
    base: (f32, f32),
    amp: (f32, f32),
    freq: (f32, f32),
    phase: (f32, f32),
    size: f32,
    pulse_freq: f32,
    pulse_phase: f32,
    colour: [f32; 3],
    alpha: f32,
}

/// Everything fixed for a clip.
pub(crate) struct Scene {
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
    dark: [f32; 3],
    light: [f32; 3],
    angle0: f32,
    spin: f32,
    sprites: Vec<Sprite>,
    accent: [f32; 3],
    /// The input image scaled to cover the frame, as linear f32 RGB rows.
    background: Option<Vec<f32>>,
}

impl Scene {
    pub fn new(spec: &VideoSpec) -> Self {
        let mut palette = SplitMix(fnv1a(&spec.prompt));
        let mut rng = SplitMix(spec.seed ^ 0x5EED_0FF1_DE00);
        let base_hue = palette.unit() + rng.range(-0.12, 0.12);
        let spread = palette.range(0.08, 0.3);
        let dark = hsv(base_hue, palette.range(0.5, 0.8), palette.range(0.12, 0.3));
        let light = hsv(base_hue + spread, palette.range(0.45, 0.75), palette.range(0.7, 0.95));
        let accent = hsv(base_hue + 0.5, 0.35, 0.98);
        let count = 5 + (rng.next() % 4) as usize;
        let sprites = (0..count)
            .map(|i| {
                let kind = match rng.next() % 3 {
                    0 => Kind::Disc,
                    1 => Kind::Ring,
                    _ => Kind::Box,
                };
                // Alternate palette hues so neighbouring shapes contrast.
                let hue = base_hue + spread * (i % 3) as f32 + rng.range(-0.05, 0.05);
                Sprite {
                    kind,
                    base: (rng.range(0.2, 0.8), rng.range(0.2, 0.8)),
                    amp: (rng.range(0.05, 0.3), rng.range(0.05, 0.25)),
                    // Cycles per second: slow enough to read as deliberate drift.
                    freq: (rng.range(0.05, 0.25), rng.range(0.05, 0.25)),
                    phase: (rng.unit(), rng.unit()),
                    size: rng.range(0.06, 0.2),
                    pulse_freq: rng.range(0.1, 0.4),
                    pulse_phase: rng.unit(),
                    colour: hsv(hue, rng.range(0.45, 0.85), rng.range(0.75, 1.0)),
                    alpha: rng.range(0.55, 0.85),
                }
            })
            .collect();
        let background = spec.first_frame.as_ref().map(|img| {
            // Cover: scale so the image fills the frame, then centre-crop.
            let (w, h) = (spec.width, spec.height);
            let scale = (w as f32 / img.width() as f32).max(h as f32 / img.height() as f32);
            let sw = ((img.width() as f32 * scale).ceil() as u32).max(w);
            let sh = ((img.height() as f32 * scale).ceil() as u32).max(h);
            let scaled = image::imageops::resize(img, sw, sh, FilterType::Triangle);
            let cropped = image::imageops::crop_imm(&scaled, (sw - w) / 2, (sh - h) / 2, w, h).to_image();
            cropped.as_raw().iter().map(|&c| f32::from(c) / 255.0).collect()
        });
        Scene {
            width: spec.width,
            height: spec.height,
            fps: spec.fps,
            frames: spec.frame_count(),
            dark,
            light,
            angle0: rng.unit(),
            spin: rng.range(-0.04, 0.04),
            sprites,
            accent,
            background,
        }
    }

    /// Draws frame `index` at time `index / fps`.
    pub fn draw(&self, index: u32) -> RgbImage {
        let (w, h) = (self.width as usize, self.height as usize);
        let t = index as f32 / self.fps as f32;
        let mut buf = match &self.background {
            Some(bg) => bg.clone(),
            None => self.gradient(t),
        };
        // Over an input image the shapes fade in, so the clip opens on the image itself.
        let fade = if self.background.is_some() { smoothstep(0.0, 1.0, t) } else { 1.0 };
        let short = w.min(h) as f32;
        for s in &self.sprites {
            let cx = (s.base.0 + s.amp.0 * sin_turns(s.freq.0 * t + s.phase.0)) * w as f32;
            let cy = (s.base.1 + s.amp.1 * sin_turns(s.freq.1 * t + s.phase.1)) * h as f32;
            let r = s.size * short * (1.0 + 0.15 * sin_turns(s.pulse_freq * t + s.pulse_phase));
            self.sprite(&mut buf, s, cx, cy, r, s.alpha * fade);
        }
        self.progress_bar(&mut buf, index);
        caption(&mut buf, w, h);
        let bytes = buf.iter().map(|&c| (c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8).collect();
        RgbImage::from_raw(self.width, self.height, bytes).expect("buffer matches frame size")
    }

    /// Two-colour linear gradient whose direction turns by `spin` turns per second, with a
    /// soft highlight that drifts along it.
    fn gradient(&self, t: f32) -> Vec<f32> {
        let (w, h) = (self.width as usize, self.height as usize);
        let a = self.angle0 + self.spin * t;
        let (dx, dy) = (sin_turns(a + 0.25), sin_turns(a));
        // Project corners so the gradient spans exactly the frame.
        let proj = |x: f32, y: f32| x * dx + y * dy;
        let corners = [proj(0.0, 0.0), proj(w as f32, 0.0), proj(0.0, h as f32), proj(w as f32, h as f32)];
        let lo = corners.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = corners.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = (hi - lo).max(1.0);
        let glow_at = 0.5 + 0.35 * sin_turns(0.07 * t + self.angle0);
        let mut buf = vec![0.0f32; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let g = (proj(x as f32, y as f32) - lo) / span;
                let d = g - glow_at;
                let glow = 0.18 * (1.0 - (d * d * 12.0).min(1.0));
                let o = (y * w + x) * 3;
                for c in 0..3 {
                    buf[o + c] = self.dark[c] + (self.light[c] - self.dark[c]) * g + glow;
                }
            }
        }
        buf
    }

    fn sprite(&self, buf: &mut [f32], s: &Sprite, cx: f32, cy: f32, r: f32, alpha: f32) {
        let (w, h) = (self.width as i64, self.height as i64);
        let reach = r * 1.2 + 2.0;
        let x0 = ((cx - reach).floor() as i64).clamp(0, w);
        let x1 = ((cx + reach).ceil() as i64).clamp(0, w);
        let y0 = ((cy - reach).floor() as i64).clamp(0, h);
        let y1 = ((cy + reach).ceil() as i64).clamp(0, h);
        for y in y0..y1 {
            for x in x0..x1 {
                let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                // Signed distance to the outline, negative inside.
                let d = match s.kind {
                    Kind::Disc => (px * px + py * py).sqrt() - r,
                    Kind::Ring => ((px * px + py * py).sqrt() - r * 0.8).abs() - r * 0.2,
                    Kind::Box => {
                        let corner = r * 0.25;
                        let qx = (px.abs() - (r - corner)).max(0.0);
                        let qy = (py.abs() - (r - corner)).max(0.0);
                        (qx * qx + qy * qy).sqrt() - corner
                    }
                };
                // One-pixel soft edge: cheap anti-aliasing.
                let cover = (0.5 - d).clamp(0.0, 1.0) * alpha;
                if cover <= 0.0 {
                    continue;
                }
                let o = (y as usize * self.width as usize + x as usize) * 3;
                for c in 0..3 {
                    buf[o + c] += (s.colour[c] - buf[o + c]) * cover;
                }
            }
        }
    }

    /// A thin bar along the bottom edge showing how far through the clip this frame is.
    fn progress_bar(&self, buf: &mut [f32], index: u32) {
        let (w, h) = (self.width as usize, self.height as usize);
        let thick = (h / 90).max(2);
        let filled = (w as u64 * u64::from(index + 1) / u64::from(self.frames)) as usize;
        for y in h - thick..h {
            for x in 0..w {
                let o = (y * w + x) * 3;
                let (colour, a) = if x < filled { (self.accent, 0.9) } else { ([0.0; 3], 0.35) };
                for c in 0..3 {
                    buf[o + c] += (colour[c] - buf[o + c]) * a;
                }
            }
        }
    }
}

/// The caption burnt into every frame, so the clip is labelled wherever it is played.
const CAPTION: [&str; 2] = ["PROCEDURAL STAND-IN", "NOT A GENERATIVE MODEL"];
/// Fallback when the frame is too narrow for the full caption at the smallest scale.
const SHORT_CAPTION: &str = "STAND-IN";

/// 5x7 bitmap glyphs (rows top to bottom, bit 4 = leftmost column) for the caption's letters.
fn glyph(c: char) -> [u8; 7] {
    match c {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 25, 21, 19, 17, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        _ => [0; 7],
    }
}

/// Draws the caption in the top-left corner on a translucent dark plate.
fn caption(buf: &mut [f32], w: usize, h: usize) {
    let margin = (h / 40).max(3);
    let scale = (h / 180).max(1);
    let advance = 6 * scale;
    let line_h = 9 * scale;
    let widest = CAPTION.iter().map(|l| l.len()).max().unwrap_or(0);
    let short = [SHORT_CAPTION];
    let lines: &[&str] = if widest * advance + 3 * margin <= w { &CAPTION } else { &short };
    let text_w = lines.iter().map(|l| l.len()).max().unwrap_or(0) * advance - scale;
    let pad = 2 * scale;
    let plate_w = (text_w + 2 * pad).min(w - margin);
    let plate_h = (lines.len() * line_h - 2 * scale + 2 * pad).min(h - margin);
    for y in margin..margin + plate_h {
        for x in margin..margin + plate_w {
            let o = (y * w + x) * 3;
            for c in 0..3 {
                buf[o + c] *= 0.4;
            }
        }
    }
    for (row, line) in lines.iter().enumerate() {
        let top = margin + pad + row * line_h;
        for (i, ch) in line.chars().enumerate() {
            let left = margin + pad + i * advance;
            for (gy, bits) in glyph(ch).iter().enumerate() {
                for gx in 0..5 {
                    if bits & (16 >> gx) == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let (x, y) = (left + gx * scale + sx, top + gy * scale + sy);
                            if x < w && y < h {
                                let o = (y * w + x) * 3;
                                buf[o..o + 3].copy_from_slice(&[0.96, 0.96, 0.96]);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_sine_tracks_the_real_one() {
        for i in -400..=400 {
            let turns = i as f32 / 97.0;
            let err = (sin_turns(turns) - (turns * std::f32::consts::TAU).sin()).abs();
            assert!(err < 0.002, "sin_turns({turns}) off by {err}");
        }
    }

    #[test]
    fn every_caption_letter_has_a_glyph() {
        for ch in CAPTION.iter().chain([&SHORT_CAPTION]).flat_map(|l| l.chars()) {
            assert!(ch == ' ' || glyph(ch) != [0; 7], "no glyph for {ch:?} in the caption");
        }
    }
}
