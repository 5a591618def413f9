//! The OpenAPI document against the routes it describes: every documented operation reaches a
//! handler (not the server's fallback), every route the server answers is documented, and the
//! document names its schemas and its bearer scheme.

use mediagate_testkit::TestServer;
use serde_json::Value;
use std::collections::BTreeSet;

/// Whether an answer is the server's fallback for a path, or a method, that no route has.
fn from_fallback(status: u16, method: &str, body: &str) -> bool {
    (status == 404 && (body.contains("No endpoint at") || body.contains("No admin endpoint at")))
        || (status == 405 && body.contains(&format!("does not accept {method}")))
}

async fn document(s: &TestServer) -> Value {
    let r = s.http.get(format!("{}/openapi.json", s.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let ops = operations(&doc);
    assert!(ops.len() >= 35, "{ops:?}");
    for (method, path) in &ops {
        let concrete = path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{name}", "default")
            .replace("{file}", "00000000-0000-4000-8000-000000000000.png")
            .replace("{action}", "disable");
        let r = s
            .http
            .request(method.parse().unwrap(), format!("{}{concrete}", s.base_url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(
            !from_fallback(status, method, &body),
            "{method} {path} is documented but answered by the fallback ({status}): {body}"
        );
    }
}

#[tokio::test]
async fn every_route_the_server_answers_is_documented() {
    let s = TestServer::start().await;
    let ops = operations(&document(&s).await);
    // Every route of the server, by surface. Adding one without its operation fails here (and
    // cannot happen through the OpenApiRouter, which registers both at once).
    let routes = [
        ("POST", "/v1"),
        ("GET", "/v1"),
        ("GET", "/v1/outputs/{file}"),
        ("GET", "/v1/webhooks/deliveries"),
        ("POST", "/v1/text_to_image"),
        ("POST", "/v1/image_to_video"),
        ("POST", "/v1/text_to_video"),
        ("POST", "/v1/image_upscale"),
        ("GET", "/v1/tasks/{id}"),
        ("DELETE", "/v1/tasks/{id}"),
        ("POST", "/v1/uploads"),
        ("POST", "/v1/uploads/{id}"),
        ("GET", "/v1/organization"),
        ("POST", "/v1/organization/usage"),
        ("GET", "/admin/v1/accounts"),
        ("POST", "/admin/v1/accounts"),
        ("POST", "/admin/v1/accounts/{name}/suspend"),
        ("POST", "/admin/v1/accounts/{name}/unsuspend"),
        ("GET", "/admin/v1/accounts/{name}/credits"),
        ("POST", "/admin/v1/accounts/{name}/credits"),
        ("GET", "/admin/v1/accounts/{name}/limits"),
        ("PUT", "/admin/v1/accounts/{name}/limits"),
        ("GET", "/admin/v1/accounts/{name}/storage"),
        ("GET", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys/{id}/{action}"),
        ("GET", "/docs"),
        ("GET", "/docs/errors"),
        ("GET", "/docs/runway"),
        ("GET", "/docs/admin-api"),
        ("GET", "/docs/api"),
        ("GET", "/health"),
        ("GET", "/livez"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ];
    let routes: BTreeSet<(String, String)> =
        routes.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(ops, routes, "documented operations and the server's routes differ");
}

#[tokio::test]
async fn the_document_names_its_bodies_and_the_bearer_scheme_and_is_rendered() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "TextToImage",
        "ImageToVideo",
        "RunwayTask",
        "RunwayError",
        "RunwareTask",
        "RunwareResponse",
        "NewKey",
        "SetLimits",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The Runware task types come from the registry, aliases included.
    let task_types = doc["components"]["schemas"]["RunwareTask"]["properties"]["taskType"]["enum"]
        .as_array()
        .expect("taskType is an enum");
    for t in mediagate_core::task::TaskType::ALL {
        for name in std::iter::once(t.as_str()).chain(t.aliases().iter().copied()) {
            assert!(task_types.contains(&Value::from(name)), "{name} is not in {task_types:?}");
        }
    }
    let op = &doc["paths"]["/v1/text_to_image"]["post"];
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TextToImage"
    );
    let page = s.http.get(format!("{}/docs/api", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("POST /v1/text_to_image") && page.contains("/openapi.json"), "{page}");
}
