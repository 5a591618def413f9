//! Key scopes: a key may be limited to task types, models and dialects.
//!
//! Entries are `task:<taskType>`, `model:<AIR id>` and `dialect:<runware|runway>`; a bare task
//! type name is shorthand for `task:<name>`. For each kind, a key with no entries of that kind
//! is unrestricted in it; otherwise the request must match one entry.

use mediagate_core::task::TaskType;

/// The dialect a route speaks. Authentication takes one ([`crate::Engine::authenticate_from`]),
/// so every authenticated route has its `dialect:` scope checked before it does any work, and
/// a new route cannot forget it.
pub use mediagate_core::Dialect;

/// Normalises and checks scope entries given on key creation.
pub fn parse(entries: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in entries.iter().flat_map(|e| e.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
        let entry = match raw.split_once(':') {
            Some(("task", t)) => {
                let tt = TaskType::parse(t).ok_or_else(|| {
                    format!("scope '{raw}' names an unknown task type; use e.g. task:imageInference or task:upscale")
                })?;
                format!("task:{}", tt.as_str())
            }
            Some(("model", m)) if !m.is_empty() => raw.to_string(),
            Some(("dialect", d)) if Dialect::parse(d).is_some() => raw.to_string(),
            Some(("dialect", _)) => {
                let names: Vec<&str> = Dialect::ALL.iter().map(|d| d.as_str()).collect();
                return Err(format!("scope '{raw}': dialect must be one of {}", names.join(", ")));
            }
            // AIR ids contain ':' themselves, so only known kinds are taken as prefixes.
            _ => match TaskType::parse(raw) {
                Some(tt) => format!("task:{}", tt.as_str()),
                None => {
                    return Err(format!(
                        "scope '{raw}' is not understood; use task:<taskType>, model:<AIR id> or dialect:<runware|runway>"
                    ));
                }
            },
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

fn allows(scopes: &[String], kind: &str, value: &str) -> bool {
    let prefix = format!("{kind}:");
    let mut of_kind = scopes.iter().filter_map(|s| s.strip_prefix(&prefix)).peekable();
    of_kind.peek().is_none() || of_kind.any(|v| v == value)
}

/// Whether the scopes allow a task type.
pub fn allows_task(scopes: &[String], t: TaskType) -> bool {
    allows(scopes, "task", t.as_str())
}

/// Whether the scopes allow a model.
pub fn allows_model(scopes: &[String], air: &str) -> bool {
    allows(scopes, "model", air)
}

/// Whether the scopes allow a dialect.
pub fn allows_dialect(scopes: &[String], dialect: Dialect) -> bool {
    allows(scopes, "dialect", dialect.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises_and_rejects() {
        let s = parse(&["imageInference,model:mediagate:procedural@1".into(), "task:imageUpscale".into()])
            .unwrap();
        assert_eq!(s, vec!["task:imageInference", "model:mediagate:procedural@1", "task:upscale"]);
        assert!(parse(&["task:nope".into()]).is_err());
        assert!(parse(&["dialect:grpc".into()]).is_err());
        assert!(parse(&["whatever".into()]).is_err());
    }

    #[test]
    fn kinds_restrict_independently() {
        let s = parse(&["task:upscale".into()]).unwrap();
        assert!(allows_task(&s, TaskType::Upscale));
        assert!(!allows_task(&s, TaskType::ImageInference));
        assert!(allows_model(&s, "anything"));
        assert!(allows_task(&[], TaskType::ImageInference));
    }
}
