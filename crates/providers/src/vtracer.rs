//! `vtracer`: raster-to-SVG tracing on this server's CPUs, by the `vtracer` crate (hierarchical
//! color clustering, then curve fitting of each region's outline). A real vectorizer, not a
//! stand-in: it traces shapes and colors, without a learned model's cleanup of noisy photos.
//!
//! The input is decoded through the shared bounded [`Decoder`] (its header judged, its working
//! memory reserved) and traced on the fair CPU pool, like every local job. Dropping the job's
//! future (a cancelled task, a passed deadline) trips the tracer's cancel token, so the work
//! stops at its next stage instead of running on.

use crate::decode::{DecodeError, Decoder};
use crate::local::CpuPool;
use crate::{Artifact, Capabilities, Delivery, Job, Provider, ProviderError, Submitted};
use async_trait::async_trait;
use mediagate_core::ErrorCode;
use mediagate_core::task::{TaskRequest, TaskType};
use std::sync::Arc;

/// Working memory of the trace per input pixel beyond the RGBA copy it reads: the clustering's
/// per-pixel cluster index and the region masks and outlines built from it. An estimate from
/// the tracer's data structures; the shared budget only needs it to be of the right size.
const TRACE_BYTES_PER_PIXEL: u64 = 24;

/// The local vectorizer.
pub struct Vtracer {
    pool: CpuPool,
    decoder: Decoder,
}

impl Vtracer {
    /// A vectorizer sharing `pool` that decodes its inputs through `decoder`.
    pub fn new(pool: CpuPool, decoder: Decoder) -> Self {
        Vtracer { pool, decoder }
    }
}

/// Trips the tracer's cancel token when dropped.
struct CancelOnDrop(vtracer::CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[async_trait]
impl Provider for Vtracer {
    fn name(&self) -> &str {
        "vtracer"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { task_types: vec![TaskType::Vectorize], models: vec![], delivery: Delivery::Sync }
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let (TaskRequest::Vectorize(_), Some(input)) = (&job.request, job.input()) else {
            return Err(job.not_served(self.name()));
        };
        let size = self.decoder.check(&input.bytes, "input image").map_err(DecodeError::into_input_error)?;
        let pixels = u64::from(size.width) * u64::from(size.height);
        let need = size.bytes() + pixels * (4 + TRACE_BYTES_PER_PIXEL);
        let worker = self.pool.worker(job.account_id()).await;
        let reserved = self.decoder.reserve(need).await.map_err(DecodeError::into_input_error)?;
        let decoder = self.decoder.clone();
        let cancel = CancelOnDrop(vtracer::CancelToken::new());
        let token = cancel.0.clone();
        CpuPool::run_on(worker, move || {
            let _reserved = reserved;
            let input = job.input().expect("checked above");
            let img = decoder
                .decode_blocking(&input.bytes, "input image")
                .map_err(DecodeError::into_input_error)?;
            let rgba = img.into_rgba8();
            let (width, height) = (rgba.width() as usize, rgba.height() as usize);
            let image = vtracer::ColorImage { pixels: rgba.into_raw(), width, height };
            let svg = trace(&image, &token)?;
            Ok(Submitted::Done(vec![Artifact {
                bytes: svg.into_bytes(),
                content_type: "image/svg+xml",
                extension: "svg",
                seed: None,
                completion: None,
                fields: Default::default(),
            }]))
        })
        .await?
    }
}

/// Traces `image` with the tracer's default settings (color, stacked layers, spline curves).
fn trace(image: &vtracer::ColorImage, cancel: &vtracer::CancelToken) -> Result<String, ProviderError> {
    let failed = |e: vtracer::Error| {
        ProviderError::new(ErrorCode::ProviderError, "Vectorizing the image failed.", e.to_string())
    };
    let pipeline = vtracer::Config::default().build().map_err(failed)?;
    let doc = pipeline.run_with_progress(image, cancel, &mut |_| {}).map_err(failed)?;
    Ok(pipeline.writer.write(&doc))
}
