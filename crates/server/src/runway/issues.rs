//! Runway's error bodies: `{"error", "docUrl", "issues": [{"code", "path", "message", ...}]}`
//! with Zod's issue codes, and how catalog errors become them.

use mediagate_core::param::Segment;
use mediagate_core::{ApiError, ErrorCode, ParamPath, Parameter};
use serde_json::{Map, Value, json};

/// One problem found in a request, in Zod's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// `invalid_type`, `too_small`, `too_big`, `invalid_enum_value`, `unrecognized_keys` or
    /// `custom`.
    pub code: &'static str,
    /// Where in the body.
    pub path: ParamPath,
    /// What is wrong, for people.
    pub message: String,
    /// Zod's extra fields for the code (`expected`, `received`, `minimum`, `options`, `keys`...).
    pub extra: Map<String, Value>,
}

impl Issue {
    fn new(code: &'static str, path: ParamPath, message: impl Into<String>) -> Self {
        Issue { code, path, message: message.into(), extra: Map::new() }
    }

    fn with(mut self, k: &str, v: Value) -> Self {
        self.extra.insert(k.into(), v);
        self
    }

    /// A required field is absent.
    pub fn required(path: ParamPath, expected: &str) -> Self {
        Issue::new("invalid_type", path, "Required")
            .with("expected", json!(expected))
            .with("received", json!("undefined"))
    }

    /// A field has the wrong JSON type.
    pub fn wrong_type(path: ParamPath, expected: &str, got: &Value) -> Self {
        let received = json_type(got);
        Issue::new("invalid_type", path, format!("Expected {expected}, received {received}"))
            .with("expected", json!(expected))
            .with("received", json!(received))
    }

    /// A string or number below its minimum.
    pub fn too_small(path: ParamPath, kind: &str, minimum: f64, message: String) -> Self {
        Issue::new("too_small", path, message)
            .with("minimum", json!(minimum))
            .with("type", json!(kind))
            .with("inclusive", json!(true))
            .with("exact", json!(false))
    }

    /// A string or number above its maximum.
    pub fn too_big(path: ParamPath, kind: &str, maximum: f64, message: String) -> Self {
        Issue::new("too_big", path, message)
            .with("maximum", json!(maximum))
            .with("type", json!(kind))
            .with("inclusive", json!(true))
            .with("exact", json!(false))
    }

    /// A value outside an enumeration.
    pub fn not_in_enum(path: ParamPath, options: &[Value], got: &Value) -> Self {
        let shown: Vec<String> = options.iter().map(quote).collect();
        Issue::new(
            "invalid_enum_value",
            path,
            format!("Invalid enum value. Expected {}, received {}", shown.join(" | "), quote(got)),
        )
        .with("options", Value::Array(options.to_vec()))
        .with("received", got.clone())
    }

    /// Keys the object does not accept.
    pub fn unrecognized(path: ParamPath, keys: Vec<String>) -> Self {
        let shown: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
        Issue::new("unrecognized_keys", path, format!("Unrecognized key(s) in object: {}", shown.join(", ")))
            .with("keys", json!(keys))
    }

    /// Anything else, in words.
    pub fn custom(path: ParamPath, message: impl Into<String>) -> Self {
        Issue::new("custom", path, message)
    }

    /// The issue as JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), json!(self.code));
        m.extend(self.extra.clone());
        m.insert("path".into(), path_json(&self.path));
        m.insert("message".into(), json!(self.message));
        Value::Object(m)
    }
}

fn quote(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// Zod's name for a JSON value's type.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A path as Runway renders it: `["promptImage", 0, "uri"]`.
pub fn path_json(p: &ParamPath) -> Value {
    Value::Array(
        p.segments()
            .iter()
            .map(|s| match s {
                Segment::Key(k) => json!(k),
                Segment::Index(i) => json!(i),
            })
            .collect(),
    )
}

/// The issues a catalog error stands for: one `custom` issue per parameter it names (asset
/// failures carry the source document's messages), or `None` when it names no parameter.
pub fn from_api_error(e: &ApiError) -> Option<Vec<Issue>> {
    let paths: Vec<ParamPath> = match &e.parameter {
        None => return None,
        Some(Parameter::One(p)) => vec![p.clone()],
        Some(Parameter::Several(v)) => v.clone(),
    };
    let code = match e.code {
        ErrorCode::UnknownParameter => "unrecognized_keys",
        _ => "custom",
    };
    Some(paths.into_iter().map(|p| Issue::new(code, p, e.message.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let i = Issue::required(ParamPath::key("promptText"), "string").to_json();
        assert_eq!(
            i,
            json!({"code":"invalid_type","expected":"string","received":"undefined","path":["promptText"],"message":"Required"})
        );
        let e = Issue::not_in_enum(
            ParamPath::key("ratio"),
            &[json!("1280:720"), json!("720:1280")],
            &json!("1:1"),
        );
        assert_eq!(e.message, "Invalid enum value. Expected '1280:720' | '720:1280', received '1:1'");
        let p = ParamPath::key("promptImage").index(0).child("uri");
        assert_eq!(path_json(&p), json!(["promptImage", 0, "uri"]));
        let asset = ApiError::new(
            ErrorCode::AssetContentType,
            "Assets must use an approved Content-Type response header.",
        )
        .with_parameter(p);
        let issues = from_api_error(&asset).unwrap();
        assert_eq!(issues[0].to_json()["code"], "custom");
        assert_eq!(issues[0].to_json()["path"], json!(["promptImage", 0, "uri"]));
    }
}
