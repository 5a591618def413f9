//! Served documentation: `/docs` (what this server is, its models) and `/docs/errors` (the error
//! catalog, the target of every error's `documentation` link), both generated at run time.

use crate::AppState;
use axum::extract::State;
use axum::response::Html;
use mediagate_core::ErrorCode;
use mediagate_core::money::format_usd;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\
         code{{background:#f4f4f4}}</style></head><body>{body}</body></html>",
        t = esc(title)
    ))
}

#[utoipa::path(get, path = "/docs", tag = "server", responses((status = 200, description = "This server and its models", content_type = "text/html")))]
pub async fn index(State(state): State<AppState>) -> Html<String> {
    let mut rows = String::new();
    for m in state.engine.catalog().models() {
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>${}</td><td>{}</td></tr>",
            esc(&m.spec.air),
            m.spec.task_type.as_str(),
            esc(&m.spec.provider),
            format_usd(m.price_micros),
            esc(&m.spec.description)
        ));
    }
    page(
        "mediagate",
        &format!(
            "<h1>mediagate</h1><p>A self-hosted API server for generative-media tasks speaking the Runware \
             task-array dialect at <code>POST /v1</code> and the Runway dialect at \
             <code>POST /v1/text_to_image</code>, <code>GET /v1/tasks/{{id}}</code>, … \
             (<a href=\"/docs/runway\">guide</a>). Runway model names are served by the same local \
             stand-ins unless configured otherwise.</p>\
             <p><strong>Note:</strong> the built-in model <code>mediagate:procedural@1</code> is a \
             <em>procedural stand-in, not a generative model</em>: it draws deterministic seeded gradients \
             and shapes so the whole pipeline runs without a GPU. Configure real providers for real images.</p>\
             <h2>Models</h2><table><tr><th>AIR id</th><th>task type</th><th>provider</th><th>price per result</th>\
             <th>description</th></tr>{rows}</table><p>Error codes: <a href=\"/docs/errors\">/docs/errors</a></p>"
        ),
    )
}

#[utoipa::path(get, path = "/docs/errors", tag = "server", responses((status = 200, description = "The error catalog", content_type = "text/html")))]
pub async fn errors() -> Html<String> {
    let mut rows = String::new();
    for c in ErrorCode::ALL {
        rows.push_str(&format!(
            "<tr id=\"{code}\"><td><code>{code}</code></td><td>{status}</td><td>{retry}</td><td>{meaning}</td></tr>",
            code = c.as_str(),
            status = c.http_status(),
            retry = if c.is_retryable() { "yes" } else { "no" },
            meaning = esc(c.meaning())
        ));
    }
    page(
        "mediagate error codes",
        &format!(
            "<h1>Error codes</h1><p>Retry only codes marked retryable, with exponential backoff and jitter. \
             On REST the HTTP status is that of the first error when no task succeeded.</p>\
             <table><tr><th>code</th><th>HTTP</th><th>retryable</th><th>meaning</th></tr>{rows}</table>"
        ),
    )
}

/// `/docs/admin-api`: the admin API's reference (the link of its 404s).
#[utoipa::path(get, path = "/docs/admin-api", tag = "server", responses((status = 200, description = "The admin API's reference", content_type = "text/html")))]
pub async fn admin_api() -> Html<String> {
    page(
        "mediagate: the admin API",
        &format!(
            "<pre style=\"white-space:pre-wrap\">{}</pre>",
            esc(include_str!("../../../docs/admin-api.md"))
        ),
    )
}

/// `/docs/runway`: the Runway dialect's guide (the `docUrl` of its error bodies).
#[utoipa::path(get, path = "/docs/runway", tag = "server", responses((status = 200, description = "The Runway dialect's guide", content_type = "text/html")))]
pub async fn runway() -> Html<String> {
    page(
        "mediagate: the Runway dialect",
        &format!(
            "<pre style=\"white-space:pre-wrap\">{}</pre>",
            esc(include_str!("../../../docs/runway.md"))
        ),
    )
}

/// `/docs/api`: the OpenAPI document rendered as a page (every operation with its parameters,
/// bodies and answers), without scripts from elsewhere.
#[utoipa::path(get, path = "/docs/api", tag = "server", responses((status = 200, description = "The API reference", content_type = "text/html")))]
pub async fn api(State(state): State<AppState>) -> Html<String> {
    let doc: serde_json::Value =
        state.openapi.get().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    let mut rows = String::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let answers: Vec<String> = op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, r)| format!("{code} {}", esc(r["description"].as_str().unwrap_or(""))))
                    .collect();
                rows.push_str(&format!(
                    "<tr><td><code>{} {}</code></td><td>{}</td><td>{}</td></tr>",
                    method.to_uppercase(),
                    esc(path),
                    esc(op["tags"][0].as_str().unwrap_or("")),
                    answers.join("<br>")
                ));
            }
        }
    }
    page(
        "mediagate API",
        &format!(
            "<h1>API reference</h1><p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a> \
             (OpenAPI 3.1).</p><table><tr><th>operation</th><th>surface</th><th>answers</th></tr>{rows}</table>"
        ),
    )
}
