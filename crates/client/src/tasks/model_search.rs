//! `modelSearch`: the server's model catalog, filtered and paged.

use super::Task;
use crate::error::Error;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// `modelSearch`: list the models this key may use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSearch {
    task_type: &'static str,
    #[serde(rename = "taskUUID")]
    task_uuid: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u32>,
}

impl ModelSearch {
    /// Every model (the first page of 20).
    pub fn new() -> Self {
        ModelSearch { task_type: "modelSearch", task_uuid: Uuid::new_v4(), ..Default::default() }
    }

    /// `search`: words found in the AIR id, name or description.
    pub fn search(mut self, words: impl Into<String>) -> Self {
        self.search = Some(words.into());
        self
    }

    /// `tags`: tags the model must all have.
    pub fn tags(mut self, tags: Vec<String>) -> Self {
        self.tags = tags;
        self
    }

    /// `category`: `checkpoint` for generation models, else a task type.
    pub fn category(mut self, c: impl Into<String>) -> Self {
        self.category = Some(c.into());
        self
    }

    /// `type`: the task type the model serves.
    pub fn task_type_filter(mut self, t: impl Into<String>) -> Self {
        self.kind = Some(t.into());
        self
    }

    /// `limit` (1–100) and `offset`: the page.
    pub fn page(mut self, limit: u32, offset: u32) -> Self {
        self.limit = Some(limit);
        self.offset = Some(offset);
        self
    }
}

/// A model as `modelSearch` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// `air`: what tasks send as `model`.
    pub air: String,
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// `category`.
    pub category: String,
    /// `tags`.
    pub tags: Vec<String>,
    /// `comment`: what the model is.
    pub comment: String,
    /// Every other field, verbatim.
    pub extra: Map<String, Value>,
}

/// A page of a model search.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPage {
    /// `totalResults`: how many models match in all.
    pub total: u64,
    /// `results`: this page.
    pub models: Vec<ModelInfo>,
}

impl Task for ModelSearch {
    type Output = ModelPage;

    fn task_type(&self) -> &str {
        self.task_type
    }

    fn task_uuid(&self) -> Uuid {
        self.task_uuid
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a task serializes")
    }

    fn parse_output(items: Vec<Value>) -> Result<ModelPage, Error> {
        let item =
            items.first().ok_or_else(|| Error::Protocol("the response has no modelSearch item".into()))?;
        let bad = || Error::Protocol(format!("an unreadable modelSearch item: {item}"));
        let total = item["totalResults"].as_u64().ok_or_else(bad)?;
        let models = item["results"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|m| {
                let Value::Object(mut extra) = m.clone() else { return Err(bad()) };
                let mut string = |k: &str| match extra.remove(k) {
                    Some(Value::String(s)) => Ok(s),
                    _ => Err(bad()),
                };
                Ok(ModelInfo {
                    air: string("air")?,
                    name: string("name")?,
                    version: string("version")?,
                    category: string("category")?,
                    comment: string("comment")?,
                    tags: extra
                        .remove("tags")
                        .and_then(|t| serde_json::from_value(t).ok())
                        .unwrap_or_default(),
                    extra,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ModelPage { total, models })
    }
}
