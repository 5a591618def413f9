//! Uploaded assets: files a client stores once and then names in any asset field, by UUID
//! (Runware `imageUpload` / `mediaStorage`) or by `runway://` URI (Runway ephemeral uploads).
//!
//! An upload is an output row without a task: it is validated by the same intake path as every
//! other asset, served at the same `/v1/outputs/` URL, and swept by the same expiry sweep.

use crate::{AuthContext, Engine};
use base64::Engine as _;
use mediagate_assets::{Asset, AssetKind, AssetRequest};
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use mediagate_store::NewOutput;
use uuid::Uuid;

/// A stored upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Its UUID: usable in any asset field (also as `runway://<uuid>`).
    pub uuid: Uuid,
    /// Where it can be downloaded.
    pub url: String,
    /// Its media type, as validated.
    pub media_type: String,
    /// Its family.
    pub kind: AssetKind,
    /// Size in bytes.
    pub size: u64,
    /// When it expires (ms since epoch) unless used again.
    pub expires_at: i64,
}

/// A file being received for an upload (see [`Engine::begin_upload`]): written to a temporary
/// file as it arrives, bounded by `max_bytes`; the temporary file is removed unless the upload
/// is stored.
pub struct IncomingUpload {
    file: Option<tokio::fs::File>,
    path: std::path::PathBuf,
    size: u64,
    max_bytes: u64,
}

impl IncomingUpload {
    /// Appends a chunk; past `max_bytes` the upload is refused (`assetTooLarge`).
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        use tokio::io::AsyncWriteExt;
        if self.size + chunk.len() as u64 > self.max_bytes {
            return Err(ApiError::new(
                ErrorCode::AssetTooLarge,
                format!("Asset size exceeds {:.1}MB.", self.max_bytes as f64 / 1e6),
            ));
        }
        let Some(f) = self.file.as_mut() else { return Err(ApiError::internal()) };
        f.write_all(chunk).await.map_err(|e| {
            tracing::error!(error = %e, "writing an upload's temporary file failed");
            ApiError::internal()
        })?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for IncomingUpload {
    fn drop(&mut self) {
        // Stored uploads were moved away (or were small and kept inline): nothing is left to
        // remove then, and a missing file is fine.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long an upload is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// `uploads.keep_after_use_secs` after the upload and after every later use (Runware).
    AfterLastUse,
    /// `uploads.ephemeral_ttl_secs` after the upload, used or not (Runway's ephemeral uploads).
    Ephemeral,
}

/// The family a reference's own header declares (data URIs) or its bytes show (base64);
/// `None` for URLs and UUIDs, whose family is only known once fetched.
fn declared_kind(reference: &str) -> Option<AssetKind> {
    let r = reference.trim();
    if let Some(rest) = r.strip_prefix("data:") {
        return AssetKind::of_media_type(rest.split([';', ',']).next()?);
    }
    if r.contains(':') || Uuid::parse_str(r).is_ok() {
        return None;
    }
    // 64 base64 characters are 48 bytes: enough for every magic number the probe knows.
    let head: String = r.chars().filter(|c| !c.is_ascii_whitespace()).take(64).collect();
    // Base64 is ASCII; anything else is not (and would be cut inside a character below).
    if !head.is_ascii() {
        return None;
    }
    let head = &head[..head.len() - head.len() % 4];
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(head.trim_end_matches('=')).ok().or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(head.trim_end_matches('=')).ok()
        })?;
    AssetKind::sniff(&bytes)
}

impl Engine {
    fn asset_request<'a>(
        &self,
        ctx: &AuthContext,
        kind: AssetKind,
        param: ParamPath,
        stored: &'a dyn mediagate_assets::StoredAssets,
        aspect: Option<(f64, f64)>,
    ) -> AssetRequest<'a> {
        // Without a bound from the caller, none: it belongs to the model that later consumes it.
        let aspect = Some(aspect.unwrap_or((0.0, f64::INFINITY)));
        AssetRequest { kind, param, aspect, account_id: ctx.account_id, stored }
    }

    /// Validates an asset reference (data URI, base64, HTTPS URL or UUID) and stores it as an
    /// upload. `kind` restricts the family (Runware `imageUpload` takes images only); without
    /// it the family comes from the reference or, for URLs, from what the server sends.
    /// `aspect` bounds an image's width / height (the consuming model's bounds), if known.
    pub async fn upload_reference(
        &self,
        ctx: &AuthContext,
        reference: &str,
        kind: Option<AssetKind>,
        aspect: Option<(f64, f64)>,
        param: ParamPath,
        retention: Retention,
    ) -> Result<Upload, ApiError> {
        let stored = crate::pipeline::engine_assets(self);
        let kinds: Vec<AssetKind> = match kind.or_else(|| declared_kind(reference)) {
            Some(k) => vec![k],
            None => vec![AssetKind::Image, AssetKind::Video, AssetKind::Audio],
        };
        // A URL is fetched once, whatever the number of families it may be.
        let req = self.asset_request(ctx, kinds[0], param, &stored, aspect);
        let asset = self.intake.resolve_any(reference, &req, &kinds).await?;
        self.keep_upload(ctx, Uuid::new_v4(), asset, retention).await
    }

    /// An upload sent as a task (Runware `imageUpload`, `mediaStorage` upload), idempotent by
    /// `taskUUID` like every other task: it is recorded as a task of price zero, so the same
    /// `taskUUID` with the same reference returns the first upload instead of storing a second
    /// copy, the same `taskUUID` with another reference is `conflictTaskUUID`, and a resend
    /// after a failure (or a restart mid-upload) tries again.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_task(
        &self,
        ctx: &AuthContext,
        task_uuid: Uuid,
        task_type: &str,
        reference: &str,
        kind: Option<AssetKind>,
        param: ParamPath,
        retention: Retention,
    ) -> Result<Upload, ApiError> {
        use mediagate_store::{Admission, Finish, FinishOutcome, NewTask, TaskStatus};
        use sha2::Digest as _;
        let internal = |e: mediagate_store::StoreError| {
            tracing::error!(error = %e, "recording an upload task failed");
            ApiError::internal()
        };
        let mut h = sha2::Sha256::new();
        h.update(task_type.as_bytes());
        h.update([0]);
        h.update(reference.as_bytes());
        let hash: [u8; 32] = h.finalize().into();
        // The record keeps what was uploaded, not the bytes (a data URI can be megabytes).
        let request =
            serde_json::json!({ "taskType": task_type, "referenceBytes": reference.len() }).to_string();
        let task = NewTask {
            account_id: ctx.account_id,
            task_uuid,
            task_type: task_type.to_string(),
            // Uploads recorded as tasks are Runware's (imageUpload, mediaStorage).
            dialect: mediagate_core::Dialect::Runware,
            model: None,
            request,
            request_hash: hash,
            price_micros: 0,
            resumable_payload: None,
            webhook_url: None,
            spend_cap_micros: 0,
            key_id: None,
        };
        let mut admission = self.store.admit_task(task.clone()).await.map_err(internal)?;
        if matches!(admission, Admission::Deleted) {
            return Err(crate::pipeline::deleted_uuid(task_uuid));
        }
        if let Admission::Existing(rec) = &admission {
            if rec.request_hash != hash {
                return Err(crate::pipeline::conflict(task_uuid));
            }
            match rec.status {
                TaskStatus::Success => {
                    let Some(r) = rec.results.first() else { return Err(ApiError::internal()) };
                    let row = self.store.get_output(r.output_uuid).await.map_err(internal)?;
                    return Ok(Upload {
                        uuid: r.output_uuid,
                        url: self.output_url(r.output_uuid, &r.extension),
                        media_type: r.content_type.clone(),
                        kind: AssetKind::of_media_type(&r.content_type).unwrap_or(AssetKind::Image),
                        size: row.as_ref().map_or(0, |o| o.size),
                        expires_at: row.as_ref().map_or(0, |o| o.expires_at),
                    });
                }
                TaskStatus::Processing => {
                    return Err(ApiError::new(
                        ErrorCode::TaskStillProcessing,
                        format!(
                            "The upload with taskUUID {task_uuid} is still being stored; send the same \
                             request again in a moment to get its result."
                        ),
                    ));
                }
                // As for every task: a refusal stays a refusal, a transient failure sent again
                // is tried again.
                TaskStatus::Error => {
                    let stored = rec.error.as_ref().map(crate::pipeline::from_stored);
                    let stored = stored.unwrap_or_else(ApiError::internal);
                    if !stored.code.is_retryable() {
                        return Err(stored);
                    }
                    admission = self.store.readmit_failed_task(task).await.map_err(internal)?;
                }
            }
        }
        if !matches!(admission, Admission::Admitted) {
            return Err(ApiError::new(
                ErrorCode::TaskStillProcessing,
                format!("The upload with taskUUID {task_uuid} is being retried; send it again in a moment."),
            ));
        }
        let outcome = self.upload_reference(ctx, reference, kind, None, param, retention).await;
        let finish = match &outcome {
            Ok(up) => FinishOutcome::Success {
                results: vec![mediagate_core::task::ResultItem {
                    output_uuid: up.uuid,
                    content_type: up.media_type.clone(),
                    extension: mediagate_assets::content_type::extension_of(&up.media_type).into(),
                    seed: None,
                    cost_micros: 0,
                    completion: None,
                    fields: Default::default(),
                }],
                outputs: vec![],
                cost_micros: 0,
            },
            Err(e) => FinishOutcome::Failure { error: crate::pipeline::to_stored(e) },
        };
        let finish = Finish {
            account_id: ctx.account_id,
            task_uuid,
            outcome: finish,
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        };
        self.store.finish_task(finish).await.map_err(internal)?;
        outcome
    }

    /// The storage quota every account's uploads are held to.
    pub fn upload_quota(&self) -> mediagate_store::UploadQuota {
        let u = &self.config.uploads;
        mediagate_store::UploadQuota {
            max_files: u.quota_files_per_account,
            max_bytes: u.quota_bytes_per_account,
        }
    }

    /// The account's stored uploads, beside its quota (for `GET /v1/organization` and the admin API).
    pub async fn upload_usage(
        &self,
        account_id: i64,
    ) -> Result<(mediagate_store::UploadUsage, mediagate_store::UploadQuota), ApiError> {
        let usage = self.store.upload_usage(account_id).await.map_err(|e| {
            tracing::error!(error = %e, "reading upload usage failed");
            ApiError::internal()
        })?;
        Ok((usage, self.upload_quota()))
    }

    fn quota_exceeded(&self, usage: mediagate_store::UploadUsage, size: u64) -> ApiError {
        let q = self.upload_quota();
        let bound = |n: u64| if n == 0 { "no bound".to_string() } else { n.to_string() };
        ApiError::new(
            ErrorCode::StorageQuotaExceeded,
            format!(
                "This account keeps {} uploads of {} bytes; another of {size} bytes would pass its storage quota \
                 of {} uploads and {} bytes (uploads.quota_files_per_account, uploads.quota_bytes_per_account). \
                 Delete uploads (mediaStorage operation \"delete\") or wait for them to expire.",
                usage.files,
                usage.bytes,
                bound(q.max_files),
                bound(q.max_bytes)
            ),
        )
    }

    /// Starts receiving a file sent to the server itself: it is streamed to a temporary file,
    /// never held in memory. Refused at once when the account's quota has no room for
    /// `announced` more bytes (or for another upload).
    pub async fn begin_upload(
        &self,
        ctx: &AuthContext,
        announced: Option<u64>,
        max_bytes: u64,
    ) -> Result<IncomingUpload, ApiError> {
        let (usage, quota) = self.upload_usage(ctx.account_id).await?;
        let announced = announced.unwrap_or(0);
        if !quota.admits(usage, announced) {
            return Err(self.quota_exceeded(usage, announced));
        }
        let path = self.outputs.temp_path(Uuid::new_v4(), "upload");
        let file = tokio::fs::File::create(&path).await.map_err(|e| {
            tracing::error!(error = %e, "creating an upload's temporary file failed");
            ApiError::internal()
        })?;
        Ok(IncomingUpload { file: Some(file), path, size: 0, max_bytes })
    }

    /// Validates a file received with [`Engine::begin_upload`] and stores it as upload `uuid`.
    /// The family comes from the bytes; `declared` (the part's Content-Type) is used when it
    /// agrees. The file is checked through a read-only map and moved into place, not copied.
    pub async fn finish_upload(
        &self,
        ctx: &AuthContext,
        mut incoming: IncomingUpload,
        uuid: Uuid,
        declared: Option<&str>,
        param: ParamPath,
        retention: Retention,
    ) -> Result<Upload, ApiError> {
        use tokio::io::AsyncWriteExt;
        let internal = |e: std::io::Error| {
            tracing::error!(error = %e, "storing an upload failed");
            ApiError::internal()
        };
        if let Some(mut f) = incoming.file.take() {
            f.flush().await.map_err(internal)?;
        }
        let size = incoming.size;
        let path = incoming.path.clone();
        let map = tokio::task::spawn_blocking(move || -> std::io::Result<Option<memmap2::Mmap>> {
            if size == 0 {
                return Ok(None);
            }
            let f = std::fs::File::open(&path)?;
            // SAFETY: the file is this upload's own temporary file, written above and changed
            // by nothing while the map lives.
            unsafe { memmap2::Mmap::map(&f) }.map(Some)
        })
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(internal)?;
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let Some(kind) = AssetKind::sniff(bytes) else {
            return Err(ApiError::new(
                ErrorCode::UnsupportedAssetType,
                "Unsupported asset type. The uploaded file is not an image, video or audio format this server \
                 recognises; upload a PNG, JPEG, WebP, MP4, WebM, MOV, MP3, WAV, OGG or FLAC file.",
            )
            .with_parameter(param));
        };
        let stored = crate::pipeline::engine_assets(self);
        let check = self.intake.check_upload(
            bytes,
            declared,
            &self.asset_request(ctx, kind, param, &stored, None),
        )?;
        let extension = mediagate_assets::content_type::extension_of(&check.media_type);
        let inline = (size as usize) <= self.config.outputs.inline_max_bytes;
        let asset_bytes = if inline { bytes.to_vec() } else { Vec::new() };
        drop(map);
        if !inline {
            let (files, from) = (self.outputs.clone(), incoming.path.clone());
            tokio::task::spawn_blocking(move || files.adopt(&from, uuid, extension))
                .await
                .map_err(|_| ApiError::internal())?
                .map_err(internal)?;
        }
        let asset = Asset {
            bytes: asset_bytes,
            media_type: check.media_type,
            kind,
            width: check.width,
            height: check.height,
            source: mediagate_assets::AssetSource::Upload,
        };
        self.record_upload(ctx, uuid, asset, size, inline, retention).await
    }

    async fn keep_upload(
        &self,
        ctx: &AuthContext,
        uuid: Uuid,
        asset: Asset,
        retention: Retention,
    ) -> Result<Upload, ApiError> {
        let extension = mediagate_assets::content_type::extension_of(&asset.media_type);
        let size = asset.bytes.len() as u64;
        let inline = asset.bytes.len() <= self.config.outputs.inline_max_bytes;
        let mut asset = asset;
        if !inline {
            let files = self.outputs.clone();
            let bytes = std::mem::take(&mut asset.bytes);
            tokio::task::spawn_blocking(move || files.write(uuid, extension, &bytes))
                .await
                .map_err(|_| ApiError::internal())?
                .map_err(|e| {
                    tracing::error!(error = %e, "writing an upload failed");
                    ApiError::internal()
                })?;
        }
        self.record_upload(ctx, uuid, asset, size, inline, retention).await
    }

    /// Records an upload whose bytes are in `asset` (inline) or already in its file, within the
    /// account's quota (a refused one's file is removed).
    async fn record_upload(
        &self,
        ctx: &AuthContext,
        uuid: Uuid,
        asset: Asset,
        size: u64,
        inline: bool,
        retention: Retention,
    ) -> Result<Upload, ApiError> {
        let cfg = &self.config.uploads;
        let (ttl, keep) = match retention {
            Retention::AfterLastUse => (cfg.keep_after_use_secs, Some(cfg.keep_after_use_secs as i64)),
            Retention::Ephemeral => (cfg.ephemeral_ttl_secs, None),
        };
        let extension = mediagate_assets::content_type::extension_of(&asset.media_type);
        let expires_at = mediagate_store::now_ms() + (ttl as i64) * 1000;
        let row = NewOutput {
            uuid,
            content_type: asset.media_type.clone(),
            extension: extension.into(),
            size,
            expires_at,
            inline_data: inline.then_some(asset.bytes),
        };
        let stored =
            self.store.insert_upload(ctx.account_id, row, keep, self.upload_quota()).await.map_err(|e| {
                tracing::error!(error = %e, "recording an upload failed");
                ApiError::internal()
            })?;
        if let Err(usage) = stored {
            if !inline {
                let files = self.outputs.clone();
                let _ = tokio::task::spawn_blocking(move || files.remove(uuid, extension)).await;
            }
            return Err(self.quota_exceeded(usage, size));
        }
        tracing::info!(upload = %uuid, media_type = %asset.media_type, size, "upload stored");
        Ok(Upload {
            uuid,
            url: self.output_url(uuid, extension),
            media_type: asset.media_type,
            kind: asset.kind,
            size,
            expires_at,
        })
    }

    /// Deletes one of the account's uploads (Runware `mediaStorage` `delete`).
    pub async fn delete_upload(
        &self,
        ctx: &AuthContext,
        uuid: Uuid,
        param: ParamPath,
    ) -> Result<(), ApiError> {
        let rec = self.store.delete_output(ctx.account_id, uuid).await.map_err(|_| ApiError::internal())?;
        let Some(rec) = rec.filter(|r| r.task_uuid.is_none() || r.account_id == ctx.account_id) else {
            return Err(ApiError::new(
                ErrorCode::MediaNotFound,
                format!(
                    "No upload with mediaUUID {uuid} exists for this account (it was deleted or expired)."
                ),
            )
            .with_parameter(param));
        };
        if !rec.inline {
            let files = self.outputs.clone();
            let _ = tokio::task::spawn_blocking(move || files.remove(rec.uuid, &rec.extension)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_references() {
        assert_eq!(declared_kind("data:video/mp4;base64,AAAA"), Some(AssetKind::Video));
        assert_eq!(declared_kind("data:image/png;base64,AAAA"), Some(AssetKind::Image));
        assert_eq!(declared_kind("https://example.com/a.png"), None);
        assert_eq!(declared_kind(&Uuid::new_v4().to_string()), None);
        // Not base64, and no panic cutting it (Schemathesis sent this as a mediaStorage media).
        assert_eq!(declared_kind("X{\u{ff} k\u{7aaf7}\u{a03f0}\u{1066d6}"), None);
        assert_eq!(declared_kind("J\u{7f}"), None);
        // A PNG signature in raw base64.
        let png = base64::engine::general_purpose::STANDARD
            .encode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0");
        assert_eq!(declared_kind(&png), Some(AssetKind::Image));
    }
}
