//! The procedural video stand-in as a provider (see [`crate::video`]): **not a generative
//! model**; it renders a real MP4 or WebM file so the video path runs without a GPU.

use crate::decode::{self, DecodeError, Decoder};
use crate::local::CpuPool;
use crate::video::{VideoError, VideoFormat as Container, VideoSpec, render_video_with};
use crate::{
    Artifact, Capabilities, Delivery, Job, Progress, ProgressFn, Provider, ProviderError, Submitted,
    no_progress,
};
use async_trait::async_trait;
use mediagate_core::ErrorCode;
use mediagate_core::task::{TaskRequest, TaskType, VideoFormat};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The procedural video stand-in.
pub struct ProceduralVideo {
    pool: CpuPool,
    decoder: Decoder,
}

impl ProceduralVideo {
    /// A stand-in sharing `pool` with the other local providers, decoding first frames through
    /// `decoder`.
    pub fn new(pool: CpuPool, decoder: Decoder) -> Self {
        ProceduralVideo { pool, decoder }
    }
}

#[async_trait]
impl Provider for ProceduralVideo {
    fn name(&self) -> &str {
        "procedural-video"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { task_types: vec![TaskType::VideoInference], models: vec![], delivery: Delivery::Sync }
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        self.submit_with_progress(job, &no_progress()).await
    }

    async fn submit_with_progress(
        &self,
        job: Arc<Job>,
        progress: &ProgressFn,
    ) -> Result<Submitted, ProviderError> {
        let (TaskRequest::VideoInference(request), Some(seed)) = (&job.request, job.seed()) else {
            return Err(job.not_served("procedural-video"));
        };
        let first_frame = job.input();
        // The first frame is judged from its header here; once a worker is free its working
        // memory is reserved, and it is decoded with the render, on the blocking pool.
        let need = match first_frame {
            None => None,
            Some(a) => {
                let size =
                    self.decoder.check(&a.bytes, "first frame").map_err(DecodeError::into_input_error)?;
                let to = (request.width, request.height);
                Some(
                    size.bytes()
                        + decode::resize_cost(
                            (size.width, size.height),
                            fill_size((size.width, size.height), to),
                            size.bytes_per_pixel,
                        )
                        + u64::from(to.0) * u64::from(to.1) * 3,
                )
            }
        };
        let worker = self.pool.worker(job.account_id()).await;
        let reserved = match need {
            None => None,
            Some(need) => Some(self.decoder.reserve(need).await.map_err(DecodeError::into_input_error)?),
        };
        let spec = VideoSpec {
            prompt: request.positive_prompt.clone(),
            seed,
            width: request.width,
            height: request.height,
            duration_secs: request.duration_secs,
            fps: request.fps,
            format: match request.video_format {
                VideoFormat::Mp4 => Container::Mp4,
                VideoFormat::Webm => Container::Webm,
            },
            first_frame: None,
        };
        let job = job.clone();
        let decoder = self.decoder.clone();
        // Dropping this future (the task was cancelled, or its deadline passed) stops the render
        // at the next frame instead of letting it run to the end on a blocking thread.
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let stopped = stop.0.clone();
        let progress = progress.clone();
        let account = job.account_id();
        self.pool
            .run_taking_turns(worker, account, move |turn| {
                let mut spec = spec;
                if let Some(a) = job.input() {
                    let img = decoder
                        .decode_blocking(&a.bytes, "first frame")
                        .map_err(DecodeError::into_input_error)?;
                    // The stand-in draws over the image at the video's size.
                    spec.first_frame = Some(
                        img.resize_to_fill(spec.width, spec.height, image::imageops::FilterType::Triangle)
                            .to_rgb8(),
                    );
                    drop(img);
                }
                drop(reserved);
                let mut on_frame = |done: u32, total: u32| {
                    progress(Progress { fraction: done as f32 / total as f32 });
                    // Between frames another account's waiting job may take this worker.
                    turn.give_way();
                    !stopped.load(Ordering::Relaxed)
                };
                let v = render_video_with(&spec, &mut on_frame).map_err(|e| match e {
                    VideoError::Stopped => ProviderError::new(
                        ErrorCode::ServiceUnavailable,
                        "The render was stopped.",
                        "procedural-video render stopped by its caller",
                    ),
                    e => ProviderError::new(
                        ErrorCode::InvalidParameterValue,
                        format!("The video cannot be rendered: {e}."),
                        e.to_string(),
                    ),
                })?;
                Ok(Submitted::Done(vec![Artifact {
                    bytes: v.bytes,
                    content_type: v.content_type,
                    extension: v.extension,
                    seed: Some(seed),
                    completion: None,
                    fields: Default::default(),
                }]))
            })
            .await?
    }
}

/// The size `resize_to_fill` scales a `from` picture to before cropping it to `to`.
fn fill_size(from: (u32, u32), to: (u32, u32)) -> (u32, u32) {
    let (fw, fh) = (u64::from(from.0.max(1)), u64::from(from.1.max(1)));
    let (tw, th) = (u64::from(to.0), u64::from(to.1));
    // Scale so both sides cover the target: by the larger of the two ratios.
    if tw * fh >= th * fw {
        (to.0, u32::try_from((fh * tw).div_ceil(fw)).unwrap_or(u32::MAX))
    } else {
        (u32::try_from((fw * th).div_ceil(fh)).unwrap_or(u32::MAX), to.1)
    }
}
