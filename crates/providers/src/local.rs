//! Providers that run inside the mediagate process on the CPU.
//!
//! CPU work goes to the blocking pool behind a semaphore sized to the machine's cores, so a
//! burst of large renders queues instead of starving the async runtime or oversubscribing CPUs.

use crate::decode::{self, DecodeError, Decoder};
use crate::{
    Capabilities, Delivery, Job, Provider, ProviderError, Submitted, encode::image_artifact, img2img,
    lanczos, procedural,
};
use async_trait::async_trait;
use mediagate_core::ErrorCode;
use mediagate_core::fair::FairSemaphore;
use mediagate_core::task::{ParamSupport, TaskRequest, TaskType};
use std::sync::Arc;

/// A shared bound on CPU-bound work, fair across accounts: a freed worker goes to the waiting
/// account served least recently (see [`FairSemaphore`]), so one account's queue of big
/// renders delays another account's job by at most one render.
#[derive(Clone)]
pub struct CpuPool(FairSemaphore);

impl CpuPool {
    /// A pool admitting `permits` jobs at once (at least one).
    pub fn new(permits: usize) -> Self {
        CpuPool(FairSemaphore::new(permits.max(1)))
    }

    /// Runs `f` on the runtime thread itself when the job is tiny (at most
    /// [`INLINE_MAX_PIXELS`] pixels of work, tens of microseconds), else like [`CpuPool::run`].
    /// Handing a tiny render to the blocking pool costs more than the render: two thread
    /// hand-offs and wake-ups per task.
    pub(crate) async fn run_sized<T: Send + 'static>(
        &self,
        pixels: u64,
        account_id: i64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ProviderError> {
        if pixels <= INLINE_MAX_PIXELS {
            return Ok(f());
        }
        self.run(account_id, f).await
    }

    /// Runs `f` on the blocking pool once a worker is free for `account_id`.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        account_id: i64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ProviderError> {
        let worker = self.worker(account_id).await;
        Self::run_on(worker, f).await
    }

    /// Waits for a worker for `account_id`, in the fair queue. Jobs that also need decode
    /// memory take the worker first: only running jobs then hold the decode budget, so one
    /// account's queued jobs cannot fill it ahead of another account's turn.
    pub(crate) async fn worker(&self, account_id: i64) -> Worker {
        Worker { _permit: self.0.acquire(account_id).await }
    }

    /// Runs a long job on the blocking pool on a worker already taken, giving the worker up
    /// between its steps when other accounts wait (see [`Turn`]).
    pub(crate) async fn run_taking_turns<T: Send + 'static>(
        &self,
        worker: Worker,
        account_id: i64,
        f: impl FnOnce(&mut Turn) -> T + Send + 'static,
    ) -> Result<T, ProviderError> {
        let mut turn = Turn {
            pool: self.0.clone(),
            account: account_id,
            permit: Some(worker._permit),
            runtime: tokio::runtime::Handle::current(),
        };
        tokio::task::spawn_blocking(move || f(&mut turn)).await.map_err(|e| {
            ProviderError::new(ErrorCode::ProviderError, "The local provider failed.", e.to_string())
        })
    }

    /// Runs `f` on the blocking pool on a worker already taken.
    pub(crate) async fn run_on<T: Send + 'static>(
        worker: Worker,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ProviderError> {
        let _worker = worker;
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            ProviderError::new(ErrorCode::ProviderError, "The local provider failed.", e.to_string())
        })
    }
}

/// A worker of the [`CpuPool`], freed when dropped.
pub(crate) struct Worker {
    _permit: mediagate_core::fair::FairPermit,
}

/// A long job's hold on its worker. Fair queueing alone cannot help an account whose small job
/// waits behind other accounts' long renders already running (every worker busy for seconds),
/// so a long job calls [`Turn::give_way`] between steps (a video between frames): when another
/// account waits, the worker goes to it (it was served less recently) and the long job queues
/// for its next turn.
pub(crate) struct Turn {
    pool: FairSemaphore,
    account: i64,
    permit: Option<mediagate_core::fair::FairPermit>,
    runtime: tokio::runtime::Handle,
}

impl Turn {
    /// Hands the worker to another account if one waits, and waits for it back. Blocking: call
    /// from the job's blocking thread.
    pub(crate) fn give_way(&mut self) {
        if self.pool.others_waiting(self.account) {
            self.permit = None;
            self.permit = Some(self.runtime.block_on(self.pool.reacquire(self.account)));
        }
    }
}

/// Renders up to this many pixels run inline (96x96: well under 100 µs with PNG encoding).
pub const INLINE_MAX_PIXELS: u64 = 96 * 96;

/// The procedural image stand-in (see [`procedural`]), with image to image (see [`img2img`]).
pub struct Procedural {
    pool: CpuPool,
    decoder: Decoder,
}

impl Procedural {
    /// A stand-in sharing `pool` that decodes seed images and masks through `decoder`.
    pub fn new(pool: CpuPool, decoder: Decoder) -> Self {
        Procedural { pool, decoder }
    }

    /// Image to image: the seed image (and mask) decoded within the decode bounds and memory
    /// budget on a worker of the fair pool, then each result blended from it.
    async fn edit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let TaskRequest::ImageInference(request) = &job.request else {
            return Err(job.not_served(self.name()));
        };
        // The intake fetched the seed image first and the mask next (see `ImageInference::inputs`).
        let mut inputs = job.inputs.iter();
        let (Some(seed), mask) = (inputs.next(), request.mask_image.as_ref().and_then(|_| inputs.next()))
        else {
            return Err(job.not_served(self.name()));
        };
        let seed_size =
            self.decoder.check(&seed.bytes, "seed image").map_err(DecodeError::into_input_error)?;
        let mask_size = match mask {
            Some(m) => {
                Some(self.decoder.check(&m.bytes, "mask image").map_err(DecodeError::into_input_error)?)
            }
            None => None,
        };
        let out = (request.width, request.height);
        let need = decode::rgb_cost(&seed_size)
            + mask_size.as_ref().map_or(0, decode::rgb_cost)
            + img2img::cost(
                (seed_size.width, seed_size.height),
                mask_size.as_ref().map(|m| (m.width, m.height)),
                out,
            );
        let worker = self.pool.worker(job.account_id()).await;
        let reserved = self.decoder.reserve(need).await.map_err(DecodeError::into_input_error)?;
        let decoder = self.decoder.clone();
        CpuPool::run_on(worker, move || {
            let _reserved = reserved;
            let TaskRequest::ImageInference(request) = &job.request else { unreachable!("checked above") };
            let mut inputs = job.inputs.iter();
            let seed = inputs.next().expect("checked above");
            let seed =
                decoder.decode_blocking(&seed.bytes, "seed image").map_err(DecodeError::into_input_error)?;
            let mask = match request.mask_image.as_ref().and_then(|_| inputs.next()) {
                Some(m) => Some(
                    decoder.decode_blocking(&m.bytes, "mask image").map_err(DecodeError::into_input_error)?,
                ),
                None => None,
            };
            let edit = img2img::Edit {
                seed: &seed,
                mask: mask.as_ref(),
                strength: request.strength_or_default(),
                outpaint: request.outpaint,
            };
            job.seeds
                .iter()
                .map(|&seed| {
                    let drawn =
                        procedural::render(&request.positive_prompt, seed, request.width, request.height);
                    image_artifact(&img2img::apply(&drawn, &edit), &request.output, Some(seed))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Submitted::Done)
        })
        .await?
    }
}

#[async_trait]
impl Provider for Procedural {
    fn name(&self) -> &str {
        "procedural"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { task_types: vec![TaskType::ImageInference], models: vec![], delivery: Delivery::Sync }
    }

    fn param_support(&self, _model: &str) -> ParamSupport {
        ParamSupport::Only(vec!["seedImage", "maskImage", "outpaint"])
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let (TaskRequest::ImageInference(request), seeds) = (&job.request, &job.seeds) else {
            return Err(job.not_served(self.name()));
        };
        if request.seed_image.is_some() {
            return self.edit(job).await;
        }
        let pixels = u64::from(request.width) * u64::from(request.height) * seeds.len() as u64;
        let account = job.account_id();
        self.pool
            .run_sized(pixels, account, move || {
                let (TaskRequest::ImageInference(request), seeds) = (&job.request, &job.seeds) else {
                    unreachable!("checked above")
                };
                seeds
                    .iter()
                    .map(|&seed| {
                        let img =
                            procedural::render(&request.positive_prompt, seed, request.width, request.height);
                        image_artifact(&img, &request.output, Some(seed))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Submitted::Done)
            })
            .await?
    }
}

/// Lanczos3 upscaling (see [`lanczos`]).
pub struct Lanczos {
    pool: CpuPool,
    max_side: u32,
    decoder: Decoder,
}

impl Lanczos {
    /// An upscaler sharing `pool` that refuses outputs larger than `max_side` pixels a side and
    /// decodes its inputs through `decoder`.
    pub fn new(pool: CpuPool, max_side: u32, decoder: Decoder) -> Self {
        Lanczos { pool, max_side, decoder }
    }
}

#[async_trait]
impl Provider for Lanczos {
    fn name(&self) -> &str {
        "lanczos"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { task_types: vec![TaskType::Upscale], models: vec![], delivery: Delivery::Sync }
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let (TaskRequest::Upscale(request), Some(input)) = (&job.request, job.input()) else {
            return Err(job.not_served(self.name()));
        };
        let max_side = self.max_side;
        let (w, h) = (input.width.unwrap_or(0), input.height.unwrap_or(0));
        let f = request.upscale_factor;
        if w.saturating_mul(f) > max_side || h.saturating_mul(f) > max_side {
            return Err(ProviderError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Invalid value for parameter 'upscaleFactor': {w}x{h} scaled by {f} exceeds \
                     {max_side}px a side. Use a smaller factor or a smaller input image."
                ),
                "",
            ));
        }
        // Judged from the header, then the whole working set (decoded input, its RGB copy, the
        // resize's buffers, the output and its encoding) is reserved before the job allocates.
        let size = self.decoder.check(&input.bytes, "input image").map_err(DecodeError::into_input_error)?;
        let out = (size.width.saturating_mul(f), size.height.saturating_mul(f));
        let need = decode::rgb_cost(&size)
            + decode::resize_cost((size.width, size.height), out, 3)
            + u64::from(out.0) * u64::from(out.1) * 3;
        let worker = self.pool.worker(job.account_id()).await;
        let reserved = self.decoder.reserve(need).await.map_err(DecodeError::into_input_error)?;
        let decoder = self.decoder.clone();
        CpuPool::run_on(worker, move || {
            let _reserved = reserved;
            let (TaskRequest::Upscale(request), Some(input)) = (&job.request, job.input()) else {
                unreachable!("checked above")
            };
            let img = decoder
                .decode_blocking(&input.bytes, "input image")
                .map_err(DecodeError::into_input_error)?;
            let out = lanczos::upscale(&img, f);
            Ok(Submitted::Done(vec![image_artifact(&out, &request.output, None)?]))
        })
        .await?
    }
}
