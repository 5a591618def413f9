//! The OpenAPI 3.1 document of this server, served at `/openapi.json` and rendered at
//! `/docs/api`.
//!
//! Generated from the code with `utoipa`: every route is registered through a
//! `utoipa_axum::OpenApiRouter` together with its handler's `#[utoipa::path]` operation, so a
//! route and its documentation are one registration and cannot drift apart; `tests/openapi.rs`
//! checks that every documented operation is routed and that the server answers no route the
//! document lacks.

pub mod schemas;

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

/// Lists the Runware task types in `RunwareTask.taskType` as an enum taken from the registry
/// (`mediagate_core::task::TaskType::ALL`, with aliases) and the dialect's own task types, so
/// a task type added to the registry is documented without another edit. Applied once the
/// routes' schemas are merged in (`router_with`).
pub(crate) struct RegisteredTaskTypes;

impl Modify for RegisteredTaskTypes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let names: Vec<serde_json::Value> = crate::runware::parse::OWN_TASK_TYPES
            .iter()
            .copied()
            .chain(
                mediagate_core::task::TaskType::ALL
                    .iter()
                    .flat_map(|t| std::iter::once(t.as_str()).chain(t.aliases().iter().copied())),
            )
            .map(serde_json::Value::from)
            .collect();
        let Some(components) = openapi.components.as_mut() else { return };
        let Some(RefOr::T(Schema::Object(task))) = components.schemas.get_mut("RunwareTask") else { return };
        if let Some(RefOr::T(Schema::Object(task_type))) = task.properties.get_mut("taskType") {
            task_type.enum_values = Some(names);
        }
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
