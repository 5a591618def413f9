//! Optional parameters described by a table: each one's shape, the images inside it, and whether
//! the provider must act on it.
//!
//! A task type lists the optional parameters it takes beyond the ones its module reads itself
//! (LoRA, ControlNet, IP-Adapters, provider settings, …) as [`Extra`]s. One reader checks a
//! value against its [`Kind`] with Runware's parameter paths in every error, the images inside
//! are handed to the asset intake like any other input (so a provider never sees a caller's URL
//! or this server's upload UUIDs), and the value is kept and sent on as it came.
//!
//! An extra is either a [`Role::Hint`], which every provider may take (a sampler setting a
//! stand-in has no use for), or a [`Role::Feature`], which changes what is made: a model whose
//! providers cannot act on it refuses the task at admission (see [`ParamSupport`]) rather than
//! return a picture that ignored it.

use super::{Input, MediaKind};
use crate::error::{ApiError, ErrorCode};
use crate::param::schema::nullable;
use crate::param::{ParamPath, ParamReader, Shape, type_name};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The shape of a value.
#[derive(Debug)]
pub enum Kind {
    /// A string of 1 to `max` characters.
    Str {
        /// Longest, in characters.
        max: usize,
    },
    /// A model id: a string, or an integer (Runware's older numeric ids).
    ModelId,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// A whole number in `min..=max`.
    Int {
        /// Smallest.
        min: i64,
        /// Largest.
        max: i64,
    },
    /// A number in `min..=max`.
    Num {
        /// Smallest.
        min: f64,
        /// Largest.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// An image: a data URI, base64, an HTTPS URL or an upload's UUID, fetched by the intake.
    Image,
    /// Up to `max` images; with `fields`, an item may also be an object holding the image under
    /// `image` beside those fields.
    Images {
        /// Most images.
        max: usize,
        /// The other fields of an item given as an object (empty: strings only).
        fields: &'static [Field],
    },
    /// An object with these fields (others are refused).
    Object(&'static [Field]),
    /// 1 to `max` objects with these fields.
    List {
        /// Most items.
        max: usize,
        /// The fields of each item.
        fields: &'static [Field],
    },
    /// A provider's own settings: any JSON object, sent on as it came and checked by the provider
    /// that serves it. Images inside are not fetched here.
    Opaque,
    /// A list of provider-specific objects, like [`Kind::Opaque`].
    OpaqueList,
    /// Any JSON value, sent on as it came (provider-specific references such as media ids).
    Any,
}

impl Kind {
    /// The JSON Schema of a value [`check`] accepts (what the OpenAPI document shows).
    pub fn schema(&self) -> Value {
        let image = || {
            json!({
                "type": "string",
                "minLength": 1,
                "description": "An image: a data URI, base64 data, an HTTPS URL or the UUID of an upload or output."
            })
        };
        match self {
            Kind::Str { max } => json!({"type": "string", "minLength": 1, "maxLength": max}),
            Kind::ModelId => json!({
                "anyOf": [
                    {"type": "string", "minLength": 1, "maxLength": 256},
                    {"type": "integer", "minimum": 0}
                ],
                "description": "A model's AIR id."
            }),
            Kind::Enum(allowed) => json!({"type": "string", "enum": allowed}),
            Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Num { min, max } => json!({"type": "number", "minimum": min, "maximum": max}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Image => image(),
            Kind::Images { max, fields } => {
                let items = if fields.is_empty() {
                    image()
                } else {
                    // An item given as an object holds the image beside the fields.
                    let mut object = object_schema(fields);
                    object["properties"]["image"] = image();
                    let mut required = vec![Value::from("image")];
                    required.extend(object["required"].as_array().into_iter().flatten().cloned());
                    object["required"] = required.into();
                    json!({"anyOf": [image(), object]})
                };
                json!({"type": "array", "maxItems": max, "items": items})
            }
            Kind::Object(fields) => object_schema(fields),
            Kind::List { max, fields } => {
                json!({"type": "array", "minItems": 1, "maxItems": max, "items": object_schema(fields)})
            }
            Kind::Opaque => {
                json!({"type": "object", "description": "Settings sent on to the provider as they came."})
            }
            Kind::OpaqueList => json!({
                "type": "array",
                "items": {"type": "object"},
                "description": "Sent on to the provider as they came."
            }),
            Kind::Any => json!({}),
        }
    }
}

/// An object of these fields and no others; null counts as absent, as [`check`] reads it.
fn object_schema(fields: &[Field]) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_string(), if f.required { f.kind.schema() } else { nullable(f.kind.schema()) }))
        .collect();
    let required: Vec<&str> = fields.iter().filter(|f| f.required).map(|f| f.name).collect();
    let mut schema = json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        schema["required"] = required.into();
    }
    schema
}

/// A field of an object.
#[derive(Debug)]
pub struct Field {
    /// Its name on the wire.
    pub name: &'static str,
    /// Its shape.
    pub kind: Kind,
    /// Whether it must be present.
    pub required: bool,
}

impl Field {
    /// An optional field.
    pub const fn opt(name: &'static str, kind: Kind) -> Self {
        Field { name, kind, required: false }
    }

    /// A required field.
    pub const fn req(name: &'static str, kind: Kind) -> Self {
        Field { name, kind, required: true }
    }
}

/// Whether a provider must act on a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A setting every provider may take and one that has no use for it may leave aside
    /// (sampler choices, content checks).
    Hint,
    /// It changes what is made: only models whose providers act on it take it.
    Feature,
}

/// Runware's `safety` object (content checks), a hint every task type that takes it shares.
pub const SAFETY: Extra = Extra::hint(
    "safety",
    Kind::Object(&[
        Field::opt("checkContent", Kind::Bool),
        Field::opt("checkInputs", Kind::Bool),
        Field::opt("tolerance", Kind::Bool),
        Field::opt("mode", Kind::Str { max: 32 }),
    ]),
);

/// LoRA, LyCORIS and embedding entries: a model and its weight.
pub const ADAPTER: &[Field] =
    &[Field::req("model", Kind::ModelId), Field::opt("weight", Kind::Num { min: -4.0, max: 4.0 })];

/// One optional top-level parameter.
#[derive(Debug)]
pub struct Extra {
    /// Its name on the wire.
    pub name: &'static str,
    /// Its shape.
    pub kind: Kind,
    /// Whether the provider must act on it.
    pub role: Role,
}

impl Extra {
    /// A hint (see [`Role::Hint`]).
    pub const fn hint(name: &'static str, kind: Kind) -> Self {
        Extra { name, kind, role: Role::Hint }
    }

    /// A feature (see [`Role::Feature`]).
    pub const fn feature(name: &'static str, kind: Kind) -> Self {
        Extra { name, kind, role: Role::Feature }
    }
}

/// The optional parameters a model's providers act on: every one (providers that send the task
/// on whole, like `runware-upstream`), or the ones named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamSupport {
    /// Every parameter.
    All,
    /// Only these (by wire name).
    Only(Vec<&'static str>),
}

impl ParamSupport {
    /// None beyond each task type's basic parameters.
    pub const fn none() -> Self {
        ParamSupport::Only(Vec::new())
    }

    /// Whether `name` is acted on.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            ParamSupport::All => true,
            ParamSupport::Only(names) => names.contains(&name),
        }
    }

    /// What both act on (a model with fallback providers takes only what every one of them does).
    pub fn intersect(&self, other: &ParamSupport) -> ParamSupport {
        match (self, other) {
            (ParamSupport::All, o) | (o, ParamSupport::All) => o.clone(),
            (ParamSupport::Only(a), ParamSupport::Only(b)) => {
                ParamSupport::Only(a.iter().copied().filter(|n| b.contains(n)).collect())
            }
        }
    }

    /// The names acted on, for messages (`None`: every one).
    pub fn names(&self) -> Option<&[&'static str]> {
        match self {
            ParamSupport::All => None,
            ParamSupport::Only(n) => Some(n),
        }
    }
}

/// Reads every extra of `table` present in the task object, checked against its kind.
pub fn read(r: &mut ParamReader<'_>, table: &[Extra]) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut out = BTreeMap::new();
    for extra in table {
        let path = r.path(extra.name);
        if let Some(v) = r.raw_as(extra.name, Shape::Kind(&extra.kind)) {
            check(&extra.kind, v, &path)?;
            out.insert(extra.name.to_string(), v.clone());
        }
    }
    Ok(out)
}

/// Writes the extras back into a task object, as they came.
pub fn write(wire: &mut Map<String, Value>, extras: &BTreeMap<String, Value>) {
    for (k, v) in extras {
        wire.insert(k.clone(), v.clone());
    }
}

/// The features present, with where they were sent.
pub fn features(table: &[Extra], extras: &BTreeMap<String, Value>) -> Vec<(&'static str, ParamPath)> {
    table
        .iter()
        .filter(|e| e.role == Role::Feature && extras.contains_key(e.name))
        .map(|e| (e.name, ParamPath::key(e.name)))
        .collect()
}

/// The images inside the extras, in table order (the order [`images_mut`] gives them).
pub fn images<'a>(table: &[Extra], extras: &'a BTreeMap<String, Value>) -> Vec<Input<'a>> {
    let mut out = Vec::new();
    for extra in table {
        if let Some(v) = extras.get(extra.name) {
            walk(&extra.kind, v, &ParamPath::key(extra.name), &mut out);
        }
    }
    out
}

/// The same images, to replace or elide, in the same order.
pub fn images_mut<'a>(table: &[Extra], extras: &'a mut BTreeMap<String, Value>) -> Vec<&'a mut String> {
    let mut by_name: BTreeMap<&str, &'a mut Value> =
        extras.iter_mut().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Vec::new();
    for extra in table {
        if let Some(v) = by_name.remove(extra.name) {
            walk_mut(&extra.kind, v, &mut out);
        }
    }
    out
}

fn walk<'a>(kind: &Kind, v: &'a Value, path: &ParamPath, out: &mut Vec<Input<'a>>) {
    match (kind, v) {
        (Kind::Image, Value::String(s)) => {
            out.push(Input { reference: s, param: path.clone(), kind: MediaKind::Image })
        }
        (Kind::Images { .. }, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(o) => {
                        if let Some(image) = o.get("image") {
                            walk(&Kind::Image, image, &path.index(i).child("image"), out);
                        }
                    }
                    item => walk(&Kind::Image, item, &path.index(i), out),
                }
            }
        }
        (Kind::Object(fields), Value::Object(o)) => walk_fields(fields, o, path, out),
        (Kind::List { fields, .. }, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::Object(o) = item {
                    walk_fields(fields, o, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

fn walk_fields<'a>(fields: &[Field], o: &'a Map<String, Value>, path: &ParamPath, out: &mut Vec<Input<'a>>) {
    for f in fields {
        if let Some(v) = o.get(f.name) {
            walk(&f.kind, v, &path.child(f.name), out);
        }
    }
}

fn walk_mut<'a>(kind: &Kind, v: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match (kind, v) {
        (Kind::Image, Value::String(s)) => out.push(s),
        (Kind::Images { .. }, Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Object(o) => {
                        if let Some(image) = o.get_mut("image") {
                            walk_mut(&Kind::Image, image, out);
                        }
                    }
                    item => walk_mut(&Kind::Image, item, out),
                }
            }
        }
        (Kind::Object(fields), Value::Object(o)) => walk_fields_mut(fields, o, out),
        (Kind::List { fields, .. }, Value::Array(items)) => {
            for item in items {
                if let Value::Object(o) = item {
                    walk_fields_mut(fields, o, out);
                }
            }
        }
        _ => {}
    }
}

fn walk_fields_mut<'a>(fields: &[Field], o: &'a mut Map<String, Value>, out: &mut Vec<&'a mut String>) {
    // In field order, as `walk_fields` does, whatever the object's own key order.
    let mut by_name: BTreeMap<&str, &'a mut Value> = o.iter_mut().map(|(k, v)| (k.as_str(), v)).collect();
    for f in fields {
        if let Some(v) = by_name.remove(f.name) {
            walk_mut(&f.kind, v, out);
        }
    }
}

fn wrong_type(path: &ParamPath, expected: &str, got: &Value) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameterType,
        format!("Invalid type for parameter '{path}': expected {expected}, got {}.", type_name(got)),
    )
    .with_parameter(path.clone())
}

fn invalid(path: &ParamPath, detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameterValue, format!("Invalid value for parameter '{path}': {detail}"))
        .with_parameter(path.clone())
}

/// Checks `v` against `kind`; errors name the path of the offending value.
pub fn check(kind: &Kind, v: &Value, path: &ParamPath) -> Result<(), ApiError> {
    match kind {
        Kind::Str { max } => match v {
            Value::String(s) if s.is_empty() || s.chars().count() > *max => Err(invalid(
                path,
                format!("length is {}; it must be between 1 and {max} characters.", s.chars().count()),
            )),
            Value::String(_) => Ok(()),
            v => Err(wrong_type(path, "a string", v)),
        },
        Kind::ModelId => match v {
            Value::String(s) if !s.is_empty() && s.len() <= 256 => Ok(()),
            Value::String(_) => Err(invalid(path, "give a model's AIR id (1 to 256 characters).")),
            Value::Number(n) if n.is_u64() => Ok(()),
            v => Err(wrong_type(path, "a model's AIR id (a string)", v)),
        },
        Kind::Enum(allowed) => match v {
            Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
            Value::String(s) => {
                Err(invalid(path, format!("'{s}' is not allowed; use one of {}.", allowed.join(", "))))
            }
            v => Err(wrong_type(path, "a string", v)),
        },
        Kind::Int { min, max } => {
            let Value::Number(n) = v else { return Err(wrong_type(path, "an integer", v)) };
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterType,
                    format!("Invalid type for parameter '{path}': expected an integer, got {n}, which has a fractional part."),
                )
                .with_parameter(path.clone()));
            }
            if f < *min as f64 || f > *max as f64 {
                return Err(invalid(
                    path,
                    format!("{n} is out of range; it must be between {min} and {max}."),
                ));
            }
            Ok(())
        }
        Kind::Num { min, max } => {
            let Value::Number(n) = v else { return Err(wrong_type(path, "a number", v)) };
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !(*min..=*max).contains(&f) {
                return Err(invalid(
                    path,
                    format!("{f} is out of range; it must be between {min} and {max}."),
                ));
            }
            Ok(())
        }
        Kind::Bool => match v {
            Value::Bool(_) => Ok(()),
            v => Err(wrong_type(path, "a boolean", v)),
        },
        Kind::Image => match v {
            Value::String(s) if !s.is_empty() => Ok(()),
            Value::String(_) => Err(invalid(
                path,
                "it is empty: give an image as a data URI, base64 data, an HTTPS URL or an upload's imageUUID.",
            )),
            v => Err(wrong_type(path, "an image (a string)", v)),
        },
        Kind::Images { max, fields } => {
            let Value::Array(items) = v else { return Err(wrong_type(path, "an array of images", v)) };
            if items.len() > *max {
                return Err(invalid(
                    path,
                    format!("it holds {} images; it may hold at most {max}.", items.len()),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(o) if !fields.is_empty() => {
                        let at = path.index(i);
                        match o.get("image") {
                            Some(image) => check(&Kind::Image, image, &at.child("image"))?,
                            None => {
                                return Err(missing(&at.child("image"), "the image of this reference"));
                            }
                        }
                        check_fields(fields, o, &at, &["image"])?;
                    }
                    item => check(&Kind::Image, item, &path.index(i))?,
                }
            }
            Ok(())
        }
        Kind::Object(fields) => {
            let Value::Object(o) = v else { return Err(wrong_type(path, "an object", v)) };
            check_fields(fields, o, path, &[])
        }
        Kind::List { max, fields } => {
            let Value::Array(items) = v else { return Err(wrong_type(path, "an array of objects", v)) };
            if items.is_empty() || items.len() > *max {
                return Err(invalid(
                    path,
                    format!("it holds {} items; it must hold 1 to {max}.", items.len()),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let Value::Object(o) = item else {
                    return Err(wrong_type(&path.index(i), "an object", item));
                };
                check_fields(fields, o, &path.index(i), &[])?;
            }
            Ok(())
        }
        Kind::Opaque => match v {
            Value::Object(_) => Ok(()),
            v => Err(wrong_type(path, "an object", v)),
        },
        Kind::OpaqueList => match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_object() {
                        return Err(wrong_type(&path.index(i), "an object", item));
                    }
                }
                Ok(())
            }
            v => Err(wrong_type(path, "an array of objects", v)),
        },
        Kind::Any => Ok(()),
    }
}

fn missing(path: &ParamPath, what: &str) -> ApiError {
    ApiError::new(ErrorCode::MissingParameter, format!("Missing required parameter '{path}': {what}."))
        .with_parameter(path.clone())
}

/// Checks an object's fields: each known one against its kind (null counts as absent, as at the
/// top level), the required ones present, and no others but `also`.
fn check_fields(
    fields: &[Field],
    o: &Map<String, Value>,
    path: &ParamPath,
    also: &[&str],
) -> Result<(), ApiError> {
    for f in fields {
        match o.get(f.name) {
            None | Some(Value::Null) if f.required => {
                return Err(missing(&path.child(f.name), &format!("'{}' is required here", f.name)));
            }
            None | Some(Value::Null) => {}
            Some(v) => check(&f.kind, v, &path.child(f.name))?,
        }
    }
    let unknown: Vec<&String> = o
        .keys()
        .filter(|k| !also.contains(&k.as_str()) && !fields.iter().any(|f| f.name == k.as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let paths: Vec<ParamPath> = unknown.iter().map(|k| path.child(k.as_str())).collect();
    let names: Vec<String> = paths.iter().map(|p| format!("'{p}'")).collect();
    let known: Vec<&str> = also.iter().copied().chain(fields.iter().map(|f| f.name)).collect();
    Err(ApiError::new(
        ErrorCode::UnknownParameter,
        format!(
            "Unknown parameter{} {}: '{path}' takes {}.",
            if names.len() > 1 { "s" } else { "" },
            names.join(", "),
            known.join(", ")
        ),
    )
    .with_parameter(paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TABLE: &[Extra] = &[
        Extra::feature(
            "controlNet",
            Kind::List {
                max: 4,
                fields: &[
                    Field::opt("model", Kind::ModelId),
                    Field::req("guideImage", Kind::Image),
                    Field::opt("weight", Kind::Num { min: 0.0, max: 1.0 }),
                ],
            },
        ),
        Extra::hint("clipSkip", Kind::Int { min: 0, max: 2 }),
        Extra::feature(
            "inputs",
            Kind::Object(&[Field::opt(
                "referenceImages",
                Kind::Images { max: 2, fields: &[Field::opt("role", Kind::Str { max: 16 })] },
            )]),
        ),
    ];

    fn read_obj(v: Value) -> Result<BTreeMap<String, Value>, ApiError> {
        let o = v.as_object().unwrap().clone();
        let mut r = ParamReader::new(&o, ParamPath::default());
        let out = read(&mut r, TABLE)?;
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn values_are_checked_with_their_paths() {
        let e = read_obj(json!({"controlNet": [{"guideImage": "x", "weight": 2}]})).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(
            e.message.contains("'controlNet[0].weight'") && e.message.contains("between 0 and 1"),
            "{}",
            e.message
        );
        let e = read_obj(json!({"controlNet": [{"weight": 0.5}]})).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingParameter);
        assert!(e.message.contains("'controlNet[0].guideImage'"), "{}", e.message);
        let e = read_obj(json!({"controlNet": [{"guideImage": "x", "wieght": 1}]})).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownParameter);
        assert!(
            e.message.contains("'controlNet[0].wieght'") && e.message.contains("guideImage"),
            "{}",
            e.message
        );
        let e = read_obj(json!({"clipSkip": 1.5})).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterType);
        let e = read_obj(json!({"inputs": {"referenceImages": [{"role": "style"}]}})).unwrap_err();
        assert!(e.message.contains("'inputs.referenceImages[0].image'"), "{}", e.message);
        // Nulls are absent, as the official SDKs send unset fields.
        read_obj(json!({"controlNet": [{"guideImage": "x", "weight": null, "model": null}]})).unwrap();
    }

    #[test]
    fn images_are_listed_and_replaced_in_the_same_order() {
        let mut extras = read_obj(json!({
            "inputs": {"referenceImages": ["c", {"image": "d", "role": "style"}]},
            "controlNet": [{"guideImage": "a"}, {"guideImage": "b", "model": "m"}],
            "clipSkip": 2,
        }))
        .unwrap();
        let listed: Vec<(String, String)> =
            images(TABLE, &extras).iter().map(|i| (i.reference.to_string(), i.param.to_string())).collect();
        assert_eq!(
            listed,
            [
                ("a".into(), "controlNet[0].guideImage".into()),
                ("b".into(), "controlNet[1].guideImage".into()),
                ("c".into(), "inputs.referenceImages[0]".into()),
                ("d".into(), "inputs.referenceImages[1].image".into()),
            ]
        );
        for (i, s) in images_mut(TABLE, &mut extras).into_iter().enumerate() {
            *s = format!("{i}");
        }
        let again: Vec<String> = images(TABLE, &extras).iter().map(|i| i.reference.to_string()).collect();
        assert_eq!(again, ["0", "1", "2", "3"]);
        assert_eq!(
            features(TABLE, &extras).iter().map(|f| f.0).collect::<Vec<_>>(),
            ["controlNet", "inputs"]
        );
    }

    #[test]
    fn support_intersects() {
        let only = ParamSupport::Only(vec!["seedImage", "lora"]);
        assert_eq!(ParamSupport::All.intersect(&only), only);
        assert_eq!(only.intersect(&ParamSupport::Only(vec!["lora"])), ParamSupport::Only(vec!["lora"]));
        assert!(!ParamSupport::none().allows("lora"));
        assert!(ParamSupport::All.allows("anything"));
    }
}
