//! The catalog as `modelSearch` lists it: filters over the models, then one page.

use crate::catalog::{Catalog, Model};
use mediagate_core::task::TaskType;

/// Who may see a model in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Every model (all of this server's are public to its accounts).
    #[default]
    All,
    /// Public models: all of them.
    Public,
    /// Models private to the account: none, as accounts cannot add models.
    Private,
}

/// What a model search asks for. Every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct ModelQuery {
    /// Words found, case-insensitively, in the AIR id, the name or the description.
    pub search: Option<String>,
    /// Tags the model must all have.
    pub tags: Vec<String>,
    /// Its category (`checkpoint` for generation models, else its task type).
    pub category: Option<String>,
    /// Its type (its task type).
    pub kind: Option<String>,
    /// Its architecture (none is stated for this server's models, so any value matches none).
    pub architecture: Option<String>,
    /// Its ControlNet conditioning (none here, likewise).
    pub conditioning: Option<String>,
    /// Public, private or all.
    pub visibility: Visibility,
    /// The page size.
    pub limit: usize,
    /// Models skipped before the page.
    pub offset: usize,
}

/// How a listing describes a model.
#[derive(Debug, Clone)]
pub struct Listing<'a> {
    /// The catalog entry.
    pub model: &'a Model,
    /// The id part of its AIR id (`procedural` in `mediagate:procedural@1`).
    pub name: &'a str,
    /// The version part (`1`), empty when the AIR id has none.
    pub version: &'a str,
    /// `checkpoint` for image and video generation models, else the task type's name.
    pub category: &'static str,
    /// Its task type's name and its provider's.
    pub tags: Vec<String>,
}

impl<'a> Listing<'a> {
    fn of(model: &'a Model) -> Self {
        let air = model.spec.air.as_str();
        let id = air.split_once(':').map_or(air, |(_, rest)| rest);
        let (name, version) = id.split_once('@').unwrap_or((id, ""));
        let task_type = model.spec.task_type;
        let category = match task_type {
            TaskType::ImageInference | TaskType::VideoInference => "checkpoint",
            other => other.as_str(),
        };
        Listing {
            model,
            name,
            version,
            category,
            tags: vec![task_type.as_str().to_string(), model.spec.provider.clone()],
        }
    }

    fn matches(&self, q: &ModelQuery) -> bool {
        let spec = &self.model.spec;
        let words_found = q.search.as_deref().is_none_or(|s| {
            let haystack = format!("{} {} {}", spec.air, self.name, spec.description).to_lowercase();
            s.to_lowercase().split_whitespace().all(|w| haystack.contains(w))
        });
        words_found
            && q.tags.iter().all(|t| self.tags.iter().any(|have| have.eq_ignore_ascii_case(t)))
            && q.category.as_deref().is_none_or(|c| c.eq_ignore_ascii_case(self.category))
            && q.kind.as_deref().is_none_or(|k| k.eq_ignore_ascii_case(spec.task_type.as_str()))
            && q.architecture.is_none()
            && q.conditioning.is_none()
            && q.visibility != Visibility::Private
    }
}

impl Catalog {
    /// The models matching `q` that `visible` lets the caller see, by AIR id: how many match in
    /// all, and the page `q.offset .. q.offset + q.limit`.
    pub fn search<'a>(
        &'a self,
        q: &ModelQuery,
        visible: impl Fn(&Model) -> bool,
    ) -> (usize, Vec<Listing<'a>>) {
        let matching: Vec<Listing<'a>> =
            self.models().filter(|m| visible(m)).map(Listing::of).filter(|l| l.matches(q)).collect();
        let total = matching.len();
        (total, matching.into_iter().skip(q.offset).take(q.limit).collect())
    }
}

impl crate::Engine {
    /// The models this key may use that match `q` (`modelSearch`): how many in all, and the page.
    pub fn model_search(&self, ctx: &crate::AuthContext, q: &ModelQuery) -> (usize, Vec<Listing<'_>>) {
        self.catalog().search(q, |m| {
            crate::scopes::allows_task(&ctx.scopes, m.spec.task_type)
                && crate::scopes::allows_model(&ctx.scopes, &m.spec.air)
        })
    }
}
