//! ownerReference garbage collection, synchronous (the real collector is asynchronous but
//! converges to the same state): when an owner is removed, a dependent with no other live
//! owner is deleted (finalizers honoured, cascading), a dependent with another live owner just
//! loses the dangling reference. `propagationPolicy: Foreground` keeps the owner (finalizer
//! `foregroundDeletion`, deletionTimestamp set) until its dependents are gone;
//! `Orphan` strips the references and keeps the dependents.

use serde_json::Value;

use crate::kinds::ResourceKey;
use crate::meta::{self, meta_mut};
use crate::store::State;
use crate::write::{DeleteOptions, UpdateMode};

pub(crate) const FOREGROUND: &str = "foregroundDeletion";

impl State {
    fn dependents_of(&self, owner_uid: &str) -> Vec<(ResourceKey, String, String)> {
        self.objects
            .iter()
            .flat_map(|(key, objs)| {
                objs.iter()
                    .filter(|(_, o)| meta::owner_uids(o).iter().any(|u| u == owner_uid))
                    .map(move |((ns, name), _)| (key.clone(), ns.clone(), name.clone()))
            })
            .collect()
    }

    pub(crate) fn has_dependents(&self, owner_uid: &str) -> bool {
        !self.dependents_of(owner_uid).is_empty()
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .flat_map(|m| m.values())
            .any(|o| meta::uid(o) == uid)
    }

    fn drop_owner_ref(&mut self, key: &ResourceKey, ns: &str, name: &str, owner_uid: &str) {
        let Ok(info) = self.kind(key) else { return };
        let Some(mut obj) = self
            .objects
            .get(key)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
        else {
            return;
        };
        if let Some(Value::Array(refs)) = meta_mut(&mut obj).get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
        meta_mut(&mut obj).remove("resourceVersion");
        // The object exists (just read it), so only a racing removal could fail: ignore.
        let _ = self.update(&info, ns, name, obj, UpdateMode::Raw);
    }

    pub(crate) fn collect_garbage(&mut self, owner_uid: &str) {
        if owner_uid.is_empty() {
            return;
        }
        for (key, ns, name) in self.dependents_of(owner_uid) {
            let Some(obj) = self
                .objects
                .get(&key)
                .and_then(|m| m.get(&(ns.clone(), name.clone())))
                .cloned()
            else {
                continue; // removed by an earlier cascade in this loop
            };
            let other_live_owner = meta::owner_uids(&obj)
                .iter()
                .any(|u| u != owner_uid && self.uid_exists(u));
            if other_live_owner {
                self.drop_owner_ref(&key, &ns, &name, owner_uid);
            } else if let Ok(info) = self.kind(&key) {
                let _ = self.delete(&info, &ns, &name, &DeleteOptions::default());
            }
        }
    }

    /// Foreground deletion: deletes the dependents first; the owner keeps the
    /// `foregroundDeletion` finalizer while any dependent remains.
    pub(crate) fn delete_dependents_first(&mut self, owner_uid: &str) {
        for (key, ns, name) in self.dependents_of(owner_uid) {
            if let Ok(info) = self.kind(&key) {
                let _ = self.delete(
                    &info,
                    &ns,
                    &name,
                    &DeleteOptions {
                        propagation: Some("Foreground".into()),
                        ..Default::default()
                    },
                );
            }
        }
    }

    /// After `removed` is gone: owners waiting in foreground deletion with no dependents left
    /// lose their `foregroundDeletion` finalizer (and go, if it was the last).
    pub(crate) fn release_foreground_owners(&mut self, removed: &Value) {
        for owner_uid in meta::owner_uids(removed) {
            if !self.dependents_of(&owner_uid).is_empty() {
                continue;
            }
            let owner = self.objects.iter().find_map(|(key, objs)| {
                objs.iter()
                    .find(|(_, o)| {
                        meta::uid(o) == owner_uid
                            && meta::finalizers(o).iter().any(|f| f == FOREGROUND)
                    })
                    .map(|((ns, name), _)| (key.clone(), ns.clone(), name.clone()))
            });
            let Some((key, ns, name)) = owner else {
                continue;
            };
            self.strip_foreground(&key, &ns, &name);
        }
    }

    pub(crate) fn strip_foreground(&mut self, key: &ResourceKey, ns: &str, name: &str) {
        let Ok(info) = self.kind(key) else { return };
        let Some(mut obj) = self
            .objects
            .get(key)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
        else {
            return;
        };
        if let Some(Value::Array(f)) = meta_mut(&mut obj).get_mut("finalizers") {
            f.retain(|x| x != FOREGROUND);
        }
        meta_mut(&mut obj).remove("resourceVersion");
        let _ = self.update(&info, ns, name, obj, UpdateMode::Raw);
    }

    /// `propagationPolicy: Orphan`: dependents lose their reference to the owner and survive.
    pub(crate) fn orphan_dependents(&mut self, owner_uid: String) {
        for (key, ns, name) in self.dependents_of(&owner_uid) {
            self.drop_owner_ref(&key, &ns, &name, &owner_uid);
        }
    }
}
