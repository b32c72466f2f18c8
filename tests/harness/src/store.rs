//! The object store: every collection, the global resourceVersion, the event history that
//! watches replay from, and the typed API tests and simulators use to act on it directly.
//!
//! All mutations (HTTP or direct) go through `State` in `write.rs`, so direct writes get the
//! same resourceVersion, generation, finalizer and garbage-collection semantics and produce
//! watch events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::kinds::{KindInfo, ResourceKey, builtin_kinds};
use crate::selector::Filter;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One entry of the event history (also broadcast live).
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub key: ResourceKey,
    pub kind: ChangeKind,
    pub object: Value,
    /// The object before a modification, so watches with selectors can turn "stopped
    /// matching" into DELETED and "started matching" into ADDED, as the apiserver does.
    pub old: Option<Value>,
}

pub(crate) struct State {
    pub(crate) kinds: BTreeMap<ResourceKey, KindInfo>,
    /// key -> (namespace or "", name) -> object.
    pub(crate) objects: BTreeMap<ResourceKey, BTreeMap<(String, String), Value>>,
    pub(crate) rv: u64,
    pub(crate) uid_counter: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Events with rv <= this are gone from the history: watching from there is 410.
    compacted_rv: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

impl State {
    pub(crate) fn kind(&self, key: &ResourceKey) -> Result<KindInfo, ApiError> {
        self.kinds.get(key).cloned().ok_or_else(|| {
            ApiError::not_found(
                "the server could not find the requested resource",
                &key.plural,
            )
        })
    }

    pub(crate) fn record(
        &mut self,
        key: &ResourceKey,
        kind: ChangeKind,
        object: Value,
        old: Option<Value>,
    ) {
        let change = Arc::new(Change {
            rv: self.rv,
            key: key.clone(),
            kind,
            object,
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(evicted) = self.history.pop_front() {
                self.compacted_rv = evicted.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }

    pub(crate) fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }
}

/// Where a watch starts: the changes to replay, the resourceVersion they bring the watcher
/// to, and the live feed from there on.
pub(crate) struct WatchStart {
    pub backlog: Vec<Arc<Change>>,
    pub rv: u64,
    pub live: broadcast::Receiver<Arc<Change>>,
}

/// A cheap, clonable handle on the shared store.
#[derive(Clone)]
pub struct Store {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<Arc<Change>>,
    /// Bumped to end every open watch stream.
    epoch: Arc<tokio::sync::watch::Sender<u64>>,
}

/// `""` is the namespace of cluster-scoped objects.
fn slot(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(16_384);
        let kinds = builtin_kinds().into_iter().map(|k| (k.key(), k)).collect();
        let state = State {
            kinds,
            objects: BTreeMap::new(),
            rv: 1,
            uid_counter: 0,
            history: VecDeque::new(),
            history_limit: 10_000,
            compacted_rv: 0,
            tx: tx.clone(),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            tx,
            epoch: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every other request: take the data anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves another kind (e.g. a CRD a test needs).
    pub fn register(&self, info: KindInfo) {
        self.lock().kinds.insert(info.key(), info);
    }

    /// Stops serving a kind, as a cluster without its CRD: requests for it get 404 and it
    /// leaves discovery. Stored objects of the kind stay (direct access still sees them).
    pub fn unregister(&self, key: &ResourceKey) {
        self.lock().kinds.remove(key);
    }

    pub fn kinds(&self) -> Vec<KindInfo> {
        self.lock().kinds.values().cloned().collect()
    }

    /// The kind served at `group/version` under `plural`.
    pub fn kind_for(&self, group: &str, version: &str, plural: &str) -> Option<KindInfo> {
        let st = self.lock();
        st.kinds
            .get(&ResourceKey::new(group, plural))
            .filter(|k| k.versions.iter().any(|v| v == version))
            .cloned()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Keeps at most `limit` events of history (older watch resourceVersions get 410).
    pub fn set_history_limit(&self, limit: usize) {
        self.lock().history_limit = limit.max(1);
    }

    /// Drops the whole event history, like an etcd compaction: every watch resuming from an
    /// older resourceVersion gets 410 Gone and must relist.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.history.clear();
        st.compacted_rv = st.rv;
    }

    /// Ends every open watch stream, as an apiserver restart would; clients re-watch from
    /// their last resourceVersion (and relist on 410 if it was compacted meanwhile).
    pub fn drop_watches(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    pub(crate) fn watch_epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Live changes, for simulators that react to writes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// The changes after `rv` of collection `key` and a live receiver, taken atomically;
    /// `None` means "start now" with a snapshot of current objects as `Added` changes.
    pub(crate) fn watch_from(
        &self,
        key: &ResourceKey,
        rv: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let st = self.lock();
        let rx = self.tx.subscribe();
        let backlog = match rv {
            Some(rv) if rv < st.compacted_rv => return Err(ApiError::Gone(rv)),
            Some(rv) => st
                .history
                .iter()
                .filter(|c| c.rv > rv && &c.key == key)
                .cloned()
                .collect(),
            None => st
                .objects
                .get(key)
                .into_iter()
                .flat_map(|m| m.values())
                .map(|o| {
                    Arc::new(Change {
                        rv: crate::meta::resource_version(o)
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(st.rv),
                        key: key.clone(),
                        kind: ChangeKind::Added,
                        object: o.clone(),
                        old: None,
                    })
                })
                .collect(),
        };
        Ok(WatchStart {
            backlog,
            rv: st.rv,
            live: rx,
        })
    }

    // ---- raw (JSON) access -------------------------------------------------------------

    pub fn get_raw(&self, key: &ResourceKey, ns: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(key)?.get(&slot(ns, name)).cloned()
    }

    /// Objects of `key` (in `ns` when given), filtered by an optional label selector,
    /// ordered by namespace and name; plus the list's resourceVersion.
    pub fn list_raw_at(
        &self,
        key: &ResourceKey,
        ns: Option<&str>,
        filter: &Filter,
    ) -> (Vec<Value>, u64) {
        let st = self.lock();
        let items = st
            .objects
            .get(key)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((ons, _), _)| ns.is_none_or(|n| n == ons))
            .filter(|(_, o)| filter.matches(o))
            .map(|(_, o)| o.clone())
            .collect();
        (items, st.rv)
    }

    pub fn list_raw(
        &self,
        key: &ResourceKey,
        ns: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let filter = Filter::parse(label_selector, None)?;
        Ok(self.list_raw_at(key, ns, &filter).0)
    }

    /// Creates an object as an actor with full rights would: `status` is kept.
    pub fn create_raw(&self, key: &ResourceKey, obj: Value) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let info = st.kind(key)?;
        let ns = crate::meta::namespace(&obj).to_string();
        st.create(&info, &ns, obj, true)
    }

    /// Read-modify-write of one object including `status` (no resourceVersion check).
    /// Removing the last finalizer of a deleting object removes it.
    pub fn update_raw_with(
        &self,
        key: &ResourceKey,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let info = st.kind(key)?;
        let mut obj = st
            .objects
            .get(key)
            .and_then(|m| m.get(&slot(ns, name)))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.qualified(), name))?;
        f(&mut obj);
        crate::meta::meta_mut(&mut obj).remove("resourceVersion");
        st.update(&info, ns, name, obj, crate::write::UpdateMode::Raw)
    }

    /// Deletes as `kubectl delete` would: finalizers delay removal (deletionTimestamp is set),
    /// removal garbage-collects dependents.
    pub fn delete_raw(&self, key: &ResourceKey, ns: &str, name: &str) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let info = st.kind(key)?;
        st.delete(&info, ns, name, &crate::write::DeleteOptions::default())
    }

    // ---- typed access ------------------------------------------------------------------

    pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
    ) -> Option<K> {
        serde_json::from_value(self.get_raw(&ResourceKey::of::<K>(), ns, name)?).ok()
    }

    pub fn list<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        ns: Option<&str>,
    ) -> Vec<K> {
        let (items, _) = self.list_raw_at(&ResourceKey::of::<K>(), ns, &Filter::default());
        items
            .into_iter()
            .filter_map(|o| serde_json::from_value(o).ok())
            .collect()
    }

    pub fn create<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
    ) -> Result<K, ApiError> {
        let mut value =
            serde_json::to_value(obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let m = value
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("object must be a JSON object"))?;
        m.insert(
            "apiVersion".into(),
            Value::String(K::api_version(&()).into_owned()),
        );
        m.insert("kind".into(), Value::String(K::kind(&()).into_owned()));
        let created = self.create_raw(&ResourceKey::of::<K>(), value)?;
        serde_json::from_value(created).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    pub fn update_with<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut K),
    ) -> Result<K, ApiError> {
        let mut err = None;
        let out =
            self.update_raw_with(
                &ResourceKey::of::<K>(),
                ns,
                name,
                |v| match serde_json::from_value::<K>(v.clone()) {
                    Ok(mut typed) => {
                        f(&mut typed);
                        match serde_json::to_value(&typed) {
                            Ok(new) => *v = new,
                            Err(e) => err = Some(e.to_string()),
                        }
                    }
                    Err(e) => err = Some(e.to_string()),
                },
            );
        if let Some(e) = err {
            return Err(ApiError::bad_request(format!(
                "typed update of {name}: {e}"
            )));
        }
        serde_json::from_value(out?).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    pub fn delete<K: Resource<DynamicType = ()>>(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        self.delete_raw(&ResourceKey::of::<K>(), ns, name)
            .map(|_| ())
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}
