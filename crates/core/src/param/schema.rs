//! JSON Schemas of task objects, recorded from the code that reads them.
//!
//! The parsers are imperative ([`ParamReader`] calls, nested readers for nested objects, checks
//! by hand where a value takes several forms), so their schema is not written down beside them:
//! it is recorded. While [`record`] runs a closure on this thread, every reader built inside it
//! notes each key it is asked for (its path, whether it is required, its type and bounds, from
//! the very arguments the check uses), each nested reader notes the object it reads, and
//! [`ParamReader::finish`] notes that the object refuses other keys. [`Recording::to_schema`]
//! turns the notes into a JSON Schema (draft 2020-12, as OpenAPI 3.1 uses it).
//!
//! A run records the keys its parser reaches for one task object. Keys read only on some paths
//! (the `inputs` form of a task, the fields of an optional object) are reached by running
//! several objects and merging the runs ([`Recording::merge`]): a key is in the schema when any
//! run read it, and required when every run that read its object required it.
//!
//! Outside [`record`] a reader notes nothing: building one reads a thread-local flag once, and
//! each read then tests that flag.
//!
//! [`ParamReader`]: super::ParamReader
//! [`ParamReader::finish`]: super::ParamReader::finish

use super::{ParamPath, Segment, Shape};
use serde_json::{Map, Value, json};
use std::cell::{Cell, RefCell};

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static NOTES: RefCell<Vec<Note>> = const { RefCell::new(Vec::new()) };
}

/// Whether readers built now on this thread record.
pub(crate) fn on() -> bool {
    ON.get()
}

/// One thing a reader was asked for.
#[derive(Debug)]
pub(crate) enum Note {
    /// A reader was built over the object at this path.
    Opened(ParamPath),
    /// A key was read.
    Key {
        /// Where.
        path: ParamPath,
        /// Whether the reader refuses the object without it.
        required: bool,
        /// Its type and bounds, as a JSON Schema.
        schema: Value,
    },
    /// Words about a key.
    Describe {
        /// Where.
        path: ParamPath,
        /// What to say.
        text: String,
    },
    /// The reader of the object at this path refuses keys it did not read.
    Closed(ParamPath),
}

pub(crate) fn note(n: Note) {
    NOTES.with_borrow_mut(|notes| notes.push(n));
}

/// Runs `f` with recording on for this thread and returns its result with what every
/// [`ParamReader`](super::ParamReader) built inside it was asked for. Recording stops when `f`
/// returns or panics; calls nest (the inner one records apart).
pub fn record<T>(f: impl FnOnce() -> T) -> (T, Recording) {
    struct Restore {
        was_on: bool,
        saved: Vec<Note>,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            ON.set(self.was_on);
            NOTES.set(std::mem::take(&mut self.saved));
        }
    }
    let restore = Restore { was_on: ON.replace(true), saved: NOTES.take() };
    let out = f();
    let notes = NOTES.take();
    drop(restore);
    (out, Recording::from_notes(notes))
}

/// What the readers of one or more runs were asked for, as a tree of keys.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    root: Node,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The key's own type and bounds (none: only its children were seen).
    schema: Option<Value>,
    required: bool,
    /// A reader read this object's keys (so a key it did not require is optional).
    opened: bool,
    /// That reader refused other keys.
    closed: bool,
    descriptions: Vec<String>,
    /// In the order first read.
    properties: Vec<(String, Node)>,
    /// An array's items, every index together.
    items: Option<Box<Node>>,
}

impl Node {
    fn at(&mut self, path: &ParamPath) -> &mut Node {
        let mut node = self;
        for seg in path.segments() {
            node = match seg {
                Segment::Key(k) => {
                    let i = match node.properties.iter().position(|(name, _)| name == k) {
                        Some(i) => i,
                        None => {
                            node.properties.push((k.clone(), Node::default()));
                            node.properties.len() - 1
                        }
                    };
                    &mut node.properties[i].1
                }
                Segment::Index(_) => node.items.get_or_insert_with(Default::default),
            };
        }
        node
    }

    fn merge(mut self, other: Node) -> Node {
        let (self_opened, other_opened) = (self.opened, other.opened);
        let mut properties = Vec::with_capacity(self.properties.len());
        let mut theirs = other.properties;
        for (k, mut mine) in std::mem::take(&mut self.properties) {
            match theirs.iter().position(|(name, _)| *name == k) {
                Some(i) => {
                    let (_, t) = theirs.remove(i);
                    properties.push((k, mine.merge(t)));
                }
                None => {
                    // Not read where the other run read this object: optional.
                    mine.required &= !other_opened;
                    properties.push((k, mine));
                }
            }
        }
        for (k, mut t) in theirs {
            t.required &= !self_opened;
            properties.push((k, t));
        }
        for d in other.descriptions {
            if !self.descriptions.contains(&d) {
                self.descriptions.push(d);
            }
        }
        Node {
            schema: merge_schemas(self.schema, other.schema),
            required: self.required && other.required,
            opened: self_opened || other_opened,
            closed: self.closed || other.closed,
            descriptions: self.descriptions,
            properties,
            items: match (self.items, other.items) {
                (Some(a), Some(b)) => Some(Box::new(a.merge(*b))),
                (a, b) => a.or(b),
            },
        }
    }

    fn to_schema(&self, optional: bool) -> Value {
        let mut s = self.schema.clone().unwrap_or_else(|| json!({}));
        let o = s.as_object_mut().expect("a schema is an object");
        if self.opened || !self.properties.is_empty() {
            if !o.contains_key("type") && !o.contains_key("anyOf") {
                o.insert("type".into(), "object".into());
            }
            let props: Map<String, Value> =
                self.properties.iter().map(|(k, n)| (k.clone(), n.to_schema(!n.required))).collect();
            let required: Vec<Value> =
                self.properties.iter().filter(|(_, n)| n.required).map(|(k, _)| k.as_str().into()).collect();
            o.insert("properties".into(), props.into());
            if !required.is_empty() {
                o.insert("required".into(), required.into());
            }
            if self.closed {
                o.insert("additionalProperties".into(), false.into());
            }
        }
        if let Some(items) = &self.items {
            o.insert("items".into(), items.to_schema(false));
        }
        if !self.descriptions.is_empty() {
            let mut text: Vec<String> =
                o.get("description").and_then(Value::as_str).map(str::to_string).into_iter().collect();
            text.extend(self.descriptions.iter().cloned());
            o.insert("description".into(), text.join(" ").into());
        }
        // A reader takes null for an optional key as its absence.
        if optional { nullable(s) } else { s }
    }
}

impl Recording {
    fn from_notes(notes: Vec<Note>) -> Recording {
        let mut root = Node { required: true, ..Node::default() };
        for n in notes {
            match n {
                Note::Opened(p) => root.at(&p).opened = true,
                Note::Closed(p) => root.at(&p).closed = true,
                Note::Key { path, required, schema } => {
                    let node = root.at(&path);
                    node.required |= required;
                    node.schema = merge_schemas(node.schema.take(), Some(schema));
                }
                Note::Describe { path, text } => {
                    let node = root.at(&path);
                    if !node.descriptions.contains(&text) {
                        node.descriptions.push(text);
                    }
                }
            }
        }
        Recording { root }
    }

    /// Both runs together: every key either read, required where each run that read its object
    /// required it, with the union of the shapes each gave it.
    pub fn merge(self, other: Recording) -> Recording {
        Recording { root: self.root.merge(other.root) }
    }

    /// Whether no reader was built.
    pub fn is_empty(&self) -> bool {
        !self.root.opened && self.root.properties.is_empty()
    }

    /// The JSON Schema of the object the top-level reader read.
    pub fn to_schema(&self) -> Value {
        self.root.to_schema(false)
    }
}

/// Two shapes given to one key: the same, any value if either is any value, one enum when both
/// are enums of strings, else either one (`anyOf`).
fn merge_schemas(a: Option<Value>, b: Option<Value>) -> Option<Value> {
    let (a, b) = match (a, b) {
        (None, x) | (x, None) => return x,
        (Some(a), Some(b)) => (a, b),
    };
    if a == b {
        return Some(a);
    }
    let any = |v: &Value| v.as_object().is_some_and(Map::is_empty);
    if any(&a) || any(&b) {
        return Some(json!({}));
    }
    let string_enum = |v: &Value| {
        let o = v.as_object()?;
        (o.keys().all(|k| k == "type" || k == "enum") && o.get("type") == Some(&json!("string")))
            .then(|| o.get("enum").and_then(Value::as_array).cloned())
            .flatten()
    };
    if let (Some(mut x), Some(y)) = (string_enum(&a), string_enum(&b)) {
        for v in y {
            if !x.contains(&v) {
                x.push(v);
            }
        }
        return Some(enumeration_values(x));
    }
    let mut alternatives = Vec::new();
    for v in [a, b] {
        match v.get("anyOf").and_then(Value::as_array) {
            Some(list) if v.as_object().is_some_and(|o| o.len() == 1) => {
                alternatives.extend(list.iter().cloned())
            }
            _ => alternatives.push(v),
        }
    }
    let mut unique: Vec<Value> = Vec::new();
    for v in alternatives {
        if !unique.contains(&v) {
            unique.push(v);
        }
    }
    Some(json!({ "anyOf": unique }))
}

/// `schema` that also admits `null` (what a reader takes as an absent optional key).
pub fn nullable(mut schema: Value) -> Value {
    let Some(o) = schema.as_object_mut() else { return schema };
    if o.is_empty() {
        return schema;
    }
    let null = Value::from("null");
    match o.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            o.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) if !types.contains(&null) => types.push(null.clone()),
        _ => {}
    }
    if let Some(Value::Array(values)) = o.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    if !o.contains_key("type")
        && let Some(Value::Array(alternatives)) = o.get_mut("anyOf")
        && !alternatives.iter().any(|a| a.get("type") == Some(&null))
    {
        alternatives.push(json!({"type": "null"}));
    }
    schema
}

/// A string of `min..=max` characters (`usize::MAX`: no upper limit). JSON Schema counts code
/// points, as the readers do.
pub(crate) fn string(min: usize, max: usize) -> Value {
    let mut s = json!({"type": "string"});
    if min > 0 {
        s["minLength"] = min.into();
    }
    if max != usize::MAX {
        s["maxLength"] = max.into();
    }
    s
}

/// A whole number in `min..=max` (JSON Schema's `integer` admits `512.0`, as the readers do).
/// (`i64::MIN` and `i64::MAX` leave that end open.)
pub(crate) fn int(min: i64, max: i64) -> Value {
    let mut s = json!({"type": "integer"});
    if min != i64::MIN {
        s["minimum"] = min.into();
    }
    if max != i64::MAX {
        s["maximum"] = max.into();
    }
    s
}

/// A whole number whose range the model or the server's configuration decides.
pub(crate) fn int_checked_later() -> Value {
    json!({
        "type": "integer",
        "description": "Its range depends on the model (see /docs and modelSearch) or on the server's \
                        configuration; a value outside it is refused with an error naming the range."
    })
}

/// A number in `min..=max`.
pub(crate) fn number(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

/// One of these strings.
pub(crate) fn enumeration(allowed: &[&str]) -> Value {
    enumeration_values(allowed.iter().map(|a| Value::from(*a)).collect())
}

fn enumeration_values(allowed: Vec<Value>) -> Value {
    json!({"type": "string", "enum": allowed})
}

/// An array of `min..=max` items (`usize::MAX`: no upper limit).
pub(crate) fn array(min: usize, max: usize, items: Option<Value>) -> Value {
    let mut s = json!({"type": "array"});
    if min > 0 {
        s["minItems"] = min.into();
    }
    if max != usize::MAX {
        s["maxItems"] = max.into();
    }
    if let Some(items) = items {
        s["items"] = items;
    }
    s
}

impl Shape<'_> {
    /// This shape as a JSON Schema.
    pub fn schema(&self) -> Value {
        match *self {
            Shape::Object => json!({"type": "object"}),
            Shape::Str { min, max } => string(min, max),
            Shape::Int { min, max } => int(min, max),
            Shape::Enum(allowed) => enumeration(allowed),
            Shape::Caseless(allowed) => {
                let alternatives: Vec<String> = allowed
                    .iter()
                    .map(|a| {
                        a.chars()
                            .map(|c| match (c.to_lowercase().next(), c.to_uppercase().next()) {
                                (Some(l), Some(u)) if l != u => format!("[{u}{l}]"),
                                _ => regex_escape(c),
                            })
                            .collect()
                    })
                    .collect();
                json!({"type": "string", "pattern": format!("^(?:{})$", alternatives.join("|")), "description": format!("One of {}, in any case.", allowed.join(", "))})
            }
            Shape::Uuid => json!({"type": "string", "format": "uuid"}),
            Shape::Array { min, max, items } => array(min, max, Some(items.schema())),
            Shape::AnyOf(shapes) => json!({"anyOf": shapes.iter().map(Shape::schema).collect::<Vec<_>>()}),
            Shape::Kind(kind) => kind.schema(),
            Shape::Refused(why) => json!({"type": "null", "description": why}),
        }
    }
}

fn regex_escape(c: char) -> String {
    if "\\^$.|?*+()[]{}-/".contains(c) { format!("\\{c}") } else { c.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use crate::param::ParamReader;

    /// A small parser in the style of the task modules: `extra` adds one parameter, as a module
    /// might in a later version.
    fn parse(v: &Value, extra: bool) -> Result<(), ApiError> {
        let mut r = ParamReader::new(v.as_object().unwrap(), ParamPath::default());
        r.string("prompt", 2, 100, "describe it")?;
        r.opt_int("steps", 1, 50)?;
        if extra {
            r.opt_bool("fast")?;
        }
        if let Some(Value::Object(o)) = r.raw_as("box", Shape::Object) {
            let mut b = ParamReader::new(o, ParamPath::key("box"));
            b.int("top", 0, 64, "the top")?;
            b.opt_enum("unit", &["px", "%"])?;
            b.finish()?;
        }
        if let Some(Value::Array(list)) =
            r.raw_as("frames", Shape::Array { min: 1, max: 4, items: &Shape::Object })
        {
            for (i, f) in list.iter().enumerate() {
                let mut fr = ParamReader::new(f.as_object().unwrap(), ParamPath::key("frames").index(i));
                fr.string("image", 1, usize::MAX, "the image")?;
                fr.finish()?;
            }
        }
        r.finish()
    }

    fn schema_of(examples: &[Value], extra: bool) -> Value {
        examples
            .iter()
            .map(|e| {
                let (result, rec) = record(|| parse(e, extra));
                result.unwrap();
                rec
            })
            .reduce(Recording::merge)
            .unwrap()
            .to_schema()
    }

    #[test]
    fn a_run_records_keys_with_their_bounds_and_nested_objects() {
        let s = schema_of(&[json!({"prompt": "a fox", "box": {"top": 0}})], false);
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"], json!(["prompt"]));
        assert_eq!(
            s["properties"]["prompt"],
            json!({"type": "string", "minLength": 2, "maxLength": 100, "description": "Describe it."})
        );
        // Optional keys admit null, which the reader takes as absent.
        assert_eq!(
            s["properties"]["steps"],
            json!({"type": ["integer", "null"], "minimum": 1, "maximum": 50})
        );
        let b = &s["properties"]["box"];
        assert_eq!(b["type"], json!(["object", "null"]));
        assert_eq!(b["required"], json!(["top"]));
        assert_eq!(b["additionalProperties"], false);
        assert_eq!(b["properties"]["unit"]["enum"], json!(["px", "%", null]));
        // `frames` was read but never held items: its items' fields are unknown to this run.
        assert_eq!(s["properties"]["frames"]["items"], json!({"type": "object"}));
    }

    #[test]
    fn runs_merge_into_one_schema_and_a_new_parameter_follows() {
        let examples = [json!({"prompt": "a fox"}), json!({"prompt": "a fox", "frames": [{"image": "x"}]})];
        let s = schema_of(&examples, false);
        let frames = &s["properties"]["frames"];
        assert_eq!(frames["minItems"], 1);
        assert_eq!(frames["maxItems"], 4);
        assert_eq!(frames["items"]["required"], json!(["image"]), "{frames}");
        assert_eq!(frames["items"]["additionalProperties"], false);
        assert!(s["properties"].get("fast").is_none());
        // The parser reads one more key: the schema has it, with no other edit.
        let s = schema_of(&examples, true);
        assert_eq!(s["properties"]["fast"], json!({"type": ["boolean", "null"]}));
    }

    #[test]
    fn a_key_required_on_one_path_only_is_optional() {
        let one = |required: bool| {
            let (_, rec) = record(|| {
                let v = json!({"a": "xy"});
                let mut r = ParamReader::new(v.as_object().unwrap(), ParamPath::default());
                if required {
                    let _ = r.string("a", 1, 9, "a");
                } else {
                    let _ = r.opt_enum("b", &["x"]);
                    let _ = r.opt_enum("a", &["xy"]);
                }
            });
            rec
        };
        let s = one(true).merge(one(false)).to_schema();
        assert!(s.get("required").is_none(), "{s}");
        assert_eq!(s["properties"]["a"]["anyOf"].as_array().unwrap().len(), 3, "{s}");
        let (_, rec) = record(|| {
            let v = json!({});
            let mut r = ParamReader::new(v.as_object().unwrap(), ParamPath::default());
            let _ = r.opt_enum("b", &["y"]);
        });
        let s = one(false).merge(rec).to_schema();
        assert_eq!(s["properties"]["b"]["enum"], json!(["x", "y", null]));
    }

    #[test]
    fn nothing_is_recorded_outside_record() {
        let v = json!({"prompt": "a fox"});
        parse(&v, false).unwrap();
        NOTES.with_borrow(|n| assert!(n.is_empty()));
        let (_, rec) = record(|| ());
        assert!(rec.is_empty());
        assert!(!on());
    }
}
