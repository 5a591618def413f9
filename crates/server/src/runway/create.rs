//! The task-creating endpoints: `text_to_image`, `image_to_video`, `text_to_video` and
//! `image_upscale`. Each validates its body (every issue at once), fetches and validates its
//! assets, then submits an async task to the engine and answers `{"id": …}`.

use super::body::{Body, Need};
use super::issues::Issue;
use super::{Caller, Refusal, error_response, json_object, json_response, read_body, validation_failed};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mediagate_assets::AssetKind;
use mediagate_core::task::{
    ImageInference, OutputOptions, TaskRequest, Upscale, VideoFormat, VideoInference,
};
use mediagate_core::{ApiError, ParamPath};
use mediagate_engine::uploads::Retention;
use mediagate_engine::{AuthContext, Delivery, Submission, Submitted};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// Output ratios of the image models.
const IMAGE_RATIOS: &[&str] = &[
    "1024:1024",
    "1080:1080",
    "1168:880",
    "1360:768",
    "1440:1080",
    "1080:1440",
    "1808:768",
    "1920:1080",
    "1080:1920",
    "2112:912",
    "1280:720",
    "720:1280",
    "720:720",
    "960:720",
    "720:960",
    "1680:720",
];
/// Output ratios of gen4_turbo and gen4.5 image-to-video.
const GEN4_VIDEO_RATIOS: &[&str] = &["1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"];
/// Output ratios of gen4.5 text-to-video.
const GEN45_TEXT_RATIOS: &[&str] = &["1280:720", "720:1280"];
/// Output ratios of the Veo models.
const VEO_RATIOS: &[&str] = &["1280:720", "720:1280", "1080:1920", "1920:1080"];
/// Frames per second of generated video (Runway takes no frame rate).
const VIDEO_FPS: u32 = 24;
/// Largest seed Runway accepts.
const SEED_MAX: i64 = 4_294_967_295;
/// Longest prompt, in UTF-16 code units.
const PROMPT_MAX: usize = 1000;

/// How a model takes its duration.
#[derive(Clone, Copy)]
enum Duration {
    /// An integer in a range; `None` default means required.
    Range(i64, i64, Option<i64>),
    /// One of a few values, with a default.
    OneOf(&'static [i64], i64),
}

/// What a video model accepts.
struct VideoModel {
    name: &'static str,
    ratios: &'static [&'static str],
    prompt_text: Need,
    duration: Duration,
    /// Veo's extra fields (`audio`, `negativePrompt`).
    veo: bool,
}

const IMAGE_TO_VIDEO: &[VideoModel] = &[
    VideoModel {
        name: "gen4_turbo",
        ratios: GEN4_VIDEO_RATIOS,
        prompt_text: Need::Optional,
        duration: Duration::Range(2, 10, Some(10)),
        veo: false,
    },
    VideoModel {
        name: "gen4.5",
        ratios: GEN4_VIDEO_RATIOS,
        prompt_text: Need::Required,
        duration: Duration::Range(2, 10, None),
        veo: false,
    },
    VideoModel {
        name: "veo3.1",
        ratios: VEO_RATIOS,
        prompt_text: Need::Optional,
        duration: Duration::OneOf(&[4, 6, 8], 8),
        veo: true,
    },
    VideoModel {
        name: "veo3.1_fast",
        ratios: VEO_RATIOS,
        prompt_text: Need::Optional,
        duration: Duration::OneOf(&[4, 6, 8], 8),
        veo: true,
    },
];

const TEXT_TO_VIDEO: &[VideoModel] = &[
    VideoModel {
        name: "gen4.5",
        ratios: GEN45_TEXT_RATIOS,
        prompt_text: Need::Required,
        duration: Duration::Range(2, 10, None),
        veo: false,
    },
    VideoModel {
        name: "veo3.1",
        ratios: VEO_RATIOS,
        prompt_text: Need::Required,
        duration: Duration::OneOf(&[4, 6, 8], 8),
        veo: true,
    },
    VideoModel {
        name: "veo3.1_fast",
        ratios: VEO_RATIOS,
        prompt_text: Need::Required,
        duration: Duration::OneOf(&[4, 6, 8], 8),
        veo: true,
    },
];

/// `"1280:720"` → (1280, 720).
fn ratio_size(r: &str) -> (u32, u32) {
    let (w, h) = r.split_once(':').unwrap_or(("0", "0"));
    (w.parse().unwrap_or(0), h.parse().unwrap_or(0))
}

/// An asset reference found in the body, fetched once the structure is valid.
struct AssetRef {
    uri: String,
    path: ParamPath,
}

/// What an endpoint's parser produced: the request (with asset fields still to fill) and its
/// assets, or the issues.
struct Parsed {
    request: TaskRequest,
    assets: Vec<AssetRef>,
}

/// Reads the model name; without a valid one nothing else can be checked, and the model's issue
/// (which lists the models of the endpoint) is the only one reported: which other keys are
/// allowed depends on the model, so calling them unrecognized would hide the real mistake.
fn model<'a>(b: &mut Body<'a>, names: &[&str]) -> Option<String> {
    let name = b.one_of("model", Need::Required, names);
    if name.is_none() {
        b.accept_rest();
    }
    name
}

fn seed(b: &mut Body<'_>) -> Option<u64> {
    b.int("seed", Need::Optional, 0, SEED_MAX).map(|s| s as u64)
}

fn content_moderation(b: &mut Body<'_>) {
    b.object("contentModeration", Need::Optional, |m| {
        m.one_of("publicFigureThreshold", Need::Optional, &["auto", "low"]);
    });
}

/// `promptImage`: a URI string, or `[{uri, position}]` with `first` (and, for models that
/// take one, `last`).
fn prompt_image(b: &mut Body<'_>) -> Option<AssetRef> {
    let path = b.path("promptImage");
    let v = b.raw("promptImage", Need::Required, "string")?;
    match v {
        serde_json::Value::String(s) => Some(AssetRef { uri: s.clone(), path }),
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                b.issues.push(Issue::too_small(
                    path,
                    "array",
                    1.0,
                    "Array must contain at least 1 element(s)".into(),
                ));
                return None;
            }
            let mut first = None;
            for (i, item) in items.iter().enumerate() {
                let ipath = path.index(i);
                let Some(obj) = item.as_object() else {
                    b.issues.push(Issue::wrong_type(ipath, "object", item));
                    continue;
                };
                let mut ib = Body::new(obj, ipath.clone());
                let uri = ib.string("uri", Need::Required, 1, usize::MAX);
                let position = ib.one_of("position", Need::Required, &["first", "last"]);
                b.issues.extend(ib.finish());
                match (uri, position.as_deref()) {
                    (Some(uri), Some("first")) if first.is_none() => {
                        first = Some(AssetRef { uri, path: ipath.child("uri") })
                    }
                    (Some(_), Some("first")) => b.issues.push(Issue::custom(
                        ipath.child("position"),
                        "Only one prompt image may have position 'first'.",
                    )),
                    (Some(_), Some(_)) => b.issues.push(Issue::custom(
                        ipath.child("position"),
                        "This server's video models take a first frame only; position 'last' is not supported. \
                         Send the image with position 'first'.",
                    )),
                    _ => {}
                }
            }
            if first.is_none() && b.issues.is_empty() {
                b.issues.push(Issue::custom(path, "Give one prompt image with position 'first'."));
            }
            first
        }
        other => {
            b.issues.push(Issue::wrong_type(path, "string", other));
            None
        }
    }
}

fn parse_text_to_image(b: &mut Body<'_>) -> Option<Parsed> {
    let model = model(b, &["gen4_image", "gen4_image_turbo"])?;
    let prompt = b.string("promptText", Need::Required, 1, PROMPT_MAX);
    let ratio = b.one_of("ratio", Need::Required, IMAGE_RATIOS);
    let seed = seed(b);
    content_moderation(b);
    // Reference images are fetched and validated like every asset; the procedural stand-in
    // draws without them (a provider configured for the model receives the request as is).
    let refs_need = if model == "gen4_image_turbo" { Need::Required } else { Need::Optional };
    let mut assets = Vec::new();
    let refs_path = b.path("referenceImages");
    if let Some(v) = b.raw("referenceImages", refs_need, "array") {
        match v.as_array() {
            None => b.issues.push(Issue::wrong_type(refs_path, "array", v)),
            Some(a) if a.is_empty() || a.len() > 3 => b.issues.push(if a.is_empty() {
                Issue::too_small(refs_path, "array", 1.0, "Array must contain at least 1 element(s)".into())
            } else {
                Issue::too_big(refs_path, "array", 3.0, "Array must contain at most 3 element(s)".into())
            }),
            Some(a) => {
                for (i, item) in a.iter().enumerate() {
                    let ipath = refs_path.index(i);
                    let Some(obj) = item.as_object() else {
                        b.issues.push(Issue::wrong_type(ipath, "object", item));
                        continue;
                    };
                    let mut ib = Body::new(obj, ipath.clone());
                    let uri = ib.string("uri", Need::Required, 1, usize::MAX);
                    if let Some(tag) = ib.string("tag", Need::Optional, 3, 16)
                        && !(tag.starts_with(|c: char| c.is_ascii_alphabetic())
                            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    {
                        ib.issues.push(Issue::custom(
                            ipath.child("tag"),
                            "A tag starts with a letter and has only letters, digits and underscores.",
                        ));
                    }
                    b.issues.extend(ib.finish());
                    if let Some(uri) = uri {
                        assets.push(AssetRef { uri, path: ipath.child("uri") });
                    }
                }
            }
        }
    }
    let (width, height) = ratio_size(ratio.as_deref()?);
    Some(Parsed {
        request: TaskRequest::ImageInference(ImageInference {
            positive_prompt: prompt?,
            negative_prompt: None,
            model,
            width,
            height,
            steps: None,
            cfg_scale: None,
            seed,
            number_results: 1,
            output: OutputOptions::default(),
            ..ImageInference::default()
        }),
        assets,
    })
}

fn parse_video(b: &mut Body<'_>, models: &[VideoModel], with_image: bool) -> Option<Parsed> {
    let names: Vec<&str> = models.iter().map(|m| m.name).collect();
    let name = model(b, &names)?;
    let spec = models.iter().find(|m| m.name == name)?;
    let image = if with_image { prompt_image(b) } else { None };
    let prompt = b.string("promptText", spec.prompt_text, 1, PROMPT_MAX);
    let ratio = b.one_of("ratio", Need::Required, spec.ratios);
    let duration = match spec.duration {
        Duration::Range(lo, hi, default) => {
            let need = if default.is_some() { Need::Optional } else { Need::Required };
            b.int("duration", need, lo, hi).or(default)
        }
        Duration::OneOf(values, default) => b.int_of("duration", Need::Optional, values).or(Some(default)),
    };
    let seed = seed(b);
    if spec.veo {
        b.boolean("audio", Need::Optional);
        b.string("negativePrompt", Need::Optional, 1, PROMPT_MAX);
    } else {
        content_moderation(b);
    }
    if name == "gen4.5" {
        b.one_of("outputFormat", Need::Optional, &["mp4"]);
    }
    let (width, height) = ratio_size(ratio.as_deref()?);
    let prompt = if spec.prompt_text == Need::Required { prompt? } else { prompt.unwrap_or_default() };
    let assets: Vec<AssetRef> = image.into_iter().collect();
    if with_image && assets.is_empty() {
        return None;
    }
    Some(Parsed {
        request: TaskRequest::VideoInference(VideoInference {
            positive_prompt: prompt,
            model: name,
            width,
            height,
            duration_secs: duration? as u32,
            fps: VIDEO_FPS,
            seed,
            // Filled with the stored asset's UUID once the asset is ingested.
            first_frame: assets.first().map(|_| String::new()),
            later_frames: Vec::new(),
            video_format: VideoFormat::Mp4,
            output: OutputOptions::default(),
            number_results: 1,
            extras: Default::default(),
        }),
        assets,
    })
}

fn parse_image_upscale(b: &mut Body<'_>) -> Option<Parsed> {
    let model = model(b, &["magnific_precision_upscaler_v2"])?;
    let path = b.path("imageUri");
    let uri = b.string("imageUri", Need::Required, 1, usize::MAX);
    let factor = b.int_of("scaleFactor", Need::Optional, &[2, 4, 8, 16]).unwrap_or(2);
    // Tuning knobs of the Magnific model; the Lanczos stand-in has none of them.
    b.one_of("flavor", Need::Optional, &["sublime", "photo", "photo_denoiser"]);
    for knob in ["sharpen", "smartGrain", "ultraDetail"] {
        b.int(knob, Need::Optional, 0, 100);
    }
    Some(Parsed {
        request: TaskRequest::Upscale(Upscale {
            input_image: String::new(),
            model,
            upscale_factor: factor as u32,
            output: OutputOptions::default(),
            video: None,
        }),
        assets: vec![AssetRef { uri: uri?, path }],
    })
}

/// Fetches and validates every asset (as uploads kept for the ephemeral period, so the task
/// names them by UUID), collecting one `custom` issue per failure.
async fn ingest(
    state: &AppState,
    ctx: &AuthContext,
    request: &TaskRequest,
    assets: Vec<AssetRef>,
) -> Result<Vec<Uuid>, Vec<Issue>> {
    let aspect = state
        .engine
        .catalog()
        .resolve(request.model(), request.task_type())
        .ok()
        .map(|m| (m.spec.bounds.input_aspect_min, m.spec.bounds.input_aspect_max));
    let mut ids = Vec::new();
    let mut issues = Vec::new();
    for a in assets {
        match state
            .engine
            .upload_reference(
                ctx,
                &a.uri,
                Some(AssetKind::Image),
                aspect,
                a.path.clone(),
                Retention::Ephemeral,
            )
            .await
        {
            Ok(up) => ids.push(up.uuid),
            Err(e) => issues.push(Issue::custom(a.path, e.message)),
        }
    }
    if issues.is_empty() { Ok(ids) } else { Err(issues) }
}

async fn create(
    state: AppState,
    ctx: Arc<AuthContext>,
    headers: HeaderMap,
    body: axum::body::Body,
    endpoint: &'static str,
    parse: fn(&mut Body<'_>) -> Option<Parsed>,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, &headers, body).await?;
    let obj = json_object(&state, &bytes)?;
    let mut body = Body::new(&obj, ParamPath::default());
    let parsed = parse(&mut body);
    let issues = body.finish();
    let Some(Parsed { request, assets }) = parsed.filter(|_| issues.is_empty()) else {
        return Err(validation_failed(&state, "body", &issues).into());
    };
    let mut submission = Submission {
        task_uuid: Uuid::new_v4(),
        task_type_name: endpoint.to_string(),
        request,
        dialect: mediagate_core::Dialect::Runway,
        delivery: Delivery::Async,
        webhook_url: None,
    };
    crate::edge::record_tasks([submission.task_uuid.to_string().as_str()]);
    // Scopes and credit before the assets: a request that will be refused fetches and stores
    // nothing.
    if let Err(e) = state.engine.precheck(&ctx, &submission).await {
        return Err(error_response(&state, &rename_params(e)).into());
    }
    let ids = match ingest(&state, &ctx, &submission.request, assets).await {
        Ok(ids) => ids,
        Err(issues) => return Err(validation_failed(&state, "body", &issues).into()),
    };
    // The task's inputs become the stored assets, in order (a text_to_image's reference
    // images are checked and kept, but the canonical request has no input for them).
    for (input, id) in submission.request.inputs_mut().into_iter().zip(&ids) {
        *input = id.to_string();
    }
    match state.engine.submit(&ctx, submission).await {
        Ok(Submitted::Accepted { task_uuid }) => {
            Ok(json_response(StatusCode::OK, &json!({ "id": task_uuid })))
        }
        Ok(Submitted::Done(d)) => Ok(json_response(StatusCode::OK, &json!({ "id": d.task_uuid }))),
        Err(e) => {
            // Refused after all (a race on the balance, a limit, validation): the assets stored
            // for it go with it.
            for id in ids {
                let _ = state.engine.delete_upload(&ctx, id, ParamPath::default()).await;
            }
            Err(error_response(&state, &rename_params(e)).into())
        }
    }
}

/// Engine errors name canonical parameters; say them in Runway's words.
fn rename_params(mut e: ApiError) -> ApiError {
    use mediagate_core::Parameter;
    let rename = |p: &ParamPath| -> ParamPath {
        match p.to_string().as_str() {
            "width" | "height" => ParamPath::key("ratio"),
            "positivePrompt" => ParamPath::key("promptText"),
            "upscaleFactor" => ParamPath::key("scaleFactor"),
            "inputImage" => ParamPath::key("imageUri"),
            "frameImages[0].inputImage" => ParamPath::key("promptImage"),
            _ => p.clone(),
        }
    };
    e.parameter = e.parameter.map(|p| match p {
        Parameter::One(p) => Parameter::One(rename(&p)),
        Parameter::Several(v) => {
            let mut out: Vec<ParamPath> = Vec::new();
            for p in v.iter().map(rename) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            if out.len() == 1 { Parameter::One(out.remove(0)) } else { Parameter::Several(out) }
        }
    });
    e
}

/// `POST /v1/text_to_image`.
#[utoipa::path(post, path = "/v1/text_to_image", tag = "runway", params(("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), request_body = crate::openapi::schemas::TextToImage, responses((status = 200, description = "The task was created", body = crate::openapi::schemas::TaskCreated), (status = 402, description = "Not enough credit, or the monthly spend cap", body = crate::openapi::schemas::RunwayError), (status = 403, description = "The key's scopes do not cover this", body = crate::openapi::schemas::RunwayError), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn text_to_image(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    b: axum::body::Body,
) -> Result<Response, Refusal> {
    create(s, c, h, b, "text_to_image", parse_text_to_image).await
}

/// `POST /v1/image_to_video`.
#[utoipa::path(post, path = "/v1/image_to_video", tag = "runway", params(("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), request_body = crate::openapi::schemas::ImageToVideo, responses((status = 200, description = "The task was created", body = crate::openapi::schemas::TaskCreated), (status = 402, description = "Not enough credit, or the monthly spend cap", body = crate::openapi::schemas::RunwayError), (status = 403, description = "The key's scopes do not cover this", body = crate::openapi::schemas::RunwayError), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn image_to_video(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    b: axum::body::Body,
) -> Result<Response, Refusal> {
    create(s, c, h, b, "image_to_video", |b| parse_video(b, IMAGE_TO_VIDEO, true)).await
}

/// `POST /v1/text_to_video`.
#[utoipa::path(post, path = "/v1/text_to_video", tag = "runway", params(("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), request_body = crate::openapi::schemas::TextToVideo, responses((status = 200, description = "The task was created", body = crate::openapi::schemas::TaskCreated), (status = 402, description = "Not enough credit, or the monthly spend cap", body = crate::openapi::schemas::RunwayError), (status = 403, description = "The key's scopes do not cover this", body = crate::openapi::schemas::RunwayError), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn text_to_video(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    b: axum::body::Body,
) -> Result<Response, Refusal> {
    create(s, c, h, b, "text_to_video", |b| parse_video(b, TEXT_TO_VIDEO, false)).await
}

/// `POST /v1/image_upscale`.
#[utoipa::path(post, path = "/v1/image_upscale", tag = "runway", params(("X-Runway-Version" = String, Header, description = "The API version: 2024-11-06")), request_body = crate::openapi::schemas::ImageUpscale, responses((status = 200, description = "The task was created", body = crate::openapi::schemas::TaskCreated), (status = 402, description = "Not enough credit, or the monthly spend cap", body = crate::openapi::schemas::RunwayError), (status = 403, description = "The key's scopes do not cover this", body = crate::openapi::schemas::RunwayError), (status = 400, description = "The request is invalid; every issue is listed", body = crate::openapi::schemas::RunwayError), (status = 401, description = "No key, or a wrong one", body = crate::openapi::schemas::RunwayError), (status = 429, description = "Too many requests (a rate limit, or failed authentications from this address); Retry-After says when", body = crate::openapi::schemas::RunwayError)), security(("bearer" = [])))]
pub async fn image_upscale(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    b: axum::body::Body,
) -> Result<Response, Refusal> {
    create(s, c, h, b, "image_upscale", parse_image_upscale).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_map_to_sizes_the_models_accept() {
        for r in IMAGE_RATIOS.iter().chain(GEN4_VIDEO_RATIOS).chain(VEO_RATIOS) {
            let (w, h) = ratio_size(r);
            assert!(w % 8 == 0 && h % 8 == 0 && w * h <= 1920 * 1080, "{r}");
        }
    }
}
