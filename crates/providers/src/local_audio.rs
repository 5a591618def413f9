//! The procedural audio stand-in.
//!
//! **Not a generative model.** It plays a deterministic sequence of soft tones chosen from
//! (prompt, seed) into a real 16-bit PCM WAV file (written by the `hound` crate) of the asked
//! duration, sample rate and channels: the prompt picks the scale, the seed the melody, so the
//! same inputs give byte-identical files and another seed audibly different ones. It exists so
//! the audio pipeline (validation, credits, storage, delivery as URL, base64 or data URI) runs
//! without a GPU. It writes WAV only: any other `outputFormat` is refused, unchanged and
//! uncharged.

use crate::local::CpuPool;
use crate::seeded::{SplitMix, fnv1a};
use crate::{Artifact, Capabilities, Delivery, Job, Provider, ProviderError, Submitted};
use async_trait::async_trait;
use mediagate_core::ErrorCode;
use mediagate_core::task::{AudioInference, TaskRequest, TaskType};
use std::io::Cursor;
use std::sync::Arc;

/// The stand-in.
pub struct ProceduralAudio {
    pool: CpuPool,
}

impl ProceduralAudio {
    /// A stand-in sharing `pool` (fair across accounts) with the other local providers.
    pub fn new(pool: CpuPool) -> Self {
        ProceduralAudio { pool }
    }
}

/// Renders one result: `seed` picks the melody.
pub fn render(r: &AudioInference, seed: u64) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels: u16::from(r.channels),
        sample_rate: r.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    // A pentatonic scale rooted by the prompt; notes of a quarter to a half second.
    let root = 196.0 * 2f32.powf((fnv1a(&r.positive_prompt) % 12) as f32 / 12.0);
    let steps = [0.0f32, 2.0, 4.0, 7.0, 9.0, 12.0];
    let mut rng = SplitMix(seed ^ fnv1a(&r.positive_prompt).rotate_left(17));
    let rate = r.sample_rate as f32;
    let total = r.duration_secs as usize * r.sample_rate as usize;
    let mut out = Cursor::new(Vec::with_capacity(total * 2 * usize::from(r.channels) + 44));
    {
        let mut w = hound::WavWriter::new(&mut out, spec)?;
        let mut written = 0usize;
        while written < total {
            let step = steps[(rng.next() % steps.len() as u64) as usize];
            let freq = root * 2f32.powf(step / 12.0);
            let len = ((rng.range(0.25, 0.5) * rate) as usize).min(total - written).max(1);
            for i in 0..len {
                let t = i as f32 / rate;
                // Attack and release so notes do not click.
                let envelope =
                    (i as f32 / (0.01 * rate)).min(1.0) * ((len - i) as f32 / (0.05 * rate)).min(1.0);
                let s = (t * freq * std::f32::consts::TAU).sin() * 0.3 * envelope;
                let sample = (s * f32::from(i16::MAX)) as i16;
                for _ in 0..r.channels {
                    w.write_sample(sample)?;
                }
            }
            written += len;
        }
        w.finalize()?;
    }
    Ok(out.into_inner())
}

#[async_trait]
impl Provider for ProceduralAudio {
    fn name(&self) -> &str {
        "procedural-audio"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { task_types: vec![TaskType::AudioInference], models: vec![], delivery: Delivery::Sync }
    }

    async fn submit(&self, job: Arc<Job>) -> Result<Submitted, ProviderError> {
        let TaskRequest::AudioInference(request) = &job.request else {
            return Err(job.not_served(self.name()));
        };
        if request.audio_format != "WAV" {
            return Err(ProviderError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Invalid value for parameter 'outputFormat': model {} writes WAV only; send \
                     outputFormat WAV (or route the task to a model that writes {}).",
                    request.model, request.audio_format
                ),
                "",
            ));
        }
        let account = job.account_id();
        self.pool
            .run(account, move || {
                let TaskRequest::AudioInference(request) = &job.request else {
                    unreachable!("checked above")
                };
                job.seeds
                    .iter()
                    .map(|&seed| {
                        let bytes = render(request, seed).map_err(|e| {
                            ProviderError::new(
                                ErrorCode::ProviderError,
                                "Writing the audio failed.",
                                e.to_string(),
                            )
                        })?;
                        Ok(Artifact {
                            bytes,
                            content_type: "audio/wav",
                            extension: "wav",
                            seed: Some(seed),
                            completion: None,
                            fields: Default::default(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Submitted::Done)
            })
            .await?
    }
}
