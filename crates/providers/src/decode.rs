//! Bounded image decoding: every decode in the providers goes through here.
//!
//! A few hundred compressed kilobytes can declare gigabytes of pixels, so a decode is judged by
//! its header before anything is allocated: above the per-image limit it is refused; below it,
//! its working memory (the decoded picture and the buffers of the work done on it) is reserved
//! from one server-wide budget, a byte-weighted semaphore, so that many large decodes queue
//! instead of all allocating at once. The decode itself runs on the blocking pool, never on an
//! async runtime thread, under `image::Limits` as a second bound.

use crate::ProviderError;
use mediagate_assets::probe::{DecodedSize, decoded_size};
use mediagate_core::ErrorCode;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget counts in units of this many bytes, so it fits the semaphore's `u32` permits
/// (up to 4 TiB).
const UNIT: u64 = 1024;

/// The decode limits and memory budget shared by every provider of one server.
#[derive(Clone)]
pub struct Decoder {
    max_decoded_bytes: u64,
    budget_bytes: u64,
    budget: Arc<Semaphore>,
}

/// Memory reserved from the budget; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

/// The default per-image limit, the same as `assets.max_decoded_bytes`'s (8000×8000 RGBA).
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 256_000_000;

/// The default budget, `providers.decode_memory_budget_bytes`: room for the largest upscale
/// (a 4000×4000 16-bit input doubled, about 1.1 GB of buffers) and then some.
pub const DEFAULT_BUDGET_BYTES: u64 = 2_000_000_000;

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_DECODED_BYTES, DEFAULT_BUDGET_BYTES)
    }
}

impl Decoder {
    /// A decoder refusing images above `max_decoded_bytes` once decoded
    /// (`assets.max_decoded_bytes`), with `budget_bytes` of working memory for all decodes at
    /// once (`providers.decode_memory_budget_bytes`).
    pub fn new(max_decoded_bytes: u64, budget_bytes: u64) -> Self {
        let units = (budget_bytes / UNIT).clamp(1, u64::from(u32::MAX));
        Decoder {
            max_decoded_bytes,
            budget_bytes: units * UNIT,
            budget: Arc::new(Semaphore::new(units as usize)),
        }
    }

    /// The size the header declares, refused with `InvalidParameterValue`-class errors when it
    /// is above the per-image limit or unreadable (`what` names the image in messages).
    pub fn check(&self, bytes: &[u8], what: &str) -> Result<DecodedSize, DecodeError> {
        let size = decoded_size(bytes).ok_or_else(|| DecodeError::Unreadable(what.to_string()))?;
        if size.bytes() > self.max_decoded_bytes {
            return Err(DecodeError::TooLarge(mediagate_assets::decoded_too_large(
                &size,
                self.max_decoded_bytes,
            )));
        }
        Ok(size)
    }

    /// Reserves `bytes` of working memory, waiting while other decodes hold the budget. A need
    /// larger than the whole budget could never be met and is refused at once.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, DecodeError> {
        if bytes > self.budget_bytes {
            return Err(DecodeError::NeverFits { need: bytes, budget: self.budget_bytes });
        }
        let units = bytes.div_ceil(UNIT) as u32;
        if units == 0 {
            return Ok(Reservation { _permit: None });
        }
        let permit = self.budget.clone().acquire_many_owned(units).await.map_err(|_| DecodeError::Closed)?;
        Ok(Reservation { _permit: Some(permit) })
    }

    /// Bytes of the budget free now (for tests and diagnostics).
    pub fn available_bytes(&self) -> u64 {
        self.budget.available_permits() as u64 * UNIT
    }

    /// Decodes `bytes` under `image::Limits` (the per-image limit). Blocking: call it on the
    /// blocking pool, after [`Decoder::check`] and [`Decoder::reserve`].
    pub fn decode_blocking(&self, bytes: &[u8], what: &str) -> Result<image::DynamicImage, DecodeError> {
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(self.max_decoded_bytes);
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| DecodeError::Failed(what.to_string(), e.to_string()))?;
        reader.limits(limits);
        reader.decode().map_err(|e| match e {
            image::ImageError::Limits(l) => DecodeError::Failed(what.to_string(), l.to_string()),
            e => DecodeError::Failed(what.to_string(), e.to_string()),
        })
    }
}

/// Working memory of a decode followed by conversion to 8-bit RGB.
pub fn rgb_cost(size: &DecodedSize) -> u64 {
    size.bytes() + pixels(size.width, size.height) * 3
}

/// Working memory of a resize from `from` to `to` pixels (width, height) with the `image`
/// crate's separable filters: an RGBA `f32` buffer of the source width at the new height, then
/// the output in the source's layout.
pub fn resize_cost(from: (u32, u32), to: (u32, u32), bytes_per_pixel: u8) -> u64 {
    pixels(from.0, to.1) * 16 + pixels(to.0, to.1) * u64::from(bytes_per_pixel)
}

fn pixels(w: u32, h: u32) -> u64 {
    u64::from(w) * u64::from(h)
}

/// Why a decode did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header declares more than the per-image limit (the message says both).
    #[error("{0}")]
    TooLarge(String),
    /// The header does not parse.
    #[error("The {0} could not be decoded: its header is unreadable.")]
    Unreadable(String),
    /// The work needs more memory than the whole budget.
    #[error("decoding needs {need} bytes of working memory, more than the whole budget of {budget}")]
    NeverFits {
        /// Bytes needed.
        need: u64,
        /// The budget.
        budget: u64,
    },
    /// Decoding failed (the image, its detail).
    #[error("The {0} could not be decoded.")]
    Failed(String, String),
    /// The server is shutting down.
    #[error("the decode budget is closed")]
    Closed,
}

impl DecodeError {
    /// The error for an input image (the client's asset): bad input is the client's 400,
    /// a budget that cannot hold the work is a retryable 503.
    pub fn into_input_error(self) -> ProviderError {
        match self {
            DecodeError::TooLarge(m) => ProviderError::new(ErrorCode::AssetDimensions, m, ""),
            DecodeError::Unreadable(_) => {
                ProviderError::new(ErrorCode::AssetContentMismatch, self.to_string(), "unreadable header")
            }
            DecodeError::Failed(_, ref detail) => {
                let detail = detail.clone();
                ProviderError::new(ErrorCode::AssetContentMismatch, self.to_string(), detail)
            }
            DecodeError::NeverFits { need, budget } => ProviderError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "The server cannot decode this image: the work needs about {need} bytes of memory \
                     and the server's decode budget is {budget} bytes \
                     (providers.decode_memory_budget_bytes). Send a smaller image."
                ),
                "",
            ),
            DecodeError::Closed => ProviderError::new(
                ErrorCode::ServiceUnavailable,
                "The server is shutting down.",
                "decode budget closed",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn hardening_decodes_queue_under_the_budget() {
        let d = Decoder::new(u64::MAX, 100 * UNIT);
        let a = d.reserve(60 * UNIT).await.unwrap();
        assert_eq!(d.available_bytes(), 40 * UNIT);
        // A second 60-unit decode cannot allocate alongside the first: it waits.
        let d2 = d.clone();
        let waiting = tokio::spawn(async move { d2.reserve(60 * UNIT).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second decode must wait for budget");
        // The queue is first come, first served: later small work does not overtake (and
        // starve) the waiting large decode.
        let d3 = d.clone();
        let small = tokio::spawn(async move { d3.reserve(30 * UNIT).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!small.is_finished(), "small work queues behind the waiting decode");
        drop(a);
        let b = tokio::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap().unwrap();
        let c = tokio::time::timeout(Duration::from_secs(30), small).await.unwrap().unwrap().unwrap();
        assert_eq!(d.available_bytes(), 10 * UNIT);
        drop((b, c));
        assert_eq!(d.available_bytes(), 100 * UNIT);
    }

    #[tokio::test]
    async fn hardening_work_larger_than_the_budget_is_refused_retryably() {
        let d = Decoder::new(u64::MAX, 100 * UNIT);
        let e = d.reserve(101 * UNIT).await.unwrap_err();
        assert!(matches!(e, DecodeError::NeverFits { .. }));
        let pe = e.into_input_error();
        assert_eq!(pe.code, ErrorCode::ServiceUnavailable);
        assert!(pe.code.is_retryable());
        assert!(pe.message.contains("providers.decode_memory_budget_bytes"), "{}", pe.message);
    }

    #[test]
    fn hardening_a_bomb_is_refused_from_its_header() {
        let bomb = mediagate_testkit::images::png_bomb(8000, 8000);
        let d = Decoder::new(256_000_000, u64::MAX);
        let e = d.check(&bomb, "input image").unwrap_err();
        let DecodeError::TooLarge(m) = &e else { panic!("{e:?}") };
        assert!(m.contains("8000x8000") && m.contains("512000000") && m.contains("256000000"), "{m}");
        // Even without the header check, `decode_blocking` refuses under `image::Limits`.
        assert!(matches!(d.decode_blocking(&bomb, "input image"), Err(DecodeError::Failed(..))));
    }
}
