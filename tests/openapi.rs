//! The OpenAPI document against the routes it describes: every documented operation reaches a
//! handler (not the server's fallback), every route the server answers is documented, and the
//! document names its schemas and its bearer scheme. The Runware task array's item is one schema
//! per task type, recorded from the parsers: each is checked against the registry, the examples
//! and the live server, and the parsers' sources are scanned for keys the schemas lack.

use mediagate_core::task::TaskType;
use mediagate_testkit::TestServer;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

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
        ("GET", "/v1/history/tasks"),
        ("GET", "/v1/history/tasks/{id}"),
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
        ("GET", "/admin/v1/history/tasks"),
        ("GET", "/admin/v1/history/tasks/{id}"),
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

/// The portal's HTML pages are the one deliberate exception to "every route is documented":
/// they are for browsers, not API clients, so none is in the document, and each one listed in
/// `mediagate_server::portal::ROUTES` is really routed (not the fallback, nor the portal's own
/// 404). `ROUTES` is kept beside `portal::routes()`; tests/portal.rs walks the same list for the
/// security headers every portal response carries.
#[tokio::test]
async fn the_portal_pages_are_routed_and_deliberately_left_out_of_the_document() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with("/portal")), "portal pages are not API operations");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (method, path) in mediagate_server::portal::ROUTES {
        assert!(path == &"/portal" || path.starts_with("/portal/"), "{path}");
        let concrete = path.replace("{id}", "1").replace("{action}", "disable").replace("{name}", "default");
        let r = client
            .request(method.parse().unwrap(), format!("{}{concrete}", s.base_url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(!from_fallback(status, method, &body), "{method} {path} answered by the fallback: {body}");
        assert!(!body.contains("No such page"), "{method} {path} answered by the portal's own 404");
    }
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
    // POST /v1 takes an array of RunwareTask (see the tests of the task schemas below).
    assert_eq!(
        doc["paths"]["/v1"]["post"]["requestBody"]["content"]["application/json"]["schema"],
        json!({"type": "array", "items": {"$ref": "#/components/schemas/RunwareTask"}})
    );
    let op = &doc["paths"]["/v1/text_to_image"]["post"];
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TextToImage"
    );
    let page = s.http.get(format!("{}/docs/api", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("POST /v1/text_to_image") && page.contains("/openapi.json"), "{page}");
}

// --- The Runware task schemas ---------------------------------------------------------------

/// Every name a task is sent under, by the component of its schema: the registered task types
/// (with their aliases), the dialect's own, and `authentication`.
fn task_names() -> BTreeMap<String, Vec<&'static str>> {
    let registered = TaskType::ALL
        .iter()
        .map(|t| (t.as_str(), std::iter::once(t.as_str()).chain(t.aliases().iter().copied()).collect()));
    let own = mediagate_server::RUNWARE_OWN_TASK_TYPES.iter().map(|n| (*n, vec![*n]));
    registered
        .chain(own)
        .chain([("authentication", vec!["authentication"])])
        .map(|(name, names)| (format!("RunwareTask_{name}"), names))
        .collect()
}

/// The task schemas of the document, by component.
fn task_schemas(doc: &Value) -> BTreeMap<String, Value> {
    doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("RunwareTask_"))
        .map(|(name, s)| (name.clone(), s.clone()))
        .collect()
}

#[tokio::test]
async fn every_task_type_has_its_schema_in_the_one_of_with_its_examples() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let schemas = task_schemas(&doc);
    let names = task_names();
    assert_eq!(schemas.keys().collect::<Vec<_>>(), names.keys().collect::<Vec<_>>());
    let task = &doc["components"]["schemas"]["RunwareTask"];
    let one_of: Vec<&str> =
        task["oneOf"].as_array().unwrap().iter().map(|r| r["$ref"].as_str().unwrap()).collect();
    assert_eq!(one_of.len(), names.len(), "{task}");
    assert_eq!(task["discriminator"]["propertyName"], "taskType");
    let mapping = task["discriminator"]["mapping"].as_object().unwrap();
    for (component, names) in &names {
        let reference = format!("#/components/schemas/{component}");
        assert!(one_of.contains(&reference.as_str()), "{component} is not in RunwareTask.oneOf");
        for name in names {
            assert_eq!(mapping[*name], reference.as_str(), "the discriminator maps {name} elsewhere");
        }
        let schema = &schemas[component];
        assert_eq!(schema["properties"]["taskType"]["enum"], json!(names), "{component}");
        assert_eq!(schema["required"][0], "taskType", "{component}");
        // Every key a task may hold is listed: the parsers refuse the others.
        if component != "RunwareTask_authentication" {
            assert_eq!(schema["additionalProperties"], false, "{component}");
            assert!(
                schema["required"].as_array().unwrap().contains(&json!("taskUUID")) || names[0] == "ping"
            );
        }
        // Each schema is a valid JSON Schema (draft 2020-12, OpenAPI 3.1's).
        if let Err(e) = jsonschema::meta::validate(schema) {
            panic!("{component} is not a valid JSON Schema: {e}");
        }
    }
    for t in TaskType::ALL {
        let schema = &schemas[&format!("RunwareTask_{}", t.as_str())];
        assert_eq!(schema["examples"].as_array().unwrap().len(), t.examples().count(), "{}", t.as_str());
        // The schema is recorded from the parser, not written: its keys are those the parser
        // reads, with the bounds it checks.
        for key in ["taskUUID", "deliveryMethod", "webhookURL", "includeCost"] {
            assert!(schema["properties"].get(key).is_some(), "{}: no {key}", t.as_str());
        }
    }
    let image = &schemas["RunwareTask_imageInference"];
    assert_eq!(image["properties"]["positivePrompt"]["minLength"], 2);
    assert_eq!(image["properties"]["positivePrompt"]["maxLength"], 3000);
    assert_eq!(image["properties"]["outputQuality"]["maximum"], 99);
    assert_eq!(image["properties"]["outpaint"]["properties"]["blur"]["maximum"], 32);
    assert_eq!(image["properties"]["lora"]["items"]["required"], json!(["model"]));
    assert_eq!(image["properties"]["controlNet"]["maxItems"], 8);
    assert!(image["properties"]["width"]["description"].as_str().unwrap().contains("model"), "{image}");
    let text = &schemas["RunwareTask_textInference"];
    assert_eq!(text["properties"]["messages"]["items"]["required"], json!(["role", "content"]));
    assert_eq!(text["properties"]["settings"]["properties"]["topK"]["maximum"], 1000);
}

/// A validator of one JSON Schema (formats asserted).
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("{e}: {schema}"))
}

#[tokio::test]
async fn every_example_is_valid_against_its_schema_and_no_other() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let schemas = task_schemas(&doc);
    let validators: BTreeMap<&String, jsonschema::Validator> =
        schemas.iter().map(|(n, s)| (n, validator(s))).collect();
    // The request body as the document has it: an array of RunwareTask, refs resolved in it.
    let body = validator(&json!({
        "type": "array",
        "items": {"$ref": "#/components/schemas/RunwareTask"},
        "components": doc["components"],
    }));
    let mut examples = 0;
    for (component, schema) in &schemas {
        for example in schema["examples"].as_array().unwrap() {
            examples += 1;
            let errors: Vec<String> =
                validators[component].iter_errors(example).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{component}: {example} is invalid: {errors:?}");
            let matching: Vec<&String> =
                validators.iter().filter(|(_, v)| v.is_valid(example)).map(|(n, _)| *n).collect();
            assert_eq!(matching, [component], "{example}");
            assert!(body.is_valid(&json!([example])), "{component}: {example}");
            // A key the schema does not list is refused by it (as by the server, below).
            if component != "RunwareTask_authentication" {
                let mut other = example.clone();
                other["notAParameter"] = json!(1);
                assert!(!body.is_valid(&json!([other])), "{component} takes any key");
            }
        }
    }
    assert!(examples >= task_names().len() + 10, "{examples} examples");
    // The registered examples are the modules' own (TaskParams::EXAMPLE and EXAMPLES).
    for t in TaskType::ALL {
        for params in t.examples() {
            let mut task: Value = serde_json::from_str(params).unwrap();
            task["taskType"] = t.as_str().into();
            task["taskUUID"] = mediagate_testkit::task_uuid().into();
            assert!(body.is_valid(&json!([task])), "{}: {task}", t.as_str());
        }
    }
}

/// The objects of `value` that `schema` closes (`additionalProperties: false`), by path, and the
/// keys it requires in each object `value` has, by path: walked together.
fn closed_and_required(
    value: &Value,
    schema: &Value,
    path: &str,
    closed: &mut Vec<String>,
    required: &mut Vec<String>,
) {
    let at = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    // Of alternatives, the one that describes this value (an image given as an object).
    if let Some(alternatives) = schema["anyOf"].as_array() {
        let kind = |s: &Value| {
            s["type"].as_str().map(str::to_string).or_else(|| s["type"][0].as_str().map(str::to_string))
        };
        let want = match value {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            _ => return,
        };
        if let Some(s) = alternatives.iter().find(|s| kind(s).as_deref() == Some(want)) {
            closed_and_required(value, s, path, closed, required);
        }
        return;
    }
    match value {
        Value::Object(o) => {
            if schema["additionalProperties"] == false {
                closed.push(path.to_string());
            }
            for k in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if o.contains_key(k) {
                    required.push(at(k));
                }
            }
            for (k, v) in o {
                if let Some(s) = schema["properties"].get(k) {
                    closed_and_required(v, s, &at(k), closed, required);
                }
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                closed_and_required(first, &schema["items"], &format!("{path}[0]"), closed, required);
            }
        }
        _ => {}
    }
}

/// The value at a dotted path (`messages[0].role`), to edit.
fn at_path<'v>(value: &'v mut Value, path: &str) -> &'v mut Value {
    let mut v = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
            None => (part, None),
        };
        v = &mut v[key];
        if let Some(i) = index {
            v = &mut v[i];
        }
    }
    v
}

#[tokio::test]
async fn the_server_refuses_every_key_a_schema_lacks_and_every_task_missing_a_required_key() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let mut checked = (0, 0);
    for (component, schema) in task_schemas(&doc) {
        // authentication is read by the request handler, not a task parser.
        if component == "RunwareTask_authentication" {
            continue;
        }
        for example in schema["examples"].as_array().unwrap() {
            let (mut closed, mut required) = (Vec::new(), Vec::new());
            closed_and_required(example, &schema, "", &mut closed, &mut required);
            for path in closed {
                let mut task = example.clone();
                at_path(&mut task, &path)["notAParameter"] = json!(1);
                let (status, body) = s.post(&json!([task])).await;
                let want = if path.is_empty() {
                    "notAParameter".to_string()
                } else {
                    format!("{path}.notAParameter")
                };
                let e = &body["errors"][0];
                assert_eq!(
                    (status, e["code"].as_str(), e["parameter"].as_str()),
                    (400, Some("unknownParameter"), Some(want.as_str())),
                    "{component}: {task}: {body}"
                );
                checked.0 += 1;
            }
            for path in required {
                let mut task = example.clone();
                let (parent, key) = path.rsplit_once('.').unwrap_or(("", &path));
                at_path(&mut task, parent).as_object_mut().unwrap().remove(key);
                let (status, body) = s.post(&json!([task])).await;
                let e = &body["errors"][0];
                let code = match path.as_str() {
                    "taskType" => "invalidTaskObject",
                    "taskUUID" => "missingTaskUUID",
                    _ => "missingParameter",
                };
                assert_eq!(
                    (status, e["code"].as_str()),
                    (400, Some(code)),
                    "{component}: without {path}: {body}"
                );
                // The error names the key, the image inside it, or the object it was missing from.
                let named =
                    |p: &str| p.starts_with(&path) || (!p.is_empty() && path.starts_with(&format!("{p}.")));
                assert!(e["parameter"].as_str().is_some_and(named), "{component}: without {path}: {body}");
                checked.1 += 1;
            }
        }
    }
    assert!(checked.0 >= 30 && checked.1 >= 40, "{checked:?}");
}

/// The keys a source file reads: the string literal after each reader method and table entry.
fn keys_read(source: &str) -> BTreeSet<String> {
    const CALLS: &[&str] = &[
        ".string(\"",
        ".opt_string(\"",
        ".int(\"",
        ".opt_int(\"",
        ".opt_int_checked_later(\"",
        ".opt_f64(\"",
        ".opt_bool(\"",
        ".opt_enum(\"",
        ".enum_value(\"",
        ".raw(\"",
        ".raw_as(\"",
        ".raw_required(\"",
        ".describe(\"",
        "Field::opt(\"",
        "Field::req(\"",
        "Extra::hint(\"",
        "Extra::feature(\"",
    ];
    // Not the file's unit tests, which read keys of their own.
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut keys = BTreeSet::new();
    for call in CALLS {
        for (i, _) in code.match_indices(call) {
            let rest = &code[i + call.len()..];
            keys.insert(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    keys
}

/// Every property name in a schema, at any depth.
fn property_names(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get("properties") {
                out.extend(props.keys().cloned());
            }
            for (k, v) in o {
                if k != "examples" {
                    property_names(v, out);
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| property_names(v, out)),
        _ => {}
    }
}

/// The schemas are recorded from what the parsers read for the examples, so a key read only on a
/// path that no example takes would be missing: this reads the parsers' sources for every key
/// they name and fails on one that its task type's schema lacks (add an example that reaches it
/// to the module's `TaskParams::EXAMPLES`, or to the dialect's `OWN_EXAMPLES`).
#[tokio::test]
async fn every_key_a_parser_reads_is_in_its_task_types_schema() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let schemas = task_schemas(&doc);
    let mut all = BTreeSet::new();
    let mut by_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (component, schema) in &schemas {
        let mut names = BTreeSet::new();
        property_names(schema, &mut names);
        all.extend(names.iter().cloned());
        by_type.insert(component.trim_start_matches("RunwareTask_").to_string(), names);
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("crates/server/src/runware/parse.rs")];
    let mut dirs = vec![root.join("crates/core/src/task")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let name_in = |source: &str| {
        let marker = "const NAME: &'static str = \"";
        source.find(marker).map(|i| {
            let rest = &source[i + marker.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
    };
    let mut seen = 0;
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        // A module's file, or a file beside its mod.rs (image_inference/extras.rs), is its task
        // type's; shared files (task/mod.rs, extras.rs, video_form.rs, parse.rs) are everyone's.
        let owner = name_in(&source).or_else(|| {
            let dir = file.parent().unwrap();
            (dir.file_name().unwrap() != "task")
                .then(|| std::fs::read_to_string(dir.join("mod.rs")).ok().and_then(|s| name_in(&s)))
                .flatten()
        });
        let known = match &owner {
            Some(t) => by_type.get(t).unwrap_or_else(|| panic!("{t} ({}) has no schema", file.display())),
            None => &all,
        };
        for key in keys_read(&source) {
            assert!(
                known.contains(&key),
                "{} reads '{key}', which the schema of {} lacks: add an example that reaches it",
                file.display(),
                owner.as_deref().unwrap_or("any task type")
            );
            seen += 1;
        }
    }
    assert!(seen > 150, "{seen} keys found: is the scan still reading the parsers?");
}
