//! Watch streams (events, bookmarks, selectors, 410, timeouts), the runtime watcher and a
//! real `kube_runtime::Controller` with kube's finalizer helper.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config_map, eventually, server};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kaito_harness::Verb;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde_json::json;

type Events =
    std::pin::Pin<Box<dyn futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Send>>;

/// The next event, bookmarks included (kube's WatchParams allow them by default).
async fn next_any(stream: &mut Events) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a watch event within 5 s")
        .expect("stream still open")
        .expect("a decodable event")
}

/// The next event that is not a bookmark.
async fn next(stream: &mut Events) -> WatchEvent<ConfigMap> {
    loop {
        match next_any(stream).await {
            WatchEvent::Bookmark(_) => continue,
            other => return other,
        }
    }
}

fn describe(ev: &WatchEvent<ConfigMap>) -> String {
    match ev {
        WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

#[tokio::test]
async fn watch_replays_after_resource_version_then_streams_live() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("before", &[], &[]))
        .await
        .unwrap();
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    let mut stream: Events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        describe(&next(&mut stream).await),
        "ADDED a",
        "replayed from history"
    );
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut stream).await), "MODIFIED a");
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(describe(&next(&mut stream).await), "DELETED a");

    let mut from_zero: Events = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        describe(&next(&mut from_zero).await),
        "ADDED before",
        "rv 0 starts with the current state"
    );
}

#[tokio::test]
async fn watch_selectors_turn_transitions_into_added_and_deleted() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut stream: Events = api
        .watch(&WatchParams::default().labels("app=x"), "1")
        .await
        .unwrap()
        .boxed();
    api.create(
        &PostParams::default(),
        &config_map("other", &[("app", "y")], &[]),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &config_map("a", &[("app", "x")], &[]),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut stream).await), "ADDED a");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "z"}}})),
    )
    .await
    .unwrap();
    assert_eq!(
        describe(&next(&mut stream).await),
        "DELETED a",
        "stopped matching"
    );
    api.patch(
        "other",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    assert_eq!(
        describe(&next(&mut stream).await),
        "ADDED other",
        "started matching"
    );
    let mut by_name: Events = api
        .watch(&WatchParams::default().fields("metadata.name=a"), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut by_name).await), "ADDED a");
}

#[tokio::test]
async fn bookmarks_timeouts_and_410() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    let rv = api
        .get("a")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let mut bm: Events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &config_map("b", &[], &[]))
        .await
        .unwrap();
    assert_eq!(describe(&next_any(&mut bm).await), "ADDED b");
    match next_any(&mut bm).await {
        WatchEvent::Bookmark(b) => assert!(
            b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
        ),
        other => panic!("expected a bookmark, got {}", describe(&other)),
    }

    let started = tokio::time::Instant::now();
    let mut short: Events = api
        .watch(&WatchParams::default().disable_bookmarks().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    while tokio::time::timeout(Duration::from_secs(5), short.next())
        .await
        .expect("stream ends by itself")
        .is_some()
    {}
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "timeoutSeconds honoured"
    );

    s.store().compact();
    let mut gone: Events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut gone).await), "ERROR 410");
}

// Single-threaded on purpose: nothing runs between the synchronous store calls below, so
// the open watch cannot deliver `b` before it is dropped.
#[tokio::test]
async fn runtime_watcher_relists_after_compaction() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    let mut objs = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), objs.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    assert_eq!(s.request_count(Verb::List, "ConfigMap"), 1);

    let mut b = config_map("b", &[], &[]);
    b.metadata.namespace = Some("default".into());
    s.store().create(&b).unwrap();
    s.store().compact();
    s.store().drop_watches();
    // The watcher resumes from a compacted resourceVersion, gets 410 and relists: it sees b.
    let mut seen_b = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen_b && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(o))) = tokio::time::timeout(Duration::from_secs(1), objs.next()).await {
            seen_b = o.metadata.name.as_deref() == Some("b");
        }
    }
    assert!(seen_b, "watcher recovered and saw b");
    assert_eq!(
        s.request_count(Verb::List, "ConfigMap"),
        2,
        "b came from a relist, not the old stream"
    );
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_live() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    let cfg = watcher::Config::default().streaming_lists();
    let mut events = watcher(api.clone(), cfg).boxed();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("InitDone") {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .expect("initial events within 5 s")
            .unwrap()
            .unwrap();
        seen.push(match ev {
            watcher::Event::Init => "Init".to_string(),
            watcher::Event::InitApply(o) => format!("InitApply {}", o.metadata.name.unwrap()),
            watcher::Event::InitDone => "InitDone".to_string(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["Init", "InitApply a", "InitDone"]);
    assert_eq!(
        s.request_count(Verb::List, "ConfigMap"),
        0,
        "no list with streaming lists"
    );
    api.create(&PostParams::default(), &config_map("b", &[], &[]))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(ev, watcher::Event::Apply(o) if o.metadata.name.as_deref() == Some("b")));
}

struct Ctx {
    api: Api<ConfigMap>,
    cleaned: std::sync::Mutex<Vec<String>>,
}

async fn reconcile(
    cm: Arc<ConfigMap>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::runtime::finalizer::Error<kube::Error>> {
    finalizer(&ctx.api, "harness.kaito.sh/cleanup", cm, |event| async {
        match event {
            Finalizer::Apply(cm) => {
                let value = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get("k"))
                    .cloned()
                    .unwrap_or_default();
                let patch =
                    Patch::Merge(json!({"metadata": {"annotations": {"reconciled": value}}}));
                ctx.api
                    .patch(
                        cm.metadata.name.as_deref().unwrap_or(""),
                        &PatchParams::default(),
                        &patch,
                    )
                    .await?;
                Ok::<_, kube::Error>(Action::await_change())
            }
            Finalizer::Cleanup(cm) => {
                ctx.cleaned
                    .lock()
                    .unwrap()
                    .push(cm.metadata.name.clone().unwrap_or_default());
                Ok(Action::await_change())
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_config_maps_with_finalizer() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        cleaned: Default::default(),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_millis(200)),
            ctx.clone(),
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    api.create(
        &PostParams::default(),
        &config_map("c", &[], &[("k", "one")]),
    )
    .await
    .unwrap();
    let store = s.store();
    let annotation = || {
        store
            .get::<ConfigMap>("default", "c")
            .and_then(|c| c.metadata.annotations?.get("reconciled").cloned())
    };
    eventually(10, "first reconcile", || {
        annotation().as_deref() == Some("one")
    })
    .await;
    let fins = store
        .get::<ConfigMap>("default", "c")
        .unwrap()
        .metadata
        .finalizers
        .unwrap_or_default();
    assert_eq!(fins, ["harness.kaito.sh/cleanup"]);

    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "two"}})),
    )
    .await
    .unwrap();
    eventually(10, "reconcile after change", || {
        annotation().as_deref() == Some("two")
    })
    .await;

    api.delete("c", &DeleteParams::default()).await.unwrap();
    eventually(10, "cleanup and finalizer removal", || {
        store.get::<ConfigMap>("default", "c").is_none()
    })
    .await;
    assert_eq!(*ctx.cleaned.lock().unwrap(), ["c"]);
    task.abort();
}
