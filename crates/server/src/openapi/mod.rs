//! The OpenAPI 3.1 document of this server, served at `/openapi.json` and rendered at
//! `/docs/api`.
//!
//! Generated from the code with `utoipa`: every route is registered through a
//! `utoipa_axum::OpenApiRouter` together with its handler's `#[utoipa::path]` operation, so a
//! route and its documentation are one registration and cannot drift apart; `tests/openapi.rs`
//! checks that every documented operation is routed and that the server answers no route the
//! document lacks. The Runware task array's item schemas are recorded from the parsers when the
//! document is built ([`tasks`]).

pub mod schemas;
pub mod tasks;

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The document's fixed parts; the operations come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "mediagate",
        description = "A self-hosted API server for generative-media tasks. It speaks the Runware \
                       task-array dialect at POST /v1 (and over WebSocket at GET /v1), the Runway \
                       dialect (per-endpoint REST with polled tasks), an admin API under /admin/v1, \
                       and operators' endpoints. Keys go in `Authorization: Bearer …`: API keys \
                       (`key_…`) for the dialects, admin keys (`admin_…`) for /admin/v1."
    ),
    modifiers(&BearerKeys),
    tags(
        (name = "runware", description = "The Runware dialect: task arrays, one error object per failed task"),
        (name = "runway", description = "The Runway dialect: X-Runway-Version 2024-11-06, 400s list every issue"),
        (name = "admin", description = "Accounts, keys, credits and limits, with admin keys"),
        (name = "server", description = "Pages, outputs, health and metrics")
    )
)]
pub struct ApiDoc;

/// Declares the bearer scheme every authenticated operation names.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The finished document as JSON: utoipa's, with the Runware task schemas recorded from the
/// parsers ([`tasks::install`]) once the routes' schemas are merged in (`router_with`).
pub(crate) fn finish(doc: &utoipa::openapi::OpenApi) -> String {
    let mut json = serde_json::to_value(doc).unwrap_or_default();
    tasks::install(&mut json);
    task_error_statuses(&mut json);
    json.to_string()
}

/// `POST /v1` answers with the status of its first task's error when every task failed, so
/// every status of the error catalog is one of its answers: the ones its operation does not
/// list already are added from the catalog.
fn task_error_statuses(doc: &mut serde_json::Value) {
    let Some(responses) = doc["paths"]["/v1"]["post"]["responses"].as_object_mut() else { return };
    let mut statuses: Vec<u16> = mediagate_core::ErrorCode::ALL.iter().map(|c| c.http_status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        responses.entry(status.to_string()).or_insert_with(|| {
            let codes: Vec<&str> = mediagate_core::ErrorCode::ALL
                .iter()
                .filter(|c| c.http_status() == status)
                .map(|c| c.as_str())
                .collect();
            serde_json::json!({
                "description": format!(
                    "Every task failed, the first with an error of this status ({}; see /docs/errors)",
                    codes.join(", ")
                ),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunwareResponse"}}}
            })
        });
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "server", responses((status = 200, description = "This OpenAPI document", body = Object)))]
pub async fn document(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.openapi.get().cloned().unwrap_or_default(),
    )
        .into_response()
}
