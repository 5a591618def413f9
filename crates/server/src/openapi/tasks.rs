//! The schemas of the Runware task array: one per task type, recorded from the parser that reads
//! it, so the document cannot drift from what the server accepts.
//!
//! For each registered task type (`mediagate_core::task::TaskType::ALL`) and each task type the
//! dialect answers itself ([`OWN_EXAMPLES`]), every example object is run through the dialect's
//! own [`parse`] (the common fields `taskUUID`, `deliveryMethod`, `webhookURL` included) with
//! recording on ([`mediagate_core::param::schema`]), and the merged recording becomes the
//! component `RunwareTask_<taskType>`. `RunwareTask`, the request array's item, is the `oneOf`
//! of them with a discriminator on `taskType` that maps every alias too.
//!
//! What a static schema cannot say is in the descriptions: bounds that depend on the model a
//! task names (sizes, steps, durations, result counts), keys that exclude each other (an image
//! as `inputImage` or `inputs.image`), keys that need another. The numeric bounds are the ones
//! the parser itself enforces. A key that the parser reads only on a path no example takes is
//! missing from the schema; `tests/openapi.rs` scans the parsers' sources for the keys they read
//! and fails when one is missing.

use crate::runware::parse::{self, OWN_EXAMPLES};
use mediagate_core::param::schema::{Recording, record};
use mediagate_core::task::TaskType;
use serde_json::{Map, Value, json};

/// The taskUUID of the examples in the document.
pub const EXAMPLE_UUID: &str = "50836053-a0ee-4cf5-b9d6-ae7c5f5a0f5b";

/// The component that holds the schema of the task type named `name` (canonical name).
pub fn component(name: &str) -> String {
    format!("RunwareTask_{name}")
}

/// One task type's schema, with every name it is sent under (the canonical one first).
#[derive(Debug, Clone)]
pub struct TaskSchema {
    /// The canonical name, then the aliases.
    pub names: Vec<&'static str>,
    /// The JSON Schema of a task object of this type.
    pub schema: Value,
}

/// The task object of type `name` made of an example's parameters, with the example taskUUID.
pub fn task_object(name: &str, params: &str) -> Value {
    let mut v: Value = serde_json::from_str(params).expect("an example is a JSON object");
    let o = v.as_object_mut().expect("an example is a JSON object");
    o.insert("taskType".into(), name.into());
    o.insert("taskUUID".into(), EXAMPLE_UUID.into());
    v
}

/// Every task type's schema: the registered ones, then the dialect's own, then `authentication`.
pub fn task_schemas() -> Vec<TaskSchema> {
    let registered = TaskType::ALL.iter().map(|&t| {
        let names: Vec<&'static str> =
            std::iter::once(t.as_str()).chain(t.aliases().iter().copied()).collect();
        let mut about = vec![t.summary().to_string()];
        if !t.aliases().is_empty() {
            about.push(format!("Also sent as {}.", t.aliases().join(", ")));
        }
        if t.async_only() {
            about.push("Async only: deliveryMethod is async (the default); poll getResponse.".into());
        }
        about.push(match t.default_model() {
            Some(air) => format!("The model defaults to {air}."),
            None => "No built-in model: name one the server is configured with.".into(),
        });
        about.push(
            "Sizes, steps, durations, result counts and scale factors are checked against the model the task \
             names (see /docs and modelSearch)."
                .into(),
        );
        recorded(names, t.examples(), about.join(" "))
    });
    let own = OWN_EXAMPLES.iter().map(|(name, examples)| {
        let about = match *name {
            "ping" => "Keepalive: answered with pong.",
            "getResponse" => "Polls an async task of this account by its taskUUID.",
            "getTaskDetails" => "An earlier task's request and response, by its taskUUID.",
            "imageUpload" => "Stores an image for later tasks; answered with its imageUUID.",
            "mediaStorage" => "Stores a file (operation upload) or deletes an upload (operation delete).",
            "modelSearch" => "Searches the models this server serves.",
            "accountManagement" => "The caller's account: balance, keys and usage (operation getDetails).",
            _ => "",
        };
        recorded(vec![*name], examples.iter().copied(), about.to_string())
    });
    registered.chain(own).chain(std::iter::once(authentication())).collect()
}

/// Runs each example through the dialect's parser with recording on; the merged recording,
/// with `taskType` and the examples, is the schema. An example the parser refuses is a bug
/// (the OpenAPI test parses each), and is logged rather than taking the document down.
fn recorded(
    names: Vec<&'static str>,
    examples: impl Iterator<Item = &'static str>,
    about: String,
) -> TaskSchema {
    let mut objects = Vec::new();
    let mut all: Option<Recording> = None;
    for params in examples {
        let task = task_object(names[0], params);
        let (result, rec) = record(|| parse::parse(&task, 0));
        if let Err(e) = result {
            tracing::error!(task_type = names[0], error = %e.message, "an example task is refused by its own parser");
        }
        all = Some(match all {
            Some(a) => a.merge(rec),
            None => rec,
        });
        objects.push(task);
    }
    let mut schema = all.unwrap_or_default().to_schema();
    finish(&mut schema, &names, about, objects);
    TaskSchema { names, schema }
}

/// Names the schema and puts `taskType` (its names) first among the required keys.
fn finish(schema: &mut Value, names: &[&'static str], about: String, examples: Vec<Value>) {
    let o = schema.as_object_mut().expect("a task's schema is an object");
    let mut head = Map::new();
    head.insert("title".into(), names[0].into());
    head.insert("description".into(), about.into());
    let properties = o.entry("properties").or_insert_with(|| json!({}));
    properties["taskType"] = json!({"type": "string", "enum": names});
    let mut required = vec![Value::from("taskType")];
    required.extend(o.get("required").and_then(Value::as_array).into_iter().flatten().cloned());
    o.insert("required".into(), required.into());
    o.insert("examples".into(), examples.into());
    head.append(o);
    *o = head;
}

/// `authentication`: the first element of an array, or the first WebSocket message. Read by the
/// request handler (only `apiKey`, other keys are left alone), not by [`parse`], so written here.
fn authentication() -> TaskSchema {
    TaskSchema {
        names: vec!["authentication"],
        schema: json!({
            "title": "authentication",
            "description": "The API key, as the first element of the array (or the first WebSocket message), \
                            instead of the Authorization header. Anywhere else it is refused.",
            "type": "object",
            "properties": {
                "taskType": {"type": "string", "enum": ["authentication"]},
                "apiKey": {"type": "string", "description": "An API key (key_…)."},
                "connectionSessionUUID": {
                    "type": "string",
                    "description": "WebSocket only: the connectionSessionUUID of an earlier session, to resume it."
                }
            },
            "required": ["taskType", "apiKey"],
            "examples": [{"taskType": "authentication", "apiKey": "key_…"}]
        }),
    }
}

/// Puts every task type's schema into the document's components and makes `RunwareTask` (what
/// `POST /v1`'s array holds) their `oneOf`, discriminated by `taskType`.
pub fn install(doc: &mut Value) {
    let mut one_of = Vec::new();
    let mut mapping = Map::new();
    let schemas = doc["components"]["schemas"].as_object_mut().expect("the document has component schemas");
    for t in task_schemas() {
        let name = component(t.names[0]);
        let reference = format!("#/components/schemas/{name}");
        for n in &t.names {
            mapping.insert(n.to_string(), reference.clone().into());
        }
        one_of.push(json!({"$ref": reference}));
        schemas.insert(name, t.schema);
    }
    schemas.insert(
        "RunwareTask".into(),
        json!({
            "description": "One task of a Runware request array: one schema per taskType (RunwareTask_<taskType>), \
                            each recorded from the parser that reads it.",
            "oneOf": one_of,
            "discriminator": {"propertyName": "taskType", "mapping": mapping}
        }),
    );
}
