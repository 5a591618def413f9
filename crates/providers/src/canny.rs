//! `canny`: the Canny edge detector on this server's CPUs, for `imageControlNetPreProcess` with
//! `preProcessorType: "canny"`. A real detector (imageproc: Gaussian blur, Sobel gradients,
//! non-maximum suppression, hysteresis between `lowThresholdCanny` and `highThresholdCanny`), the
//! guide a canny ControlNet expects: white edges on black. The other preprocessors (depth, pose…)
//! need learned models and are refused by this provider's models at admission.
//!
//! The input is decoded through the shared bounded [`Decoder`] and the detector runs on the fair
//! CPU pool, like every local job.

use crate::decode::{self, DecodeError, Decoder};
use crate::encode::image_artifact;
use crate::local::CpuPool;
use crate::{Capabilities, Delivery, Job, Provider, ProviderError, Submitted};
use async_trait::async_trait;
use image::imageops::{FilterType, resize};
use image::{GrayImage, RgbImage};
use mediagate_core::task::{ParamSupport, TaskRequest, TaskType};
use std::sync::Arc;

/// The local edge detector.
pub struct Canny {
    pool: CpuPool,
    decoder: Decoder,
}

impl Canny {
    /// A detector sharing `pool` that decodes its inputs through `decoder`.
    pub fn new(pool: CpuPool, decoder: Decoder) -> Self {
        Canny { pool, decoder }
    }
}

/// White edges on black: `gray` (resized to `size` first when given) through Canny with the
/// hysteresis thresholds `low` and `high` (0 to 255).
pub fn edges(gray: &GrayImage, size: Option<(u32, u32)>, low: u32, high: u32) -> GrayImage {
    let resized;
    let gray = match size {
        Some((w, h)) if (w, h) != gray.dimensions() => {
            resized = resize(gray, w, h, FilterType::Triangle);
            &resized
        }
        _ => gray,
    };
    imageproc::edges::canny(gray, low as f32, high as f32)
}

#[async_trait]
impl Provider for Canny {
    fn name(&self) -> &str {
        "canny"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            task_types: vec![TaskType::ImageControlNetPreProcess],
            models: vec![],
            delivery: Delivery::Sync,
        }
    }

    fn param_support(&self, _model: &str) -> ParamSupport {
        ParamSupport::Only(vec!["canny"])
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let (TaskRequest::ImageControlNetPreProcess(request), Some(input)) = (&job.request, job.input())
        else {
            return Err(job.not_served(self.name()));
        };
        let size = self.decoder.check(&input.bytes, "input image").map_err(DecodeError::into_input_error)?;
        let (w, h) = (request.width.unwrap_or(size.width), request.height.unwrap_or(size.height));
        // The decode, its gray copy, the resize, and the detector's gradient and magnitude
        // buffers (f32 each) with its output.
        let px = |w: u32, h: u32| u64::from(w) * u64::from(h);
        let need = decode::rgb_cost(&size)
            + px(size.width, size.height)
            + decode::resize_cost((size.width, size.height), (w, h), 1)
            + px(w, h) * (3 * 4 + 1 + 3);
        let worker = self.pool.worker(job.account_id()).await;
        let reserved = self.decoder.reserve(need).await.map_err(DecodeError::into_input_error)?;
        let decoder = self.decoder.clone();
        CpuPool::run_on(worker, move || {
            let _reserved = reserved;
            let (TaskRequest::ImageControlNetPreProcess(request), Some(input)) = (&job.request, job.input())
            else {
                unreachable!("checked above")
            };
            let img = decoder
                .decode_blocking(&input.bytes, "input image")
                .map_err(DecodeError::into_input_error)?;
            let (low, high) = request.canny_thresholds();
            let guide = edges(&img.to_luma8(), Some((w, h)), low, high);
            let rgb: RgbImage = image::DynamicImage::ImageLuma8(guide).to_rgb8();
            Ok(Submitted::Done(vec![image_artifact(&rgb, &request.output, None)?]))
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn a_square_gives_its_outline_and_nothing_else() {
        let mut img = GrayImage::from_pixel(64, 64, Luma([0]));
        for x in 16..48 {
            for y in 16..48 {
                img.put_pixel(x, y, Luma([255]));
            }
        }
        let e = edges(&img, None, 50, 100);
        assert_eq!(e.get_pixel(32, 32).0, [0], "no edge inside the square");
        assert_eq!(e.get_pixel(4, 4).0, [0], "no edge in the empty corner");
        let on_outline = (14..18).any(|x| e.get_pixel(x, 32).0 == [255]);
        assert!(on_outline, "the left side of the square is an edge");
        // A flat image has no edges at any threshold.
        let flat = GrayImage::from_pixel(64, 64, Luma([90]));
        assert!(edges(&flat, None, 0, 10).pixels().all(|p| p.0 == [0]));
        // Resizing first gives a guide of the size asked for.
        assert_eq!(edges(&img, Some((128, 96)), 50, 100).dimensions(), (128, 96));
    }
}
