//! The HTTP front: URL routing (core and group paths, namespaced and cluster-scoped, the
//! status subresource), verbs, query parameters and JSON responses.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::faults::{Faults, Verb};
use crate::kinds::KindInfo;
use crate::meta;
use crate::patch::{self, PatchKind};
use crate::selector::Filter;
use crate::store::Store;
use crate::write::{DeleteOptions, UpdateMode};

pub(crate) struct App {
    pub store: Store,
    pub faults: Faults,
}

pub(crate) fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/{*path}", axum::routing::any(handle))
        .with_state(app)
}

pub(crate) fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.code(), &self.to_status())
    }
}

/// A request for objects: which kind (at which version), namespace, name and subresource.
pub(crate) struct Target {
    pub info: KindInfo,
    pub version: String,
    pub ns: String,
    pub name: Option<String>,
    pub status: bool,
}

/// Splits `/api/v1/...` and `/apis/g/v/...`; `Err((code, body))` for discovery or unknown paths.
fn route(store: &Store, path: &str) -> Result<Target, (u16, Value)> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Err((200, crate::discovery::version())),
        ["api"] => return Err((200, crate::discovery::core_versions())),
        ["apis"] => return Err((200, crate::discovery::groups(store))),
        ["apis", g] => {
            return crate::discovery::group(store, g)
                .map(|v| Err((200, v)))
                .unwrap_or_else(|| Err(not_found_path(path)));
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path(path)),
    };
    if rest.is_empty() {
        return Err(match crate::discovery::resources(store, group, version) {
            Some(v) => (200, v),
            None => not_found_path(path),
        });
    }
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if *plural != "status" && *plural != "finalize" => {
            let mut r = vec![*plural];
            r.extend_from_slice(more);
            (ns.to_string(), r)
        }
        other => (String::new(), other.to_vec()),
    };
    let info = store
        .kind_for(group, version, rest[0])
        .ok_or_else(|| not_found_path(path))?;
    let (name, status) = match rest.as_slice() {
        [_] => (None, false),
        [_, name] => (Some(name.to_string()), false),
        [_, name, "status"] if info.status_subresource => (Some(name.to_string()), true),
        _ => return Err(not_found_path(path)),
    };
    if info.namespaced && name.is_some() && ns.is_empty() {
        return Err(not_found_path(path));
    }
    Ok(Target {
        info,
        version: version.to_string(),
        ns,
        name,
        status,
    })
}

fn not_found_path(path: &str) -> (u16, Value) {
    let mut e =
        ApiError::not_found("the server could not find the requested resource", path).to_status();
    e["message"] = json!(format!(
        "the server could not find the requested resource ({path})"
    ));
    (404, e)
}

/// The object as served at `version` (one store serves every version of a kind).
pub(crate) fn present(info: &KindInfo, version: &str, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert(
            "apiVersion".into(),
            Value::String(info.api_version(version)),
        );
    }
    obj
}

fn ok_obj(code: u16, t: &Target, obj: Value) -> Response {
    json_response(code, &present(&t.info, &t.version, obj))
}

async fn handle(
    AxState(app): AxState<Arc<App>>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = match route(&app.store, uri.path()) {
        Ok(t) => t,
        Err((code, body)) => {
            if code == 404 {
                app.faults.record_unserved(method.as_str(), uri.path());
            }
            return json_response(code, &body);
        }
    };
    let verb = match (&method, t.name.is_some(), t.status) {
        (&Method::GET, true, _) => Verb::Get,
        (&Method::GET, false, _)
            if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) =>
        {
            Verb::Watch
        }
        (&Method::GET, false, _) => Verb::List,
        (&Method::POST, false, _) => Verb::Create,
        (&Method::PUT, true, false) => Verb::Update,
        (&Method::PUT, true, true) => Verb::UpdateStatus,
        (&Method::PATCH, true, false) => Verb::Patch,
        (&Method::PATCH, true, true) => Verb::PatchStatus,
        (&Method::DELETE, true, false) => Verb::Delete,
        (&Method::DELETE, false, _) => Verb::DeleteCollection,
        _ => {
            return json_response(
                405,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 405, "reason": "MethodNotAllowed", "message": format!("{method} is not supported here")}),
            );
        }
    };
    if let Err(e) = app.faults.on_request(verb, &t.info.kind) {
        return e.into_response();
    }
    match serve(&app, &t, verb, &q, &headers, &body) {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))
}

fn serve(
    app: &App,
    t: &Target,
    verb: Verb,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let store = &app.store;
    let key = t.info.key();
    let name = t.name.clone().unwrap_or_default();
    let dry_run = q.contains_key("dryRun");
    match verb {
        Verb::Get => {
            let obj = store
                .get_raw(&key, &t.ns, &name)
                .ok_or_else(|| ApiError::not_found(&t.info.qualified(), &name))?;
            Ok(ok_obj(200, t, obj))
        }
        Verb::List => list(store, t, q),
        Verb::Watch => crate::watch::serve(store, t, q),
        Verb::Create => {
            let obj = parse_json(body)?;
            if dry_run {
                return Ok(ok_obj(201, t, obj));
            }
            let created = store.lock().create(&t.info, &t.ns, obj, false)?;
            Ok(ok_obj(201, t, created))
        }
        Verb::Update | Verb::UpdateStatus => {
            let obj = parse_json(body)?;
            let mode = if t.status {
                UpdateMode::Status
            } else {
                UpdateMode::Main
            };
            let updated = store.lock().update(&t.info, &t.ns, &name, obj, mode)?;
            Ok(ok_obj(200, t, updated))
        }
        Verb::Patch | Verb::PatchStatus => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchKind::from_content_type(ct)?;
            let body = patch::parse_body(kind, body)?;
            let mut st = store.lock();
            let current = st
                .objects
                .get(&key)
                .and_then(|m| m.get(&(ns_of(t), name.clone())))
                .cloned();
            let Some(current) = current else {
                if kind == PatchKind::Apply && !t.status {
                    let mut obj = body;
                    meta::meta_mut(&mut obj).insert("name".into(), json!(name));
                    let created = st.create(&t.info, &t.ns, obj, false)?;
                    return Ok(ok_obj(201, t, created));
                }
                return Err(ApiError::not_found(&t.info.qualified(), &name));
            };
            let patched = patch::apply(kind, &current, &body)?;
            let mode = if t.status {
                UpdateMode::Status
            } else {
                UpdateMode::Main
            };
            let updated = st.update(&t.info, &t.ns, &name, patched, mode)?;
            Ok(ok_obj(200, t, updated))
        }
        Verb::Delete => {
            let opts = delete_options(q, body);
            let deleted = store.lock().delete(&t.info, &t.ns, &name, &opts)?;
            Ok(ok_obj(200, t, deleted))
        }
        Verb::DeleteCollection => {
            let filter = Filter::parse(
                q.get("labelSelector").map(String::as_str),
                q.get("fieldSelector").map(String::as_str),
            )?;
            let ns = t
                .info
                .namespaced
                .then_some(t.ns.as_str())
                .filter(|n| !n.is_empty());
            let (items, _) = store.list_raw_at(&key, ns, &filter);
            let opts = delete_options(q, body);
            let mut st = store.lock();
            let mut out = Vec::new();
            for item in items {
                if let Ok(o) = st.delete(&t.info, meta::namespace(&item), meta::name(&item), &opts)
                {
                    out.push(present(&t.info, &t.version, o));
                }
            }
            let rv = st.rv;
            Ok(json_response(200, &list_body(t, out, rv, None)))
        }
    }
}

fn ns_of(t: &Target) -> String {
    if t.info.namespaced {
        t.ns.clone()
    } else {
        String::new()
    }
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> DeleteOptions {
    let b: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    DeleteOptions {
        propagation: b["propagationPolicy"]
            .as_str()
            .map(str::to_string)
            .or_else(|| q.get("propagationPolicy").cloned()),
        precondition_uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

fn list_body(t: &Target, items: Vec<Value>, rv: u64, cont: Option<String>) -> Value {
    let mut md = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        md["continue"] = json!(c);
    }
    json!({
        "apiVersion": t.info.api_version(&t.version),
        "kind": format!("{}List", t.info.kind),
        "metadata": md,
        "items": items,
    })
}

/// List with selectors and `limit`/`continue` paging (continue = offset into the
/// name-ordered result; good enough for a store that tests mutate slowly).
fn list(store: &Store, t: &Target, q: &HashMap<String, String>) -> Result<Response, ApiError> {
    let filter = Filter::parse(
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    )?;
    let ns = t
        .info
        .namespaced
        .then_some(t.ns.as_str())
        .filter(|n| !n.is_empty());
    let (items, rv) = store.list_raw_at(&t.info.key(), ns, &filter);
    let offset: usize = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid continue token {c:?}")))?,
        None => 0,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|o| present(&t.info, &t.version, o))
        .collect();
    let next = offset.saturating_add(limit);
    let cont = (next < total).then(|| next.to_string());
    Ok(json_response(200, &list_body(t, page, rv, cont)))
}
