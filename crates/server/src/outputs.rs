//! `GET /v1/outputs/<uuid>.<ext>`: stored outputs, until their time to live expires.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mediagate_core::{ApiError, ErrorCode};
use uuid::Uuid;

/// Output URLs as this route serves them: `<base>/v1/outputs/<uuid>.<ext>`.
pub struct Links {
    /// The server's public base URL.
    pub base_url: String,
}

impl mediagate_engine::OutputLinks for Links {
    fn output_url(&self, uuid: Uuid, extension: &str) -> String {
        format!("{}/v1/outputs/{uuid}.{extension}", self.base_url)
    }
}

#[utoipa::path(get, path = "/v1/outputs/{file}", tag = "server", params(("file" = String, Path, description = "An output's UUID and extension")), responses((status = 200, description = "The file", content_type = "application/octet-stream"), (status = 404, description = "Unknown or expired", body = crate::openapi::schemas::RunwareResponse)))]
pub async fn get_output(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let missing = || {
        crate::runware::request_error(
            &state,
            &ApiError::new(
                ErrorCode::OutputNotFound,
                format!("No output '{file}': it does not exist or its time to live has expired."),
            ),
        )
    };
    let Some((stem, ext)) = file.split_once('.') else {
        return missing();
    };
    let Ok(uuid) = Uuid::try_parse(stem) else {
        return missing();
    };
    let rec = match state.engine.store().get_output(uuid).await {
        Ok(Some(r)) if r.extension == ext && r.expires_at > mediagate_store::now_ms() => r,
        Ok(_) => return missing(),
        Err(e) => {
            tracing::error!(error = %e, "output lookup failed");
            return crate::runware::request_error(&state, &ApiError::internal());
        }
    };
    match state.engine.read_output(&rec).await {
        Some(bytes) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, rec.content_type),
                (header::CACHE_CONTROL, "private, max-age=3600".to_string()),
            ],
            bytes,
        )
            .into_response(),
        None => missing(),
    }
}
