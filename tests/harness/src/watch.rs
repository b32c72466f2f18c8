//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events, replayed from the
//! history after the requested resourceVersion, then live; BOOKMARKs when asked; an `ERROR`
//! event with a 410 `Status` (what kube's watcher turns into a relist) when the
//! resourceVersion is older than the retained history or the stream falls behind.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::http::{Target, present};
use crate::kinds::KindInfo;
use crate::meta;
use crate::selector::Filter;
use crate::store::{Change, ChangeKind, Store};

/// How often an idle watch that allows bookmarks gets one (the apiserver: about a minute;
/// shorter here so resumed watches rarely start from a compacted resourceVersion).
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

struct Scope {
    info: KindInfo,
    version: String,
    ns: Option<String>,
    filter: Filter,
}

impl Scope {
    fn sees(&self, obj: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| meta::namespace(obj) == ns)
            && self.filter.matches(obj)
    }

    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let ev = json!({"type": kind, "object": present(&self.info, &self.version, obj.clone())});
        Bytes::from(format!("{ev}\n"))
    }

    /// The event this watch sees for a change, if any (selector transitions become
    /// ADDED/DELETED as in the apiserver's watch cache).
    fn event(&self, c: &Change) -> Option<Bytes> {
        let now = self.sees(&c.object);
        let kind = match c.kind {
            ChangeKind::Added => now.then_some("ADDED"),
            ChangeKind::Deleted => now.then_some("DELETED"),
            ChangeKind::Modified => match (c.old.as_ref().is_some_and(|o| self.sees(o)), now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }?;
        Some(self.line(kind, &c.object))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"apiVersion": self.info.api_version(&self.version), "kind": self.info.kind, "metadata": md});
        Bytes::from(format!("{}\n", json!({"type": "BOOKMARK", "object": obj})))
    }
}

fn gone_line(rv: u64, current: u64) -> Bytes {
    let mut status = ApiError::Gone(rv).to_status();
    status["message"] = json!(format!("too old resource version: {rv} ({current})"));
    Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status})))
}

fn stream_response(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

pub(crate) fn serve(
    store: &Store,
    t: &Target,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filter = Filter::parse(
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    )?;
    let scope = Scope {
        info: t.info.clone(),
        version: t.version.clone(),
        ns: (t.info.namespaced && !t.ns.is_empty()).then(|| t.ns.clone()),
        filter,
    };
    let flag = |k: &str| matches!(q.get(k).map(String::as_str), Some("true" | "1"));
    let bookmarks = flag("allowWatchBookmarks");
    let send_initial = flag("sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let rv = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(_) if send_initial => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
        ),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let crate::store::WatchStart {
        backlog,
        rv: start_rv,
        live,
    } = match store.watch_from(&t.info.key(), rv) {
        Ok(v) => v,
        Err(ApiError::Gone(old)) => {
            let current = store.resource_version();
            tokio::spawn(async move {
                let _ = tx.send(Ok(gone_line(old, current))).await;
            });
            return Ok(stream_response(rx));
        }
        Err(e) => return Err(e),
    };
    let stop = store.watch_epoch();
    tokio::spawn(pump(
        scope,
        backlog,
        start_rv,
        (live, stop),
        tx,
        bookmarks,
        send_initial,
        timeout,
    ));
    Ok(stream_response(rx))
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
async fn pump(
    scope: Scope,
    backlog: Vec<Arc<Change>>,
    start_rv: u64,
    (mut live, mut stop): (
        broadcast::Receiver<Arc<Change>>,
        tokio::sync::watch::Receiver<u64>,
    ),
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    bookmarks: bool,
    send_initial: bool,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    for c in &backlog {
        if let Some(line) = scope.event(c)
            && tx.send(Ok(line)).await.is_err()
        {
            return;
        }
    }
    if send_initial && tx.send(Ok(scope.bookmark(start_rv, true))).await.is_err() {
        return;
    }
    // Everything up to here has been delivered or filtered out: bookmarks may claim it.
    let mut seen_rv = start_rv;
    let mut bookmarked_rv = 0;
    let mut tick = tokio::time::interval(BOOKMARK_EVERY);
    tick.tick().await;
    loop {
        let line = tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tick.tick(), if bookmarks => {
                if seen_rv == bookmarked_rv {
                    continue;
                }
                bookmarked_rv = seen_rv;
                scope.bookmark(seen_rv, false)
            }
            r = live.recv() => match r {
                Ok(c) if c.rv <= start_rv => continue,
                Ok(c) => {
                    seen_rv = c.rv;
                    if c.key != scope.info.key() {
                        continue;
                    }
                    match scope.event(&c) {
                        Some(line) => line,
                        None => continue,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(Ok(gone_line(seen_rv, seen_rv))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(Ok(line)).await.is_err() {
            return;
        }
    }
}
