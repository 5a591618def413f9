//! Parameter paths and a reader that takes typed values out of a JSON task object.
//!
//! Paths stay structured (`["contentModeration", "publicFigureThreshold"]`) and are rendered per
//! dialect: a dotted string in Runware's `parameter`, an array in Runway's `issues[].path`.
//! [`ParamReader`] records which keys it consumed so that anything left over is reported as an
//! unknown parameter by name. While a schema is generated ([`schema::record`]) it also notes
//! what it is asked for, so the OpenAPI document describes exactly what the parsers read.

pub mod schema;

use crate::error::{ApiError, ErrorCode};
use crate::task::extras::Kind;
use schema::Note;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// One step of a parameter path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A structured path to a parameter inside a task object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamPath(pub Vec<Segment>);

impl ParamPath {
    /// A path of one key.
    pub fn key(k: impl Into<String>) -> Self {
        ParamPath(vec![Segment::Key(k.into())])
    }

    /// This path extended by a key.
    pub fn child(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.into()));
        ParamPath(v)
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        ParamPath(v)
    }

    /// The segments, for dialects that render paths as arrays.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

/// Dotted rendering with `[i]` for indexes, e.g. `inputs.referenceImages[0]`.
impl fmt::Display for ParamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl From<&str> for ParamPath {
    fn from(s: &str) -> Self {
        ParamPath::key(s)
    }
}

/// The `parameter` of an error: one path, or several when fields conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parameter {
    /// One parameter.
    One(ParamPath),
    /// Several parameters, e.g. `width` and `height` whose product is too large.
    Several(Vec<ParamPath>),
}

impl Parameter {
    /// The first (or only) path.
    pub fn first(&self) -> Option<&ParamPath> {
        match self {
            Parameter::One(p) => Some(p),
            Parameter::Several(v) => v.first(),
        }
    }
}

impl From<ParamPath> for Parameter {
    fn from(p: ParamPath) -> Self {
        Parameter::One(p)
    }
}

impl From<&str> for Parameter {
    fn from(s: &str) -> Self {
        Parameter::One(ParamPath::key(s))
    }
}

impl From<Vec<ParamPath>> for Parameter {
    fn from(v: Vec<ParamPath>) -> Self {
        if v.len() == 1 {
            Parameter::One(v.into_iter().next().expect("one element"))
        } else {
            Parameter::Several(v)
        }
    }
}

/// Reads typed parameters out of a JSON object, tracking which keys were consumed.
///
/// Each method both checks a key and, while [`schema::record`] runs on this thread, notes the
/// key with its shape (type, bounds, whether it is required) for the generated schema; the note
/// costs one flag test otherwise.
pub struct ParamReader<'a> {
    obj: &'a Map<String, Value>,
    base: ParamPath,
    seen: Vec<&'a str>,
    recording: bool,
}

/// The shape of a value that a parser reads whole ([`ParamReader::raw_as`]) and checks itself,
/// as the generated schema shows it. Keep it as strict as the check that follows the read and no
/// stricter: a value the schema refuses must be refused by the parser too.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'s> {
    /// An object whose keys a nested [`ParamReader`] reads (with the object's path as its base):
    /// they are noted from it.
    Object,
    /// A string of `min..=max` characters (`usize::MAX`: no upper limit).
    Str {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// A whole number in `min..=max`.
    Int {
        /// Smallest.
        min: i64,
        /// Largest.
        max: i64,
    },
    /// One of these strings.
    Enum(&'s [&'s str]),
    /// A UUID in a string.
    Uuid,
    /// An array of `min..=max` items of one shape.
    Array {
        /// Fewest items.
        min: usize,
        /// Most items.
        max: usize,
        /// Each item's shape ([`Shape::Object`]: the keys a nested reader reads at `key[i]`).
        items: &'s Shape<'s>,
    },
    /// A value of any of these shapes.
    AnyOf(&'s [Shape<'s>]),
    /// One of these strings in any case (`wav`, `WAV`).
    Caseless(&'s [&'s str]),
    /// A value of an extras table's [`Kind`].
    Kind(&'s Kind),
    /// A key the parser refuses whatever its value (only `null`, as absent, passes), saying why.
    Refused(&'s str),
}

/// How a JSON value's type is named in error messages ("an integer", "a string"…).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why a string's length is refused, naming the bound that applies.
fn length_detail(n: usize, min: usize, max: usize) -> String {
    let unit = |k: usize| if k == 1 { "character" } else { "characters" };
    if max == usize::MAX {
        format!("length is {n} {}; it must be at least {min} {}.", unit(n), unit(min))
    } else {
        format!("length is {n} {}; it must be between {min} and {max} characters.", unit(n))
    }
}

impl<'a> ParamReader<'a> {
    /// A reader over `obj`, whose own path is `base` (empty for a task's top level).
    pub fn new(obj: &'a Map<String, Value>, base: ParamPath) -> Self {
        let recording = schema::on();
        if recording {
            schema::note(Note::Opened(base.clone()));
        }
        ParamReader { obj, base, seen: Vec::new(), recording }
    }

    /// Notes `key` for the schema being recorded, if one is.
    #[inline]
    fn note(&self, key: &str, required: bool, shape: impl FnOnce() -> Value) {
        if self.recording {
            schema::note(Note::Key { path: self.path(key), required, schema: shape() });
        }
    }

    /// Adds words to `key`'s entry in the schema being recorded (what a type and bounds cannot
    /// say: a rule that depends on the model or on another key). No cost when none is.
    pub fn describe(&self, key: &str, text: &str) {
        if self.recording {
            schema::note(Note::Describe { path: self.path(key), text: text.to_string() });
        }
    }

    /// A required key's `what` (what to send), as its description: "describe the image…".
    fn explain(&self, key: &str, what: &str) {
        if self.recording {
            let mut text = what.to_string();
            if let Some(first) = text.get(..1) {
                let upper = first.to_uppercase();
                text.replace_range(..1, &upper);
            }
            if !text.ends_with('.') {
                text.push('.');
            }
            self.describe(key, &text);
        }
    }

    /// The path of a key under this reader.
    pub fn path(&self, key: &str) -> ParamPath {
        self.base.child(key)
    }

    /// Marks a key as accepted without reading it (e.g. `taskType`).
    pub fn accept(&mut self, key: &'a str) {
        self.seen.push(key);
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        match self.obj.get(key) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Value) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidParameterType,
            format!(
                "Invalid type for parameter '{}': expected {expected}, got {}.",
                self.path(key),
                type_name(got)
            ),
        )
        .with_parameter(self.path(key))
    }

    /// An error for a missing required key.
    pub fn missing(&self, key: &str, what: &str) -> ApiError {
        ApiError::new(
            ErrorCode::MissingParameter,
            format!("Missing required parameter '{}': {what}.", self.path(key)),
        )
        .with_parameter(self.path(key))
    }

    /// An error for a value out of its allowed range or set.
    pub fn invalid(&self, key: &str, detail: impl fmt::Display) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("Invalid value for parameter '{}': {detail}", self.path(key)),
        )
        .with_parameter(self.path(key))
    }

    /// An optional string whose length in characters lies in `min..=max` (`usize::MAX` for no
    /// upper limit).
    pub fn opt_string(
        &mut self,
        key: &'static str,
        min: usize,
        max: usize,
    ) -> Result<Option<String>, ApiError> {
        self.note(key, false, || schema::string(min, max));
        self.read_string(key, min, max)
    }

    fn read_string(&mut self, key: &'static str, min: usize, max: usize) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min || n > max {
                    Err(self.invalid(key, length_detail(n, min, max)))
                } else {
                    Ok(Some(s.clone()))
                }
            }
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// A required string whose length in characters lies in `min..=max`; `what` says what to
    /// send, both when it is missing and when it is empty.
    pub fn string(
        &mut self,
        key: &'static str,
        min: usize,
        max: usize,
        what: &str,
    ) -> Result<String, ApiError> {
        self.note(key, true, || schema::string(min, max));
        self.explain(key, what);
        if min > 0 && matches!(self.obj.get(key), Some(Value::String(s)) if s.is_empty()) {
            self.seen.push(key);
            return Err(self.invalid(key, format!("it is empty: {what}.")));
        }
        self.read_string(key, min, max)?.ok_or_else(|| self.missing(key, what))
    }

    /// Reads a whole number of any size. JSON does not tell `512` from `512.0` and JSON Schema's
    /// `integer` (what Runware's model schemas declare) accepts both, so a number with no
    /// fractional part counts, up to 2^53 where every such number is the exact integer that was
    /// written; larger ones saturate, which every range here refuses.
    fn whole(&mut self, key: &'static str) -> Result<Option<(i128, &'a serde_json::Number)>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    return Ok(Some((i128::from(i), n)));
                }
                if let Some(u) = n.as_u64() {
                    return Ok(Some((i128::from(u), n)));
                }
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.is_finite() && f.fract() == 0.0 {
                    // `as` saturates: beyond 2^53 the value only ever fails a range check.
                    Ok(Some((f as i128, n)))
                } else {
                    Err(ApiError::new(
                        ErrorCode::InvalidParameterType,
                        format!(
                            "Invalid type for parameter '{}': expected an integer, got {n}, which has a fractional part.",
                            self.path(key)
                        ),
                    )
                    .with_parameter(self.path(key)))
                }
            }
            Some(v) => Err(self.wrong_type(key, "an integer", v)),
        }
    }

    /// An optional integer in `min..=max`.
    pub fn opt_int(&mut self, key: &'static str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        self.note(key, false, || schema::int(min, max));
        self.read_int(key, min, max)
    }

    /// A required integer in `min..=max`; `what` says what to send when it is missing.
    pub fn int(&mut self, key: &'static str, min: i64, max: i64, what: &str) -> Result<i64, ApiError> {
        self.note(key, true, || schema::int(min, max));
        self.explain(key, what);
        self.read_int(key, min, max)?.ok_or_else(|| self.missing(key, what))
    }

    fn read_int(&mut self, key: &'static str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.whole(key)? {
            None => Ok(None),
            Some((i, _)) if (i128::from(min)..=i128::from(max)).contains(&i) => Ok(Some(i as i64)),
            Some((_, n)) => {
                Err(self.invalid(key, format!("{n} is out of range; it must be between {min} and {max}.")))
            }
        }
    }

    /// An optional integer whose allowed range is decided later, by the model or the server's
    /// configuration, so that a client is told one range whatever it sent. Values outside `u32`
    /// saturate (below 0 to 0, above to `u32::MAX`); every such bound refuses both ends.
    pub fn opt_int_checked_later(&mut self, key: &'static str) -> Result<Option<u32>, ApiError> {
        self.note(key, false, schema::int_checked_later);
        Ok(self.whole(key)?.map(|(i, _)| i.clamp(0, i128::from(u32::MAX)) as u32))
    }

    /// An optional number in `min..=max`.
    pub fn opt_f64(&mut self, key: &'static str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        self.note(key, false, || schema::number(min, max));
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !(min..=max).contains(&f) {
                    Err(self
                        .invalid(key, format!("{f} is out of range; it must be between {min} and {max}.")))
                } else {
                    Ok(Some(f))
                }
            }
            Some(v) => Err(self.wrong_type(key, "a number", v)),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, ApiError> {
        self.note(key, false, || serde_json::json!({"type": "boolean"}));
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "a boolean", v)),
        }
    }

    /// An optional string that must be one of `allowed` (exact match).
    pub fn opt_enum(
        &mut self,
        key: &'static str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        self.note(key, false, || schema::enumeration(allowed));
        self.read_enum(key, allowed)
    }

    /// A required string that must be one of `allowed`; `what` says what to send when it is
    /// missing.
    pub fn enum_value(
        &mut self,
        key: &'static str,
        allowed: &[&'static str],
        what: &str,
    ) -> Result<&'static str, ApiError> {
        self.note(key, true, || schema::enumeration(allowed));
        self.explain(key, what);
        self.read_enum(key, allowed)?.ok_or_else(|| self.missing(key, what))
    }

    fn read_enum(
        &mut self,
        key: &'static str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                match allowed.iter().find(|a| **a == s.as_str()) {
                    Some(a) => Ok(Some(*a)),
                    None => Err(self
                        .invalid(key, format!("'{s}' is not allowed; use one of {}.", allowed.join(", ")))),
                }
            }
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// The value of a key without marking it consumed (to choose how to read it).
    pub fn peek(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    /// The raw value of a key, marked as consumed. The schema shows it as any value: prefer
    /// [`ParamReader::raw_as`], which says what the code that follows accepts.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.note(key, false, || serde_json::json!({}));
        self.get(key)
    }

    /// The raw value of an optional key that the caller checks itself, marked as consumed;
    /// `shape` is what the schema shows for it.
    pub fn raw_as(&mut self, key: &'static str, shape: Shape<'_>) -> Option<&'a Value> {
        self.note_shape(key, false, shape);
        self.get(key)
    }

    /// The same for a key the caller requires (it reports the key missing when this is `None`).
    pub fn raw_required(&mut self, key: &'static str, shape: Shape<'_>) -> Option<&'a Value> {
        self.note_shape(key, true, shape);
        self.get(key)
    }

    fn note_shape(&self, key: &str, required: bool, shape: Shape<'_>) {
        if !self.recording {
            return;
        }
        match shape {
            // An array's items get a node of their own, which nested readers at `key[i]` fill.
            Shape::Array { min, max, items } => {
                self.note(key, required, || schema::array(min, max, None));
                schema::note(Note::Key {
                    path: self.path(key).index(0),
                    required: true,
                    schema: items.schema(),
                });
            }
            shape => self.note(key, required, || shape.schema()),
        }
    }

    /// Fails with `unknownParameter` naming every key that was never read.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.recording {
            schema::note(Note::Closed(self.base.clone()));
        }
        let unknown: Vec<&String> = self.obj.keys().filter(|k| !self.seen.contains(&k.as_str())).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = unknown.iter().map(|k| format!("'{}'", self.path(k))).collect();
        let paths: Vec<ParamPath> = unknown.iter().map(|k| self.path(k)).collect();
        Err(ApiError::new(
            ErrorCode::UnknownParameter,
            format!(
                "Unknown parameter{} {}: remove {} or check the spelling (parameter names are case-sensitive).",
                if names.len() > 1 { "s" } else { "" },
                names.join(", "),
                if names.len() > 1 { "them" } else { "it" },
            ),
        )
        .with_parameter(paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn paths_render_dotted_with_indexes() {
        let p = ParamPath::key("promptImage").index(0).child("uri");
        assert_eq!(p.to_string(), "promptImage[0].uri");
        assert_eq!(serde_json::to_value(p.segments()).unwrap(), json!(["promptImage", 0, "uri"]));
    }

    #[test]
    fn reader_reports_types_ranges_and_unknown_keys() {
        let o = obj(json!({"width": "64", "steps": 500, "ok": true, "extraA": 1, "extraB": 2}));
        let mut r = ParamReader::new(&o, ParamPath::default());
        let e = r.opt_int("width", 64, 2048).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterType);
        assert!(e.message.contains("expected an integer, got a string"), "{}", e.message);
        let e = r.opt_int("steps", 1, 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(e.message.contains("between 1 and 100"));
        assert_eq!(r.opt_bool("ok").unwrap(), Some(true));
        let e = r.finish().unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownParameter);
        assert!(e.message.contains("'extraA', 'extraB'"), "{}", e.message);
        assert!(matches!(e.parameter, Some(Parameter::Several(ref v)) if v.len() == 2));
    }

    #[test]
    fn null_counts_as_absent() {
        let o = obj(json!({"seed": null}));
        let mut r = ParamReader::new(&o, ParamPath::default());
        assert_eq!(r.opt_int("seed", 1, 10).unwrap(), None);
        r.finish().unwrap();
    }
}
