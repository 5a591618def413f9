//! Asset intake for mediagate: one path for every asset-bearing parameter of every dialect.
//!
//! An asset reference may be a data URI, raw base64, an HTTPS URL, or the UUID of an upload or
//! earlier output. [`Intake::resolve`] turns a reference into validated bytes ([`Asset`]) or an
//! [`ApiError`] whose message is the source document's reason text and whose `parameter` is the
//! asset's path.
//!
//! The stages live in their own modules: [`url_check`] (URL rules), [`ip_policy`] (which
//! addresses are public), [`resolver`] (the HTTP client's only DNS path), `fetch` (HEAD, GET,
//! headers, body), [`data_uri`], [`content_type`], [`probe`] (magic bytes and header-only
//! dimensions) and [`report`] (step events for `mediagate assets check`, see [`check_command`]).

#![warn(missing_docs)]

pub mod check;
pub mod content_type;
pub mod data_uri;
mod fetch;
pub mod ip_policy;
pub mod probe;
pub mod report;
pub mod resolver;
pub mod url_check;

pub use check::check_command;
pub use fetch::{FETCH_FAILED, TIMEOUT};

use async_trait::async_trait;
use ipnet::IpNet;
use mediagate_core::{ApiError, ErrorCode, ParamPath};
use probe::Dimensions;
use report::{NoReport, Reporter, Step};
use resolver::{ClientResolver, DnsLookup, SystemLookup, ValidatingResolver};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The media family a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetKind {
    /// Still images.
    Image,
    /// Video.
    Video,
    /// Audio.
    Audio,
}

impl AssetKind {
    /// `image`, `video` or `audio`.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Image => "image",
            AssetKind::Video => "video",
            AssetKind::Audio => "audio",
        }
    }
}

/// Where a validated asset came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetSource {
    /// An HTTPS URL (as parsed and requested).
    Url(String),
    /// A `data:` URI.
    DataUri,
    /// Raw base64 without a `data:` header.
    Base64,
    /// An upload or earlier output, by UUID.
    Stored(Uuid),
    /// A file sent to the server itself (an upload being stored).
    Upload,
}

/// The scheme of upload URIs (`runway://<upload id>`), accepted in every asset field.
pub const UPLOAD_URI_SCHEME: &str = "runway://";

impl AssetKind {
    /// The family of a file, from its magic bytes.
    pub fn sniff(bytes: &[u8]) -> Option<AssetKind> {
        let f = probe::sniff(bytes)?;
        [AssetKind::Image, AssetKind::Video, AssetKind::Audio]
            .into_iter()
            .find(|k| f.media_type_for(*k).is_some())
    }

    /// The family a media type belongs to (`image/png` → image).
    pub fn of_media_type(media_type: &str) -> Option<AssetKind> {
        match media_type.split('/').next()?.trim().to_ascii_lowercase().as_str() {
            "image" => Some(AssetKind::Image),
            "video" => Some(AssetKind::Video),
            "audio" => Some(AssetKind::Audio),
            _ => None,
        }
    }
}

/// A validated asset, ready for a provider.
#[derive(Debug, Clone)]
pub struct Asset {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The media type, as declared and confirmed by sniffing, in canonical spelling
    /// (e.g. `image/jpeg` for a declared `image/jpg`).
    pub media_type: String,
    /// The media family.
    pub kind: AssetKind,
    /// Width in pixels, where known (images always; MP4 and WebM video when the header says).
    pub width: Option<u32>,
    /// Height in pixels, where known.
    pub height: Option<u32>,
    /// Where the asset came from.
    pub source: AssetSource,
}

/// What an accepted upload is (see [`Intake::check_upload`]).
#[derive(Debug, Clone)]
pub struct UploadCheck {
    /// The media type, in canonical spelling.
    pub media_type: String,
    /// Width in pixels, where known.
    pub width: Option<u32>,
    /// Height in pixels, where known.
    pub height: Option<u32>,
}

/// A stored file (upload or earlier output) found by UUID.
#[derive(Debug, Clone)]
pub struct StoredAsset {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
}

/// Looks up uploads and earlier outputs by UUID; the engine implements it over its store.
#[async_trait]
pub trait StoredAssets: Send + Sync {
    /// The stored file with this UUID if the account may use it, else `None`.
    async fn load(&self, account_id: i64, uuid: Uuid) -> Option<StoredAsset>;
}

/// A [`StoredAssets`] with nothing in it (for `assets check` and tests).
pub struct NoStoredAssets;

#[async_trait]
impl StoredAssets for NoStoredAssets {
    async fn load(&self, _: i64, _: Uuid) -> Option<StoredAsset> {
        None
    }
}

/// What the caller expects of one asset parameter.
pub struct AssetRequest<'a> {
    /// The accepted media family.
    pub kind: AssetKind,
    /// The parameter path reported in errors.
    pub param: ParamPath,
    /// Accepted width / height bounds, from the consuming model. For images `None` means the
    /// configured default ([`IntakeConfig::min_aspect_ratio`]..[`IntakeConfig::max_aspect_ratio`],
    /// 0.5 to 2); for video it means no aspect check.
    pub aspect: Option<(f64, f64)>,
    /// The account asking, for UUID lookups.
    pub account_id: i64,
    /// Where UUIDs are resolved.
    pub stored: &'a dyn StoredAssets,
}

/// Limits and switches of the intake path (`[assets]` in the configuration).
/// Sizes are in bytes; 1 MB = 1,000,000 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// Longest asset URL, in characters of the URL as sent. Default 2048.
    pub max_url_length: usize,
    /// Largest image fetched by URL, by `Content-Length`. Default 16,000,000 (16 MB).
    pub url_image_max_bytes: u64,
    /// Largest video fetched by URL. Default 32,000,000 (32 MB).
    pub url_video_max_bytes: u64,
    /// Largest audio fetched by URL. Default 32,000,000 (32 MB).
    pub url_audio_max_bytes: u64,
    /// Largest image given as a data URI or raw base64, measured on the string as sent.
    /// Default 5,000,000 (5 MB).
    pub data_uri_image_max_bytes: u64,
    /// Largest video given as a data URI or raw base64. Default 16,000,000 (16 MB).
    pub data_uri_video_max_bytes: u64,
    /// Largest audio given as a data URI or raw base64. Default 16,000,000 (16 MB).
    pub data_uri_audio_max_bytes: u64,
    /// Largest width or height of an image (and of a video whose header tells), in pixels.
    /// Default 8000.
    pub max_dimension: u32,
    /// Largest image once decoded, in bytes: width × height × bytes per pixel, read from the
    /// header before anything is decoded (a small PNG can declare 8000×8000 16-bit RGBA, 512 MB
    /// of pixels). Default 256,000,000 (8000×8000 8-bit RGBA).
    pub max_decoded_bytes: u64,
    /// Most input assets one task may name (a seed image, a mask, reference and guide images…):
    /// each is fetched and held in memory while the task runs. Default 16.
    pub max_inputs_per_task: usize,
    /// Smallest width / height ratio of an image when the model declares no bounds. Default 0.5.
    pub min_aspect_ratio: f64,
    /// Largest width / height ratio of an image when the model declares no bounds. Default 2.0.
    pub max_aspect_ratio: f64,
    /// One deadline for a whole URL fetch: DNS, connect, TLS, HEAD, GET and every body byte.
    /// Default 10,000 ms.
    pub fetch_timeout_ms: u64,
    /// URL fetches running at once; further fetches wait for a slot (the wait is not part of
    /// the deadline). Default 16.
    pub max_concurrent_fetches: usize,
    /// `User-Agent` of asset requests. Default `mediagate/<version> (asset fetcher)`.
    pub user_agent: String,
    /// Test support, off by default and logged as a warning when on: fetch from any address,
    /// including loopback and private networks.
    pub allow_private_networks: bool,
    /// Test support, empty by default and logged when set: ranges exempted from the address
    /// deny table, e.g. `["127.0.0.1/32"]`, while the rest of the policy stays on.
    pub allowed_networks: Vec<IpNet>,
    /// Test support, empty by default and logged when set: host → addresses used instead of
    /// DNS, e.g. `{ "assets.test" = ["127.0.0.1"] }`. The addresses are still judged by the
    /// address policy.
    pub resolve: BTreeMap<String, Vec<IpAddr>>,
    /// Test support, empty by default and logged when set: PEM files of extra CA certificates
    /// trusted for asset servers, in addition to the built-in web roots.
    pub extra_ca_certs: Vec<PathBuf>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            max_url_length: 2048,
            url_image_max_bytes: 16_000_000,
            url_video_max_bytes: 32_000_000,
            url_audio_max_bytes: 32_000_000,
            data_uri_image_max_bytes: 5_000_000,
            data_uri_video_max_bytes: 16_000_000,
            data_uri_audio_max_bytes: 16_000_000,
            max_dimension: 8000,
            max_decoded_bytes: 256_000_000,
            max_inputs_per_task: 16,
            min_aspect_ratio: 0.5,
            max_aspect_ratio: 2.0,
            fetch_timeout_ms: 10_000,
            max_concurrent_fetches: 16,
            user_agent: concat!("mediagate/", env!("CARGO_PKG_VERSION"), " (asset fetcher)").to_string(),
            allow_private_networks: false,
            allowed_networks: Vec::new(),
            resolve: BTreeMap::new(),
            extra_ca_certs: Vec::new(),
        }
    }
}

impl IntakeConfig {
    /// The limit for a kind fetched by URL.
    pub fn url_limit(&self, kind: AssetKind) -> u64 {
        match kind {
            AssetKind::Image => self.url_image_max_bytes,
            AssetKind::Video => self.url_video_max_bytes,
            AssetKind::Audio => self.url_audio_max_bytes,
        }
    }

    /// The limit for a kind sent inline (data URI or raw base64).
    pub fn data_uri_limit(&self, kind: AssetKind) -> u64 {
        match kind {
            AssetKind::Image => self.data_uri_image_max_bytes,
            AssetKind::Video => self.data_uri_video_max_bytes,
            AssetKind::Audio => self.data_uri_audio_max_bytes,
        }
    }

    fn test_support_on(&self) -> bool {
        self.allow_private_networks
            || !self.allowed_networks.is_empty()
            || !self.resolve.is_empty()
            || !self.extra_ca_certs.is_empty()
    }
}

/// Why an [`Intake`] could not be built (configuration errors, reported at startup).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// An `extra_ca_certs` file cannot be read.
    #[error("cannot read extra CA certificate file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An `extra_ca_certs` file holds no usable PEM certificate.
    #[error("extra CA certificate file {path} holds no usable PEM certificate: {detail}")]
    CaPem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A limit is out of range.
    #[error("invalid [assets] configuration: {0}")]
    Invalid(String),
    /// The HTTP client cannot be built.
    #[error("cannot build the asset HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// A refusal before the parameter path is attached.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reject(pub(crate) ErrorCode, pub(crate) String);

impl Reject {
    fn into_api(self, req: &AssetRequest<'_>) -> ApiError {
        ApiError::new(self.0, self.1).with_parameter(req.param.clone())
    }
}

/// Which form a reference takes: `uuid`, `uploadUri`, `dataUri`, `url` or `base64`.
fn form_of(reference: &str) -> &'static str {
    if Uuid::parse_str(reference).is_ok() {
        "uuid"
    } else if reference.starts_with(UPLOAD_URI_SCHEME) {
        "uploadUri"
    } else if data_uri::is_data_uri(reference) {
        "dataUri"
    } else if reference.contains(':') {
        // Base64 has no colon, UUIDs were handled: anything with a scheme is a URL.
        "url"
    } else {
        "base64"
    }
}

/// The intake path. Cheap to share behind an `Arc`.
pub struct Intake {
    config: IntakeConfig,
    fetcher: fetch::Fetcher,
}

impl Intake {
    /// A new intake path with these limits, using the system resolver.
    pub fn new(config: IntakeConfig) -> Result<Self, IntakeError> {
        Intake::with_lookup(config, Arc::new(SystemLookup))
    }

    /// A new intake path whose DNS lookups go through `lookup` (tests inject fakes here). The
    /// `resolve` overrides and the address policy still apply on top of it.
    pub fn with_lookup(config: IntakeConfig, lookup: Arc<dyn DnsLookup>) -> Result<Self, IntakeError> {
        if config.max_concurrent_fetches == 0 {
            return Err(IntakeError::Invalid("max_concurrent_fetches must be at least 1".into()));
        }
        if config.max_decoded_bytes == 0 {
            return Err(IntakeError::Invalid("max_decoded_bytes must be at least 1".into()));
        }
        if config.fetch_timeout_ms == 0 {
            return Err(IntakeError::Invalid("fetch_timeout_ms must be at least 1".into()));
        }
        if !(config.min_aspect_ratio > 0.0 && config.min_aspect_ratio <= config.max_aspect_ratio) {
            return Err(IntakeError::Invalid("min_aspect_ratio must be > 0 and <= max_aspect_ratio".into()));
        }
        if config.test_support_on() {
            tracing::warn!(
                allow_private_networks = config.allow_private_networks,
                allowed_networks = ?config.allowed_networks,
                resolve = ?config.resolve,
                extra_ca_certs = ?config.extra_ca_certs,
                "[assets] TEST SUPPORT IS ON: asset fetches may reach non-public addresses or trust extra CAs; never use this in production"
            );
        }
        let resolver = ValidatingResolver {
            lookup,
            overrides: config
                .resolve
                .iter()
                .map(|(h, a)| {
                    let h = h.to_ascii_lowercase();
                    (h.strip_suffix('.').unwrap_or(&h).to_string(), a.clone())
                })
                .collect(),
            policy: ip_policy::IpPolicy {
                allow_private_networks: config.allow_private_networks,
                allowed_networks: config.allowed_networks.clone(),
            },
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(true)
            .http1_only()
            .referer(false)
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .tcp_nodelay(true)
            .user_agent(config.user_agent.clone())
            .dns_resolver(Arc::new(ClientResolver(Arc::new(resolver))));
        for path in &config.extra_ca_certs {
            let pem =
                std::fs::read(path).map_err(|source| IntakeError::CaFile { path: path.clone(), source })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| IntakeError::CaPem { path: path.clone(), detail: e.to_string() })?;
            if certs.is_empty() {
                return Err(IntakeError::CaPem { path: path.clone(), detail: "no certificate found".into() });
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build()?;
        Ok(Intake {
            fetcher: fetch::Fetcher {
                client,
                permits: mediagate_core::fair::FairSemaphore::new(config.max_concurrent_fetches),
                deadline: Duration::from_millis(config.fetch_timeout_ms),
            },
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &IntakeConfig {
        &self.config
    }

    /// The HTTP client asset fetches use (same resolver, TLS roots and settings), exposed for
    /// benchmarks and diagnostics that must compare against a plain download.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.fetcher.client
    }

    /// Resolves and validates one asset reference.
    pub async fn resolve(&self, reference: &str, req: &AssetRequest<'_>) -> Result<Asset, ApiError> {
        self.resolve_inner(reference, req, &NoReport).await
    }

    /// [`Intake::resolve`], reporting each step to `reporter` as it happens (what
    /// `mediagate assets check` uses; the server uses [`Intake::resolve`]).
    pub async fn resolve_reported(
        &self,
        reference: &str,
        req: &AssetRequest<'_>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Asset, ApiError> {
        let r = Arc::clone(&reporter);
        report::CURRENT
            .scope(reporter, async move { self.resolve_inner(reference, req, r.as_ref()).await })
            .await
    }

    async fn resolve_inner(
        &self,
        reference: &str,
        req: &AssetRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<Asset, ApiError> {
        let reference = reference.trim_matches(|c: char| c.is_ascii_whitespace());
        let form = form_of(reference);
        reporter.step(&Step::Reference { form, length: reference.chars().count() });
        let r = match form {
            "uuid" => self.take_stored(reference, req, reporter).await,
            "uploadUri" => match Uuid::parse_str(&reference[UPLOAD_URI_SCHEME.len()..]) {
                Ok(id) => self.take_stored(&id.to_string(), req, reporter).await,
                Err(_) => Err(Reject(
                    ErrorCode::InvalidAssetUrl,
                    format!(
                        "Invalid URL. An upload URI is {UPLOAD_URI_SCHEME}<upload id>, as returned by POST /v1/uploads."
                    ),
                )),
            },
            "dataUri" => self.take_data_uri(reference, req, reporter),
            "url" => self.take_url(reference, req, &[req.kind], reporter).await,
            _ => self.take_base64(reference, req, reporter),
        };
        r.map_err(|e| e.into_api(req))
    }

    /// Validates the bytes of an upload (a file sent to the server itself, not fetched): the
    /// declared media type when it names one of `kind`'s accepted types, else the sniffed one;
    /// then the same content checks as every other asset (magic bytes, dimensions, aspect).
    /// Size limits are the caller's: uploads have their own.
    pub fn accept_upload(
        &self,
        bytes: Vec<u8>,
        declared: Option<&str>,
        req: &AssetRequest<'_>,
    ) -> Result<Asset, ApiError> {
        let UploadCheck { media_type, width, height } = self.check_upload(&bytes, declared, req)?;
        Ok(Asset { bytes, media_type, kind: req.kind, width, height, source: AssetSource::Upload })
    }

    /// The checks of [`Intake::accept_upload`] on bytes the caller keeps (a file streamed to
    /// disk and mapped, for instance): what the upload is, or why it is refused.
    pub fn check_upload(
        &self,
        bytes: &[u8],
        declared: Option<&str>,
        req: &AssetRequest<'_>,
    ) -> Result<UploadCheck, ApiError> {
        let declared = declared
            .and_then(content_type::parse_essence)
            .map(|e| content_type::canonical(&e).to_string())
            .filter(|e| content_type::accepted(req.kind).contains(&e.as_str()));
        let sniffed = probe::sniff(bytes).and_then(|f| f.media_type_for(req.kind));
        let Some(media) = declared.or(sniffed.map(str::to_string)) else {
            return Err(ApiError::new(
                ErrorCode::UnsupportedAssetType,
                format!(
                    "Unsupported asset type. The uploaded file is {}, which is not accepted for {}s; use {}.",
                    probe::sniff(bytes).map(|f| f.name()).unwrap_or("not a recognised media format"),
                    req.kind.as_str(),
                    content_type::accepted(req.kind).join(", ")
                ),
            )
            .with_parameter(req.param.clone()));
        };
        let (width, height) =
            self.check_content(bytes, &media, req, &NoReport).map_err(|r| r.into_api(req))?;
        Ok(UploadCheck { media_type: media, width, height })
    }

    async fn take_stored(
        &self,
        reference: &str,
        req: &AssetRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<Asset, Reject> {
        let uuid = Uuid::parse_str(reference).map_err(|_| Reject(ErrorCode::AssetNotFound, String::new()))?;
        let stored = req.stored.load(req.account_id, uuid).await.ok_or_else(|| {
            Reject(
                ErrorCode::AssetNotFound,
                format!(
                    "No upload or output with UUID {uuid} exists for this account (it may have expired)."
                ),
            )
        })?;
        let essence = content_type::parse_essence(&stored.media_type)
            .map(|e| content_type::canonical(&e).to_string())
            .filter(|e| content_type::accepted(req.kind).contains(&e.as_str()))
            .ok_or_else(|| {
                Reject(
                    ErrorCode::UnsupportedAssetType,
                    format!(
                        "Unsupported asset type. The stored file {uuid} is {}, which is not accepted as {} here.",
                        stored.media_type,
                        article(req.kind)
                    ),
                )
            })?;
        let (w, h) = self.check_content(&stored.bytes, &essence, req, reporter)?;
        Ok(Asset {
            bytes: stored.bytes,
            media_type: essence,
            kind: req.kind,
            width: w,
            height: h,
            source: AssetSource::Stored(uuid),
        })
    }

    fn inline_size_check(&self, reference: &str, req: &AssetRequest<'_>) -> Result<u64, Reject> {
        let limit = self.config.data_uri_limit(req.kind);
        if reference.len() as u64 > limit {
            return Err(fetch::too_large(limit));
        }
        Ok(limit)
    }

    fn take_data_uri(
        &self,
        reference: &str,
        req: &AssetRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<Asset, Reject> {
        // Measured on the URI as sent, before decoding anything.
        let limit = self.inline_size_check(reference, req)?;
        let parsed = data_uri::parse(reference).map_err(|e| {
            let code = match e {
                data_uri::DataUriError::MissingType => ErrorCode::UnsupportedAssetType,
                _ => ErrorCode::InvalidDataUri,
            };
            Reject(code, e.message())
        })?;
        reporter.step(&Step::Decoded {
            declared: Some(parsed.essence.clone()),
            encoded_length: reference.len(),
            limit,
            decoded_bytes: parsed.bytes.len(),
        });
        let canonical = content_type::canonical(&parsed.essence).to_string();
        if !content_type::accepted(req.kind).contains(&parsed.essence.as_str()) {
            return Err(Reject(
                ErrorCode::UnsupportedAssetType,
                format!(
                    "{} \"{}\" is not accepted for {}s; use {}.",
                    data_uri::UNSUPPORTED,
                    parsed.essence,
                    req.kind.as_str(),
                    content_type::accepted(req.kind).join(", ")
                ),
            ));
        }
        let (w, h) = self.check_content(&parsed.bytes, &canonical, req, reporter)?;
        Ok(Asset {
            bytes: parsed.bytes,
            media_type: canonical,
            kind: req.kind,
            width: w,
            height: h,
            source: AssetSource::DataUri,
        })
    }

    fn take_base64(
        &self,
        reference: &str,
        req: &AssetRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<Asset, Reject> {
        let limit = self.inline_size_check(reference, req)?;
        let bytes = data_uri::decode_base64(reference).filter(|b| !b.is_empty()).ok_or_else(|| {
            Reject(
                ErrorCode::InvalidDataUri,
                "Invalid data URI. The asset is neither a data URI, base64 data, an HTTPS URL nor the UUID of an upload or output.".to_string(),
            )
        })?;
        reporter.step(&Step::Decoded {
            declared: None,
            encoded_length: reference.len(),
            limit,
            decoded_bytes: bytes.len(),
        });
        let format = probe::sniff(&bytes);
        let media = format.and_then(|f| f.media_type_for(req.kind));
        let Some(media) = media.filter(|m| content_type::accepted(req.kind).contains(m)) else {
            return Err(Reject(
                ErrorCode::UnsupportedAssetType,
                format!(
                    "Unsupported asset type. The base64 data is {}, which is not accepted for {}s; use {}.",
                    format.map(|f| f.name()).unwrap_or("not a recognised media format"),
                    req.kind.as_str(),
                    content_type::accepted(req.kind).join(", ")
                ),
            ));
        };
        let (w, h) = self.check_content(&bytes, media, req, reporter)?;
        Ok(Asset {
            bytes,
            media_type: media.to_string(),
            kind: req.kind,
            width: w,
            height: h,
            source: AssetSource::Base64,
        })
    }

    /// Resolves a reference whose family may be any of `kinds` (in that order of preference):
    /// a URL is fetched once and its `Content-Type` decides the family; other forms (data URIs,
    /// base64, stored UUIDs) are tried family by family, which costs no network. Used where the
    /// family is not known beforehand (Runware `mediaStorage` uploads).
    pub async fn resolve_any(
        &self,
        reference: &str,
        req: &AssetRequest<'_>,
        kinds: &[AssetKind],
    ) -> Result<Asset, ApiError> {
        let of_kind = |kind: AssetKind| AssetRequest {
            kind,
            param: req.param.clone(),
            aspect: req.aspect,
            account_id: req.account_id,
            stored: req.stored,
        };
        let trimmed = reference.trim_matches(|c: char| c.is_ascii_whitespace());
        if kinds.len() > 1 && form_of(trimmed) == "url" {
            return self.take_url(trimmed, req, kinds, &NoReport).await.map_err(|e| e.into_api(req));
        }
        let mut last = None;
        for &kind in kinds {
            match self.resolve(reference, &of_kind(kind)).await {
                Ok(asset) => return Ok(asset),
                // Not this family: the next one may take it.
                Err(e)
                    if matches!(
                        e.code,
                        ErrorCode::UnsupportedAssetType
                            | ErrorCode::AssetContentType
                            | ErrorCode::AssetContentMismatch
                    ) =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(ApiError::internal))
    }

    async fn take_url(
        &self,
        reference: &str,
        req: &AssetRequest<'_>,
        kinds: &[AssetKind],
        reporter: &dyn Reporter,
    ) -> Result<Asset, Reject> {
        let url = url_check::check_url(reference, self.config.max_url_length).map_err(|r| {
            let code = match r {
                url_check::UrlRejection::BlockedName(_) => ErrorCode::AssetHostBlocked,
                _ => ErrorCode::InvalidAssetUrl,
            };
            Reject(code, r.message())
        })?;
        reporter.step(&Step::UrlChecked {
            url: url.to_string(),
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port_or_known_default().unwrap_or(443),
        });
        // Reject a mislabelled or oversized image as soon as its header has arrived instead of
        // after the whole body. The full checks run again on the complete body below.
        let only_images = kinds == [AssetKind::Image];
        let mut early = |prefix: &[u8]| -> Result<bool, Reject> {
            if prefix.len() < 16 {
                return Ok(false);
            }
            let Some(f) = probe::sniff(prefix) else {
                return Ok(true); // the full check reports it with the whole body in hand
            };
            if !only_images {
                return Ok(true);
            }
            match probe::dimensions(f, prefix) {
                Dimensions::Known(w, h) => {
                    self.check_dimensions(w, h)?;
                    Ok(true)
                }
                // Stop trying once a generous header window has passed.
                _ => Ok(prefix.len() > 256 * 1024),
            }
        };
        let limit_of = |k: AssetKind| self.config.url_limit(k);
        let fetched =
            self.fetcher.fetch(req.account_id, &url, kinds, &limit_of, &mut early, reporter).await?;
        let req = AssetRequest {
            kind: fetched.kind,
            param: req.param.clone(),
            aspect: req.aspect,
            account_id: req.account_id,
            stored: req.stored,
        };
        let (w, h) = self.check_content(&fetched.bytes, &fetched.essence, &req, reporter)?;
        Ok(Asset {
            bytes: fetched.bytes,
            media_type: fetched.essence,
            kind: fetched.kind,
            width: w,
            height: h,
            source: AssetSource::Url(url.to_string()),
        })
    }

    fn check_dimensions(&self, w: u32, h: u32) -> Result<(), Reject> {
        let max = self.config.max_dimension;
        if w == 0 || h == 0 || w > max || h > max {
            return Err(Reject(
                ErrorCode::AssetDimensions,
                format!("Invalid asset dimensions. Height and width must not exceed {max}px. Got {w}x{h}."),
            ));
        }
        Ok(())
    }

    /// Refuses an image whose header declares more decoded bytes than
    /// [`IntakeConfig::max_decoded_bytes`], before anything decodes it. Formats the server does
    /// not decode (no header to read here) pass: no provider here will decode them either.
    fn check_decoded_size(&self, bytes: &[u8]) -> Result<(), Reject> {
        let Some(size) = probe::decoded_size(bytes) else { return Ok(()) };
        let limit = self.config.max_decoded_bytes;
        if size.bytes() > limit {
            return Err(Reject(ErrorCode::AssetDimensions, decoded_too_large(&size, limit)));
        }
        Ok(())
    }

    /// Magic bytes against the declared type, then dimensions and aspect ratio from the header.
    fn check_content(
        &self,
        bytes: &[u8],
        essence: &str,
        req: &AssetRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<(Option<u32>, Option<u32>), Reject> {
        let format = probe::sniff(bytes);
        let matches = format.is_some_and(|f| f.matches(essence));
        reporter.step(&Step::Sniffed {
            format: format.map(|f| f.name()),
            declared: essence.to_string(),
            matches,
        });
        let Some(format) = format.filter(|_| matches) else {
            return Err(Reject(
                ErrorCode::AssetContentMismatch,
                format!(
                    "The asset was declared as {essence} but its bytes are {}.",
                    format.map(|f| f.name()).unwrap_or("not a recognised media format")
                ),
            ));
        };
        let (w, h) = match probe::dimensions(format, bytes) {
            Dimensions::Known(w, h) => (w, h),
            Dimensions::NotApplicable => return Ok((None, None)),
            Dimensions::Unreadable => {
                return Err(Reject(
                    ErrorCode::AssetDimensions,
                    format!(
                        "Invalid asset dimensions. The {} header is truncated or unreadable, so its width and height cannot be read.",
                        format.name()
                    ),
                ));
            }
        };
        reporter.step(&Step::Dimensions { width: w, height: h, max: self.config.max_dimension });
        self.check_dimensions(w, h)?;
        if req.kind == AssetKind::Image {
            self.check_decoded_size(bytes)?;
        }
        let bounds = match (req.kind, req.aspect) {
            (_, Some(b)) => Some(b),
            (AssetKind::Image, None) => Some((self.config.min_aspect_ratio, self.config.max_aspect_ratio)),
            _ => None,
        };
        if let Some((lo, hi)) = bounds {
            let ratio = w as f64 / h as f64;
            reporter.step(&Step::Aspect { ratio, min: lo, max: hi });
            if ratio < lo || ratio > hi {
                return Err(Reject(
                    ErrorCode::AssetAspectRatio,
                    format!(
                        "Invalid asset aspect ratio. width / height ratio must be between {lo} and {hi}. Got {}.",
                        shown_ratio(ratio, lo, hi)
                    ),
                ));
            }
        }
        Ok((Some(w), Some(h)))
    }
}

/// The refusal of an image too large to decode: the declared size and the limit.
pub fn decoded_too_large(size: &probe::DecodedSize, limit: u64) -> String {
    format!(
        "Invalid asset dimensions. The image declares {}x{} pixels of {:?} ({} bytes per pixel), {} bytes once decoded; the limit is {limit} bytes (assets.max_decoded_bytes). Send a smaller image or one with 8-bit channels.",
        size.width,
        size.height,
        size.color,
        size.bytes_per_pixel,
        size.bytes()
    )
}

/// The ratio rounded to two decimals, or to more when two would make a refused ratio look like
/// an accepted one (2.004 shown as "2" next to "between 0.5 and 2").
fn shown_ratio(r: f64, lo: f64, hi: f64) -> f64 {
    for digits in [2, 4, 6] {
        let p = 10f64.powi(digits);
        let shown = (r * p).round() / p;
        if shown < lo || shown > hi {
            return shown;
        }
    }
    r
}

fn article(kind: AssetKind) -> &'static str {
    match kind {
        AssetKind::Image => "an image",
        AssetKind::Video => "a video",
        AssetKind::Audio => "an audio file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_ratio_never_looks_accepted() {
        assert_eq!(shown_ratio(3.2, 0.5, 2.0), 3.2);
        assert_eq!(shown_ratio(2.004, 0.5, 2.0), 2.004);
        assert_eq!(shown_ratio(0.4999, 0.5, 2.0), 0.4999);
        assert_eq!(shown_ratio(1.0 / 3.0, 0.5, 2.0), 0.33);
    }

    #[test]
    fn intake_is_shareable_and_resolve_can_be_spawned() {
        fn is_send<T: Send>(_: &T) {}
        fn is_sync<T: Send + Sync>() {}
        is_sync::<Intake>();
        let intake = Intake::new(IntakeConfig::default()).unwrap();
        let store = NoStoredAssets;
        let req = AssetRequest {
            kind: AssetKind::Image,
            param: ParamPath::key("inputImage"),
            aspect: None,
            account_id: 1,
            stored: &store,
        };
        let fut = intake.resolve("https://example.com/a.png", &req);
        is_send(&fut);
    }

    #[test]
    fn config_defaults_are_the_documented_ones() {
        let c: IntakeConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, IntakeConfig::default());
        assert_eq!(c.url_limit(AssetKind::Image), 16_000_000);
        assert_eq!(c.url_limit(AssetKind::Video), 32_000_000);
        assert_eq!(c.url_limit(AssetKind::Audio), 32_000_000);
        assert_eq!(c.data_uri_limit(AssetKind::Image), 5_000_000);
        assert_eq!(c.data_uri_limit(AssetKind::Video), 16_000_000);
        assert_eq!(c.data_uri_limit(AssetKind::Audio), 16_000_000);
        assert_eq!((c.max_dimension, c.fetch_timeout_ms, c.max_url_length), (8000, 10_000, 2048));
        assert!(!c.allow_private_networks && c.resolve.is_empty() && c.extra_ca_certs.is_empty());
        assert!(serde_json::from_str::<IntakeConfig>(r#"{"nope": 1}"#).is_err());
        let c: IntakeConfig = serde_json::from_str(
            r#"{"resolve": {"assets.test": ["127.0.0.1"]}, "allowed_networks": ["127.0.0.1/32"]}"#,
        )
        .unwrap();
        assert_eq!(c.resolve["assets.test"], vec![IpAddr::from([127, 0, 0, 1])]);
    }
}
