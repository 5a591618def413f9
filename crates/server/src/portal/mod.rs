//! The developer portal at `/portal`: HTML pages served by the server itself (no frontend
//! build), for people rather than programs.
//!
//! Signed in with an API key, a browser sees its account: keys (list, create, disable, enable,
//! revoke), usage (balance, spend per day per model, limits and current usage, storage) and
//! request history (the history API's list and task details, as pages).
//! Signed in with an admin key, it sees the operator's pages: accounts, credit grants, limits.
//!
//! Safe by construction:
//! - every page is a `maud` template, which escapes every interpolated value;
//! - every response under `/portal` carries [`CSP`] (no inline script or style runs), and
//!   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store`,
//!   `X-Content-Type-Options: nosniff` ([`security_headers`]); CSS and JS are static files
//!   compiled into the binary;
//! - the session is an id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the public
//!   base URL is `https://`), kept server-side as a digest ([`sessions`]), with an absolute
//!   expiry; the key signed in with is never stored, shown or logged;
//! - every POST form carries the session's synchronizer token, checked in constant time (403
//!   otherwise); the sign-in form, which has no session yet, refuses cross-site posts by their
//!   `Sec-Fetch-Site` header;
//! - sign-in goes through the API's authentication, throttle of failing addresses included,
//!   and a wrong key gets one generic answer;
//! - only a key without scope restrictions manages keys (a scoped key could otherwise make a
//!   broader one); a scoped key sees the keys read-only.
//!
//! The routes are HTML pages, not API operations: they are left out of the OpenAPI document on
//! purpose ([`ROUTES`] lists them; tests/openapi.rs checks both sides of that rule). They are
//! operator-like routes: not held to the in-flight limit of the work routes.

mod chart;
pub mod sessions;
mod views;

use crate::AppState;
use crate::client_addr::ClientAddr;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, RawForm, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use mediagate_core::ApiError;
use mediagate_store::{AccountStatus, KeyStatus};
use sessions::{Role, Session, SessionError};
use std::collections::HashMap;
use std::sync::Arc;

/// The `Content-Security-Policy` of every portal response.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The session cookie's name.
pub const COOKIE: &str = "mg_portal";

/// The portal's routes (method and path as routed), none of them in the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/portal"),
    ("POST", "/portal/sign-in"),
    ("POST", "/portal/sign-out"),
    ("GET", "/portal/keys"),
    ("POST", "/portal/keys"),
    ("POST", "/portal/keys/{id}/{action}"),
    ("GET", "/portal/usage"),
    ("GET", "/portal/history"),
    ("GET", "/portal/history/{id}"),
    ("GET", "/portal/operator"),
    ("POST", "/portal/operator/accounts"),
    ("GET", "/portal/operator/accounts/{name}"),
    ("POST", "/portal/operator/accounts/{name}/status"),
    ("POST", "/portal/operator/accounts/{name}/credits"),
    ("POST", "/portal/operator/accounts/{name}/limits"),
    ("GET", "/portal/static/portal.css"),
    ("GET", "/portal/static/portal.js"),
];

const CSS: &str = include_str!("static/portal.css");
const JS: &str = include_str!("static/portal.js");

/// The portal's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/sign-in", post(sign_in))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/keys", get(keys_page).post(create_key))
        .route("/portal/keys/{id}/{action}", post(key_action))
        .route("/portal/usage", get(usage_page))
        .route("/portal/history", get(history_page))
        .route("/portal/history/{id}", get(task_page))
        .route("/portal/operator", get(operator_page))
        .route("/portal/operator/accounts", post(create_account))
        .route("/portal/operator/accounts/{name}", get(account_page))
        .route("/portal/operator/accounts/{name}/status", post(account_status))
        .route("/portal/operator/accounts/{name}/credits", post(grant))
        .route("/portal/operator/accounts/{name}/limits", post(set_limits))
        .route(
            "/portal/static/portal.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
        .route(
            "/portal/static/portal.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }),
        )
        .route("/portal/{*rest}", axum::routing::any(not_found))
}

/// Whether a path is the portal's.
fn is_portal(path: &str) -> bool {
    path == "/portal" || path.starts_with("/portal/")
}

/// Sets the portal's security headers on every response under `/portal` (the router's own
/// fallbacks included).
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let portal = is_portal(req.uri().path());
    let mut r = next.run(req).await;
    if portal {
        let h = r.headers_mut();
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    r
}

/// A refusal answered instead of the page (boxed: a `Response` is large).
type Refused = Box<Response>;

fn html(status: StatusCode, page: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page.into_string()).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> String {
    let secure = if state.base_url.starts_with("https://") { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/portal; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

fn clear_cookie(state: &AppState) -> String {
    cookie(state, "", 0)
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')).map(str::to_string))
        .filter(|v| !v.is_empty())
}

/// The sign-in page, `status` and an optional message; clears a stale cookie.
fn sign_in_page(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let mut r = html(status, views::sign_in(message));
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(state)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A signed-in browser: its session and the cookie's id.
pub struct Signed {
    id: String,
    session: Session,
}

impl Signed {
    fn nav(&self) -> views::Nav<'_> {
        views::Nav { operator: matches!(self.session.role, Role::Operator { .. }), csrf: &self.session.csrf }
    }

    /// Refuses a form whose synchronizer token is missing or wrong (403).
    fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), Refused> {
        match form.get("csrf") {
            Some(t) if self.session.csrf_matches(t) => Ok(()),
            _ => Err(Box::new(html(
                StatusCode::FORBIDDEN,
                views::message(
                    "Form refused",
                    "This form did not carry this session's security token (it may come from another site, \
                     or from a page older than your sign-in). Reload the page and try again.",
                    Some(self.nav()),
                ),
            ))),
        }
    }
}

/// Whether the key a session was made with still works (not disabled, revoked, or of a
/// suspended account): a change to the key ends its sessions too.
async fn still_valid(state: &AppState, role: &Role) -> Result<bool, ApiError> {
    let store = state.engine.store();
    let failed = |e: mediagate_store::StoreError| mediagate_engine::store_failure(&e);
    Ok(match role {
        Role::Account { account_name, key_id, .. } => {
            let key_ok = store
                .list_keys(Some(account_name))
                .await
                .map_err(failed)?
                .iter()
                .any(|k| k.id == *key_id && k.status == KeyStatus::Active);
            key_ok
                && store
                    .account_by_name(account_name)
                    .await
                    .map_err(failed)?
                    .is_some_and(|a| a.status == AccountStatus::Active)
        }
        Role::Operator { admin_key_id } => store
            .list_admin_keys()
            .await
            .map_err(failed)?
            .iter()
            .any(|k| k.id == *admin_key_id && k.status == KeyStatus::Active),
    })
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ended = || {
            sign_in_page(
                state,
                StatusCode::UNAUTHORIZED,
                Some("You are not signed in, or your session has ended. Sign in again."),
            )
        };
        let id = session_id(&parts.headers).ok_or_else(ended)?;
        let session = state.portal.get(&id).ok_or_else(ended)?;
        match still_valid(state, &session.role).await {
            Ok(true) => Ok(Signed { id, session }),
            Ok(false) => {
                state.portal.remove(&id);
                Err(ended())
            }
            Err(e) => Err(failure(&e, None)),
        }
    }
}

/// A page for an error of the engine or the store.
fn failure(e: &ApiError, nav: Option<views::Nav<'_>>) -> Response {
    let status = crate::catalog_status(e.http_status());
    html(status, views::message("That did not work", &e.message, nav))
}

async fn not_found() -> Response {
    not_found_page(None)
}

fn not_found_page(nav: Option<views::Nav<'_>>) -> Response {
    html(StatusCode::NOT_FOUND, views::message("No such page", "The portal has no page here.", nav))
}

async fn home(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(id) = session_id(&headers) else {
        return html(StatusCode::OK, views::sign_in(None));
    };
    match s.portal.get(&id) {
        Some(session) => match session.role {
            Role::Operator { .. } => redirect("/portal/operator"),
            Role::Account { .. } => redirect("/portal/keys"),
        },
        None => sign_in_page(&s, StatusCode::OK, Some("Your session has ended. Sign in again.")),
    }
}

fn parse_form(raw: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw).unwrap_or_default().into_iter().collect()
}

async fn sign_in(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    // No session yet, so no synchronizer token: a cross-site post (login CSRF) is told apart by
    // the header every current browser sends. Clients that send none are not browsers.
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return html(
            StatusCode::FORBIDDEN,
            views::message("Form refused", "Sign in from the portal's own page.", None),
        );
    }
    let form = parse_form(&raw);
    let key = form.get("key").map(|k| k.trim()).unwrap_or("");
    let role = if key.starts_with(mediagate_engine::admin_keys::PREFIX) {
        s.engine.authenticate_admin(key, client).await.map(|k| Role::Operator { admin_key_id: k.id })
    } else {
        s.engine.authenticate_client(key, client).await.map(|ctx| Role::Account {
            account_id: ctx.account_id,
            account_name: ctx.account_name.clone(),
            key_id: ctx.key_id,
            scopes: ctx.scopes.clone(),
        })
    };
    let role = match role {
        Ok(r) => r,
        Err(e) if e.http_status() == 429 => {
            let wait = e.retry_after().map_or(1, |w| w.as_secs().max(1));
            let mut r = sign_in_page(
                &s,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!("Too many failed sign-ins from this address. Try again in {wait} s.")),
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return r;
        }
        // One answer for every refusal (unknown, malformed, disabled, revoked, suspended): the
        // page neither echoes the key nor says which it was.
        Err(e) if e.http_status() == 401 => {
            return sign_in_page(&s, StatusCode::UNAUTHORIZED, Some("This key is not valid."));
        }
        Err(e) => return failure(&e, None),
    };
    let home = match role {
        Role::Operator { .. } => "/portal/operator",
        Role::Account { .. } => "/portal/keys",
    };
    // A sign-in replaces the browser's earlier session, if any (a fresh id every time).
    if let Some(old) = session_id(&headers) {
        s.portal.remove(&old);
    }
    match s.portal.create(role) {
        Ok((id, _)) => {
            let mut r = redirect(home);
            if let Ok(v) = HeaderValue::from_str(&cookie(&s, &id, s.portal.ttl().as_secs())) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e @ SessionError::Full(_)) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            views::message("The portal is full", &format!("Sign-in refused: {e}."), None),
        ),
        Err(e) => {
            tracing::error!(error = %e, "portal session not created");
            html(StatusCode::INTERNAL_SERVER_ERROR, views::message("That did not work", "Try again.", None))
        }
    }
}

async fn sign_out(State(s): State<AppState>, signed: Signed, RawForm(raw): RawForm) -> Response {
    if let Err(r) = signed.check_csrf(&parse_form(&raw)) {
        return *r;
    }
    s.portal.remove(&signed.id);
    let mut r = redirect("/portal");
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(&s)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The account of an account session; operators are sent to their own pages.
fn account_of(signed: &Signed) -> Result<(&str, i64, &[String]), Refused> {
    match &signed.session.role {
        Role::Account { account_name, key_id, scopes, .. } => Ok((account_name, *key_id, scopes)),
        Role::Operator { .. } => Err(Box::new(redirect("/portal/operator"))),
    }
}

async fn keys_page(State(s): State<AppState>, signed: Signed) -> Response {
    render_keys(&s, &signed, None, StatusCode::OK).await
}

async fn render_keys(
    s: &AppState,
    signed: &Signed,
    note: Option<views::KeyNote>,
    status: StatusCode,
) -> Response {
    let (account, key_id, scopes) = match account_of(signed) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match s.engine.admin().list_keys(Some(account)).await {
        Ok(keys) => html(status, views::keys(signed.nav(), account, key_id, scopes, &keys, note)),
        Err(e) => failure(&crate::admin_api::admin_error(e), Some(signed.nav())),
    }
}

/// Refuses key changes to a scoped session (see the module's policy).
fn may_manage_keys(signed: &Signed) -> Result<&str, Refused> {
    let (account, _, scopes) = account_of(signed)?;
    if scopes.is_empty() {
        Ok(account)
    } else {
        Err(Box::new(html(
            StatusCode::FORBIDDEN,
            views::message(
                "Read-only",
                "This session's key has scope restrictions, so it cannot manage keys: it could otherwise \
                 create a key broader than itself. Sign in with a key without scope restrictions.",
                Some(signed.nav()),
            ),
        )))
    }
}

async fn create_key(State(s): State<AppState>, signed: Signed, RawForm(raw): RawForm) -> Response {
    let form = parse_form(&raw);
    if let Err(r) = signed.check_csrf(&form) {
        return *r;
    }
    let account = match may_manage_keys(&signed) {
        Ok(a) => a.to_string(),
        Err(r) => return *r,
    };
    let description = form.get("description").map(|d| d.trim()).unwrap_or("");
    let scopes: Vec<String> = form.get("scopes").map(|s| vec![s.clone()]).unwrap_or_default();
    match s.engine.admin().create_key(&account, description, &scopes).await {
        Ok(k) => {
            let note = views::KeyNote::Created { prefix: k.record.prefix.clone(), secret: k.secret };
            render_keys(&s, &signed, Some(note), StatusCode::OK).await
        }
        Err(e) => {
            let e = crate::admin_api::admin_error(e);
            render_keys(&s, &signed, Some(views::KeyNote::Error(e.message.clone())), StatusCode::BAD_REQUEST)
                .await
        }
    }
}

async fn key_action(
    State(s): State<AppState>,
    signed: Signed,
    Path((id, action)): Path<(String, String)>,
    RawForm(raw): RawForm,
) -> Response {
    if let Err(r) = signed.check_csrf(&parse_form(&raw)) {
        return *r;
    }
    let account = match may_manage_keys(&signed) {
        Ok(a) => a.to_string(),
        Err(r) => return *r,
    };
    let status = match action.as_str() {
        "disable" => KeyStatus::Disabled,
        "enable" => KeyStatus::Active,
        "revoke" => KeyStatus::Revoked,
        _ => return not_found_page(Some(signed.nav())),
    };
    // Only the account's own keys: the id is checked against its list, not trusted.
    let own = match s.engine.admin().list_keys(Some(&account)).await {
        Ok(keys) => keys.into_iter().find(|k| id.parse() == Ok(k.id)),
        Err(e) => return failure(&crate::admin_api::admin_error(e), Some(signed.nav())),
    };
    let Some(key) = own else { return not_found_page(Some(signed.nav())) };
    if key.status == KeyStatus::Revoked {
        let note = views::KeyNote::Error("A revoked key stays revoked.".into());
        return render_keys(&s, &signed, Some(note), StatusCode::CONFLICT).await;
    }
    match s.engine.admin().set_key_status(key.id, status).await {
        Ok(_) => redirect("/portal/keys"),
        Err(e) => failure(&crate::admin_api::admin_error(e), Some(signed.nav())),
    }
}

async fn usage_page(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (account_id, account) = match &signed.session.role {
        Role::Account { account_id, account_name, .. } => (*account_id, account_name.as_str()),
        Role::Operator { .. } => return redirect("/portal/operator"),
    };
    let date = |k: &str| {
        q.get(k).filter(|v| !v.is_empty()).map(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d"))
    };
    let mut problems = Vec::new();
    let from = match date("from") {
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            problems.push("The start date is not a date (YYYY-MM-DD).".to_string());
            None
        }
        None => None,
    };
    // The form's end date is inclusive; the window's end is not.
    let before = match date("to") {
        Some(Ok(d)) => d.succ_opt(),
        Some(Err(_)) => {
            problems.push("The end date is not a date (YYYY-MM-DD).".to_string());
            None
        }
        None => None,
    };
    let today = chrono::Utc::now().date_naive();
    let (mut start, mut before, issues) = crate::runway::organization::usage_window(from, before, today);
    if !issues.is_empty() {
        problems.extend(issues.into_iter().map(|i| {
            i.message
                .replace("beforeDate", "the day after the end date")
                .replace("startDate", "the start date")
        }));
        (start, before, _) = crate::runway::organization::usage_window(None, None, today);
    }
    let org = match crate::runway::organization::Organization::of(&s, account_id).await {
        Ok(o) => o,
        Err(e) => return failure(&e, Some(signed.nav())),
    };
    let rows = match crate::runway::organization::spend_by_day(&s, account_id, start, before).await {
        Ok(r) => r,
        Err(e) => return failure(&e, Some(signed.nav())),
    };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    html(status, views::usage(signed.nav(), account, &org, start, before, &rows, &problems))
}

/// The caller an account session reads history as (the engine restricts a scoped key to the
/// tasks it sent itself, as on the history API).
fn history_viewer(signed: &Signed) -> Result<mediagate_engine::AuthContext, Refused> {
    match &signed.session.role {
        Role::Account { account_id, account_name, key_id, scopes } => Ok(mediagate_engine::AuthContext {
            account_id: *account_id,
            account_name: account_name.clone(),
            key_id: *key_id,
            scopes: scopes.clone(),
        }),
        Role::Operator { .. } => Err(Box::new(redirect("/portal/operator"))),
    }
}

/// `GET /portal/history`: the history API's list, its filters as a GET form. The form's dates
/// (`YYYY-MM-DD`, UTC) become the API's times: `since` from the start of its day, `until` to
/// the end of its day.
async fn history_page(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ctx = match history_viewer(&signed) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let form: HashMap<String, String> =
        q.into_iter().map(|(k, v)| (k, v.trim().to_string())).filter(|(_, v)| !v.is_empty()).collect();
    let mut query = form.clone();
    for (k, end_of_day) in [("since", false), ("until", true)] {
        if let Some(d) = form.get(k).and_then(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()) {
            let d = if end_of_day { d.succ_opt().unwrap_or(d) } else { d };
            let ms = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default();
            query.insert(k.to_string(), ms.to_string());
        }
    }
    let keys = s.engine.admin().list_keys(Some(&ctx.account_name)).await.unwrap_or_default();
    let result = async {
        let parsed = crate::history::parse_query(&query, &[])?;
        s.engine.history(mediagate_engine::history::Viewer::Key(&ctx), parsed).await
    }
    .await;
    match result {
        Ok(page) => {
            let next = page.next_cursor.as_ref().map(|c| {
                let mut params: Vec<(&str, &str)> = form
                    .iter()
                    .filter(|(k, _)| *k != "cursor")
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                params.sort();
                params.push(("cursor", c));
                format!("/portal/history?{}", serde_urlencoded::to_string(&params).unwrap_or_default())
            });
            html(
                StatusCode::OK,
                views::history(signed.nav(), &form, &keys, Some(&page), next.as_deref(), None),
            )
        }
        Err(e) => html(
            crate::catalog_status(e.http_status()),
            views::history(signed.nav(), &form, &keys, None, None, Some(&e.message)),
        ),
    }
}

/// `GET /portal/history/{taskUUID}`: one task as the history API shows it.
async fn task_page(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Response {
    let ctx = match history_viewer(&signed) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(uuid) = uuid::Uuid::try_parse(&id) else {
        return html(
            StatusCode::BAD_REQUEST,
            views::message("Not a taskUUID", "Tasks are named by their taskUUID.", Some(signed.nav())),
        );
    };
    match s.engine.history_task(mediagate_engine::history::Viewer::Key(&ctx), uuid).await {
        Ok(d) => {
            let record = d.view.record.clone();
            let details = crate::history::details_json(&s, d);
            html(StatusCode::OK, views::task(signed.nav(), &record, &details))
        }
        Err(e) => failure(&e, Some(signed.nav())),
    }
}

/// The operator's session, or a refusal.
fn operator(signed: &Signed) -> Result<(), Refused> {
    match signed.session.role {
        Role::Operator { .. } => Ok(()),
        Role::Account { .. } => Err(Box::new(html(
            StatusCode::FORBIDDEN,
            views::message(
                "Operators only",
                "These pages need a sign-in with an admin key.",
                Some(signed.nav()),
            ),
        ))),
    }
}

async fn operator_page(State(s): State<AppState>, signed: Signed) -> Response {
    if let Err(r) = operator(&signed) {
        return *r;
    }
    match s.engine.admin().list_accounts().await {
        Ok(accounts) => html(StatusCode::OK, views::operator(signed.nav(), &accounts)),
        Err(e) => failure(&crate::admin_api::admin_error(e), Some(signed.nav())),
    }
}

/// Checks an operator's form; `Ok` carries the form.
fn operator_form(signed: &Signed, raw: &[u8]) -> Result<HashMap<String, String>, Refused> {
    operator(signed)?;
    let form = parse_form(raw);
    signed.check_csrf(&form)?;
    Ok(form)
}

fn field<'f>(form: &'f HashMap<String, String>, name: &str) -> Option<&'f str> {
    form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

async fn create_account(State(s): State<AppState>, signed: Signed, RawForm(raw): RawForm) -> Response {
    let form = match operator_form(&signed, &raw) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let name = field(&form, "name").unwrap_or("");
    match s.engine.admin().create_account(name, field(&form, "credit").unwrap_or("0")).await {
        Ok(_) => redirect("/portal/operator"),
        Err(e) => failure(&crate::admin_api::admin_error(e), Some(signed.nav())),
    }
}

fn account_href(name: &str) -> String {
    format!("/portal/operator/accounts/{}", views::path_segment(name))
}

async fn account_status(
    State(s): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
    RawForm(raw): RawForm,
) -> Response {
    let form = match operator_form(&signed, &raw) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let status = match field(&form, "status") {
        Some("suspended") => AccountStatus::Suspended,
        Some("active") => AccountStatus::Active,
        _ => {
            let e = ApiError::new(
                mediagate_core::ErrorCode::InvalidParameterValue,
                "Choose active or suspended.",
            );
            return failure(&e, Some(signed.nav()));
        }
    };
    match s.engine.admin().set_account_status(&name, status).await {
        Ok(_) => redirect("/portal/operator"),
        Err(e) => failure(&crate::admin_api::admin_error(e), Some(signed.nav())),
    }
}

async fn account_page(State(s): State<AppState>, signed: Signed, Path(name): Path<String>) -> Response {
    if let Err(r) = operator(&signed) {
        return *r;
    }
    let admin = s.engine.admin();
    let result = async {
        let (account, ledger) = admin.credits(&name, 20).await.map_err(crate::admin_api::admin_error)?;
        let overrides = admin.limit_overrides(Some(&name)).await.map_err(crate::admin_api::admin_error)?;
        let org = crate::runway::organization::Organization::of(&s, account.id).await?;
        Ok::<_, ApiError>((account, ledger, overrides, org))
    }
    .await;
    match result {
        Ok((account, ledger, overrides, org)) => {
            html(StatusCode::OK, views::account(signed.nav(), &account, &ledger, &overrides, &org))
        }
        Err(e) => failure(&e, Some(signed.nav())),
    }
}

async fn grant(
    State(s): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
    RawForm(raw): RawForm,
) -> Response {
    let form = match operator_form(&signed, &raw) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let note = field(&form, "note").unwrap_or("granted in the portal");
    match s.engine.admin().grant(&name, field(&form, "usd").unwrap_or(""), note).await {
        Ok(_) => redirect(&account_href(&name)),
        Err(e) => failure(&crate::admin_api::admin_error(e), Some(signed.nav())),
    }
}

async fn set_limits(
    State(s): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
    RawForm(raw): RawForm,
) -> Response {
    let form = match operator_form(&signed, &raw) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let mut bad = Vec::new();
    let mut num = |key: &str| -> Option<u32> {
        let v = field(&form, key)?;
        v.parse().map_err(|_| bad.push(format!("{key}: '{v}' is not a whole number"))).ok()
    };
    let mut req = crate::admin_api::SetLimits {
        model: field(&form, "model").map(str::to_string),
        max_concurrent: num("maxConcurrent"),
        max_queued: num("maxQueued"),
        max_daily: num("maxDaily"),
        key_burst: num("keyBurst"),
        account_burst: num("accountBurst"),
        max_monthly_spend_usd: field(&form, "maxMonthlySpendUsd").map(str::to_string),
        ..Default::default()
    };
    for (key, slot) in
        [("keyRatePerSec", &mut req.key_rate_per_sec), ("accountRatePerSec", &mut req.account_rate_per_sec)]
    {
        if let Some(v) = field(&form, key) {
            match v.parse() {
                Ok(n) => *slot = Some(n),
                Err(_) => bad.push(format!("{key}: '{v}' is not a number")),
            }
        }
    }
    if !bad.is_empty() {
        let e = ApiError::new(mediagate_core::ErrorCode::InvalidParameterValue, bad.join("; "));
        return failure(&e, Some(signed.nav()));
    }
    match crate::admin_api::apply_limits(&s, &name, req).await {
        Ok(()) => redirect(&account_href(&name)),
        Err(e) => failure(&e, Some(signed.nav())),
    }
}

/// The portal's session table, built from `[portal]`.
pub(crate) fn sessions_from(config: &mediagate_engine::config::PortalConfig) -> Arc<sessions::Sessions> {
    let s = Arc::new(sessions::Sessions::new(
        std::time::Duration::from_secs(config.session_ttl_secs),
        config.max_sessions,
    ));
    s.sweep_forever(std::time::Duration::from_secs(60));
    s
}
