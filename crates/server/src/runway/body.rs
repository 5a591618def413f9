//! Reading a Runway request body the way Runway's (Zod) validation does: every problem is
//! collected as an [`Issue`] with its path, instead of stopping at the first.

use super::issues::Issue;
use mediagate_core::ParamPath;
use serde_json::{Map, Value};

/// Whether a field must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Absent is an issue.
    Required,
    /// Absent is fine.
    Optional,
}

/// A reader over one JSON object of the body.
pub struct Body<'a> {
    obj: &'a Map<String, Value>,
    base: ParamPath,
    seen: Vec<&'a str>,
    /// Problems found so far (nested readers add theirs here too).
    pub issues: Vec<Issue>,
}

impl<'a> Body<'a> {
    /// A reader over `obj`, found at `base` in the body.
    pub fn new(obj: &'a Map<String, Value>, base: ParamPath) -> Self {
        Body { obj, base, seen: Vec::new(), issues: Vec::new() }
    }

    /// The path of one of this object's keys.
    pub fn path(&self, key: &str) -> ParamPath {
        self.base.child(key)
    }

    /// The raw value of a key (marking it as known).
    pub fn raw(&mut self, key: &'a str, need: Need, expected: &str) -> Option<&'a Value> {
        self.seen.push(key);
        match self.obj.get(key) {
            None if need == Need::Required => {
                self.issues.push(Issue::required(self.path(key), expected));
                None
            }
            // Zod's `.optional()` refuses null too; say so rather than ignoring it.
            Some(Value::Null) if need == Need::Optional => {
                self.issues.push(Issue::wrong_type(self.path(key), expected, &Value::Null));
                None
            }
            v => v,
        }
    }

    /// A string whose length in UTF-16 code units (what JavaScript counts) is in `min..=max`.
    pub fn string(&mut self, key: &'a str, need: Need, min: usize, max: usize) -> Option<String> {
        let v = self.raw(key, need, "string")?;
        let Some(s) = v.as_str() else {
            self.issues.push(Issue::wrong_type(self.path(key), "string", v));
            return None;
        };
        let units = s.encode_utf16().count();
        if units < min {
            self.issues.push(Issue::too_small(
                self.path(key),
                "string",
                min as f64,
                format!("String must contain at least {min} character(s)"),
            ));
            return None;
        }
        if units > max {
            self.issues.push(Issue::too_big(
                self.path(key),
                "string",
                max as f64,
                format!(
                    "String must contain at most {max} character(s) (measured in UTF-16 code units; this one has {units})"
                ),
            ));
            return None;
        }
        Some(s.to_string())
    }

    /// One of a set of strings.
    pub fn one_of(&mut self, key: &'a str, need: Need, options: &[&str]) -> Option<String> {
        let v = self.raw(key, need, "string")?;
        match v.as_str() {
            Some(s) if options.contains(&s) => Some(s.to_string()),
            _ => {
                let opts: Vec<Value> = options.iter().map(|o| Value::from(*o)).collect();
                self.issues.push(Issue::not_in_enum(self.path(key), &opts, v));
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&mut self, key: &'a str, need: Need, min: i64, max: i64) -> Option<i64> {
        let v = self.raw(key, need, "number")?;
        let Some(n) = v.as_f64() else {
            self.issues.push(Issue::wrong_type(self.path(key), "number", v));
            return None;
        };
        if n.fract() != 0.0 {
            let mut i = Issue::wrong_type(self.path(key), "integer", v);
            i.message = "Expected integer, received float".into();
            i.extra.insert("received".into(), Value::from("float"));
            self.issues.push(i);
            return None;
        }
        if n < min as f64 {
            self.issues.push(Issue::too_small(
                self.path(key),
                "number",
                min as f64,
                format!("Number must be greater than or equal to {min}"),
            ));
            return None;
        }
        if n > max as f64 {
            self.issues.push(Issue::too_big(
                self.path(key),
                "number",
                max as f64,
                format!("Number must be less than or equal to {max}"),
            ));
            return None;
        }
        Some(n as i64)
    }

    /// One of a set of integers.
    pub fn int_of(&mut self, key: &'a str, need: Need, options: &[i64]) -> Option<i64> {
        let v = self.raw(key, need, "number")?;
        match v.as_i64() {
            Some(n) if options.contains(&n) => Some(n),
            _ => {
                let opts: Vec<Value> = options.iter().map(|o| Value::from(*o)).collect();
                self.issues.push(Issue::not_in_enum(self.path(key), &opts, v));
                None
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, key: &'a str, need: Need) -> Option<bool> {
        let v = self.raw(key, need, "boolean")?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                self.issues.push(Issue::wrong_type(self.path(key), "boolean", v));
                None
            }
        }
    }

    /// A nested object, read by `read` with its own reader; its issues join this one's.
    pub fn object<T>(
        &mut self,
        key: &'a str,
        need: Need,
        read: impl FnOnce(&mut Body<'a>) -> T,
    ) -> Option<T> {
        let v = self.raw(key, need, "object")?;
        let Some(obj) = v.as_object() else {
            self.issues.push(Issue::wrong_type(self.path(key), "object", v));
            return None;
        };
        let mut inner = Body::new(obj, self.path(key));
        let out = read(&mut inner);
        self.issues.extend(inner.finish());
        Some(out)
    }

    /// Marks every key of the object as read, so that none is reported as unrecognized.
    pub fn accept_rest(&mut self) {
        self.seen.extend(self.obj.keys().map(String::as_str));
    }

    /// The issues, with one `unrecognized_keys` issue for keys nobody read.
    pub fn finish(mut self) -> Vec<Issue> {
        let unknown: Vec<String> =
            self.obj.keys().filter(|k| !self.seen.contains(&k.as_str())).cloned().collect();
        if !unknown.is_empty() {
            self.issues.push(Issue::unrecognized(self.base.clone(), unknown));
        }
        self.issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_issue_with_paths() {
        let v = json!({"promptText": "", "seed": 1.5, "ratio": "1:1", "extra": 1,
                       "contentModeration": {"publicFigureThreshold": "high"}});
        let mut b = Body::new(v.as_object().unwrap(), ParamPath::default());
        b.string("promptText", Need::Required, 1, 1000);
        b.int("seed", Need::Optional, 0, 4_294_967_295);
        b.one_of("ratio", Need::Required, &["1280:720"]);
        b.string("model", Need::Required, 1, 10);
        b.object("contentModeration", Need::Optional, |m| {
            m.one_of("publicFigureThreshold", Need::Optional, &["auto", "low"])
        });
        let issues: Vec<Value> = b.finish().iter().map(Issue::to_json).collect();
        let codes: Vec<&str> = issues.iter().map(|i| i["code"].as_str().unwrap()).collect();
        assert_eq!(
            codes,
            [
                "too_small",
                "invalid_type",
                "invalid_enum_value",
                "invalid_type",
                "invalid_enum_value",
                "unrecognized_keys"
            ]
        );
        assert_eq!(issues[4]["path"], json!(["contentModeration", "publicFigureThreshold"]));
        assert_eq!(issues[5]["keys"], json!(["extra"]));
    }

    #[test]
    fn utf16_length_is_what_counts() {
        // 500 emoji are 1000 UTF-16 units: accepted; one more character is too many.
        let ok = "😀".repeat(500);
        let v = json!({ "p": ok, "q": format!("{ok}a") });
        let mut b = Body::new(v.as_object().unwrap(), ParamPath::default());
        assert!(b.string("p", Need::Required, 1, 1000).is_some());
        assert!(b.string("q", Need::Required, 1, 1000).is_none());
        assert_eq!(b.issues[0].code, "too_big");
    }
}
