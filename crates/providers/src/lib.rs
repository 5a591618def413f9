//! Providers render tasks. The engine picks one per model from the catalog and is the only
//! place that retries; a provider reports each failure once, mapped into the error catalog.
//!
//! Built in: [`local::Procedural`] (the image stand-in) and [`local::Lanczos`] (real resizing).

#![warn(missing_docs)]

pub mod encode;
pub mod lanczos;
pub mod local;
pub mod procedural;
pub mod video;

use async_trait::async_trait;
use mediagate_assets::Asset;
use mediagate_core::ErrorCode;
use mediagate_core::task::{ImageInference, TaskType, Upscale};

/// One file a provider produced.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Its MIME type.
    pub content_type: &'static str,
    /// Its file extension.
    pub extension: &'static str,
    /// The seed that produced it, where the task has seeds.
    pub seed: Option<u64>,
}

/// Work handed to a provider, already validated against the model catalog.
#[derive(Debug, Clone)]
pub enum Job {
    /// Text to image; `seeds[i]` is the seed of result `i`.
    Image {
        /// The request.
        request: ImageInference,
        /// One seed per result.
        seeds: Vec<u64>,
    },
    /// Upscale an already validated input image.
    Upscale {
        /// The request.
        request: Upscale,
        /// The input, resolved by the asset intake.
        input: Asset,
    },
}

/// A provider failure, already mapped into the catalog.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    /// The catalog code (decides retries and the client's status).
    pub code: ErrorCode,
    /// Safe to show to clients: never a raw upstream body.
    pub message: String,
    /// For logs only.
    pub detail: String,
}

impl ProviderError {
    /// A failure with a client-safe message and a log-only detail.
    pub fn new(code: ErrorCode, message: impl Into<String>, detail: impl Into<String>) -> Self {
        ProviderError { code, message: message.into(), detail: detail.into() }
    }
}

/// What a provider can run.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Task types it serves.
    pub task_types: Vec<TaskType>,
}

/// A backend that renders tasks.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name models refer to in the catalog.
    fn name(&self) -> &str;
    /// What it can run.
    fn capabilities(&self) -> Capabilities;
    /// Runs one job to completion.
    async fn run(&self, job: Job) -> Result<Vec<Artifact>, ProviderError>;
}
