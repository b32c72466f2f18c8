//! Write semantics shared by HTTP handlers and direct store access: create, update (main,
//! status, raw), graceful delete with finalizers, and final removal.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::kinds::KindInfo;
use crate::meta::{self, meta_mut};
use crate::store::{ChangeKind, State};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    /// PUT/PATCH on the object: `status` changes are dropped for kinds with the subresource.
    Main,
    /// PUT/PATCH on `/status`: only `status` changes.
    Status,
    /// A test or simulator writing everything.
    Raw,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

fn slot(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

impl State {
    fn current(&self, info: &KindInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&info.key())
            .and_then(|m| m.get(&slot(ns, name)))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.qualified(), name))
    }

    fn store_object(&mut self, info: &KindInfo, ns: &str, name: &str, obj: Value) {
        self.objects
            .entry(info.key())
            .or_default()
            .insert(slot(ns, name), obj);
    }

    /// `ns` is the request's namespace (ignored for cluster-scoped kinds).
    pub(crate) fn create(
        &mut self,
        info: &KindInfo,
        ns: &str,
        mut obj: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        }
        let body_ns = meta::namespace(&obj).to_string();
        let ns = if info.namespaced {
            if !body_ns.is_empty() && !ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )));
            }
            let ns = if ns.is_empty() {
                body_ns
            } else {
                ns.to_string()
            };
            if ns.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{}: metadata.namespace: Required value",
                    info.kind
                )));
            }
            ns
        } else {
            String::new()
        };
        self.uid_counter += 1;
        let serial = self.uid_counter;
        let mut name = meta::name(&obj).to_string();
        if name.is_empty() {
            match meta::str_at(&obj, "/metadata/generateName") {
                Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{serial:05x}"),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{} is invalid: metadata.name: Required value: name or generateName is required",
                        info.kind
                    )));
                }
            }
        }
        if self.current(info, &ns, &name).is_ok() {
            return Err(ApiError::already_exists(&info.qualified(), &name));
        }
        let rv = self.next_rv();
        let version = info.versions[0].clone();
        let m = obj.as_object_mut().expect("checked object above");
        m.insert(
            "apiVersion".into(),
            Value::String(info.api_version(&version)),
        );
        m.insert("kind".into(), Value::String(info.kind.clone()));
        if info.status_subresource && !keep_status {
            m.remove("status");
        }
        let md = meta_mut(&mut obj);
        md.insert("name".into(), json!(name));
        if info.namespaced {
            md.insert("namespace".into(), json!(ns));
        } else {
            md.remove("namespace");
        }
        md.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{serial:012x}")),
        );
        md.insert("resourceVersion".into(), json!(rv.to_string()));
        md.insert("generation".into(), json!(1));
        md.insert("creationTimestamp".into(), meta::now());
        md.remove("deletionTimestamp");
        md.remove("deletionGracePeriodSeconds");
        meta::normalize(&mut obj);
        self.store_object(info, &ns, &name, obj.clone());
        self.record(&info.key(), ChangeKind::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Replaces an object. `new.metadata.resourceVersion`, when set, must be current (409).
    pub(crate) fn update(
        &mut self,
        info: &KindInfo,
        ns: &str,
        name: &str,
        mut new: Value,
        mode: UpdateMode,
    ) -> Result<Value, ApiError> {
        let ns = if info.namespaced { ns } else { "" };
        let old = self.current(info, ns, name)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        }
        let body_name = meta::name(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = meta::resource_version(&new)
            && Some(rv) != meta::resource_version(&old)
        {
            return Err(ApiError::conflict(&info.qualified(), name));
        }
        match mode {
            UpdateMode::Status => {
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                let m = merged.as_object_mut().expect("stored objects are objects");
                match status {
                    Some(s) => m.insert("status".into(), s),
                    None => m.remove("status"),
                };
                new = merged;
            }
            UpdateMode::Main if info.status_subresource => {
                let m = new.as_object_mut().expect("checked object above");
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            UpdateMode::Main | UpdateMode::Raw => {}
        }
        // Server-managed fields come from the stored object.
        let old_md = old.get("metadata").cloned().unwrap_or_default();
        {
            let m = new.as_object_mut().expect("checked object above");
            m.insert("apiVersion".into(), old["apiVersion"].clone());
            m.insert("kind".into(), old["kind"].clone());
        }
        let md = meta_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_md.get(field) {
                Some(v) => md.insert(field.into(), v.clone()),
                None => md.remove(field),
            };
        }
        meta::normalize(&mut new);
        if meta::generation_relevant(&old, info.status_subresource)
            != meta::generation_relevant(&new, info.status_subresource)
        {
            let generation = old_md
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if new == old {
            // The apiserver does not write (or emit an event for) a no-op update.
            return Ok(old);
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
            self.store_object(info, ns, name, new.clone());
            return Ok(self.remove(info, ns, name));
        }
        self.store_object(info, ns, name, new.clone());
        self.record(&info.key(), ChangeKind::Modified, new.clone(), Some(old));
        Ok(new)
    }

    /// Graceful delete: with finalizers, sets deletionTimestamp and keeps the object.
    pub(crate) fn delete(
        &mut self,
        info: &KindInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let ns = if info.namespaced { ns } else { "" };
        let mut obj = self.current(info, ns, name)?;
        let uid_ok = opts
            .precondition_uid
            .as_deref()
            .is_none_or(|u| u == meta::uid(&obj));
        let rv_ok = opts
            .precondition_rv
            .as_deref()
            .is_none_or(|r| Some(r) == meta::resource_version(&obj));
        if !uid_ok || !rv_ok {
            return Err(ApiError::conflict(&info.qualified(), name));
        }
        let uid = meta::uid(&obj).to_string();
        match opts.propagation.as_deref() {
            Some("Orphan") => self.orphan_dependents(uid.clone()),
            Some("Foreground") if !meta::is_deleting(&obj) && self.has_dependents(&uid) => {
                let fins = meta_mut(&mut obj)
                    .entry("finalizers")
                    .or_insert_with(|| json!([]));
                if let Some(f) = fins.as_array_mut() {
                    f.push(json!(crate::gc::FOREGROUND));
                }
                let obj = self.mark_deleting(info, ns, name, obj);
                self.delete_dependents_first(&uid);
                // Every dependent may already be gone (none had finalizers).
                if self.current(info, ns, name).is_ok() && !self.has_dependents(&uid) {
                    self.strip_foreground(&info.key(), ns, name);
                }
                return Ok(self.current(info, ns, name).unwrap_or(obj));
            }
            _ => {}
        }
        if meta::finalizers(&obj).is_empty() {
            return Ok(self.remove(info, ns, name));
        }
        if !meta::is_deleting(&obj) {
            obj = self.mark_deleting(info, ns, name, obj);
        }
        Ok(obj)
    }

    /// Sets deletionTimestamp (keeping any finalizer changes already made to `obj`).
    fn mark_deleting(&mut self, info: &KindInfo, ns: &str, name: &str, mut obj: Value) -> Value {
        let old = self.current(info, ns, name).unwrap_or(Value::Null);
        let rv = self.next_rv();
        let md = meta_mut(&mut obj);
        md.insert("deletionTimestamp".into(), meta::now());
        md.insert("deletionGracePeriodSeconds".into(), json!(0));
        md.insert("resourceVersion".into(), json!(rv.to_string()));
        self.store_object(info, ns, name, obj.clone());
        self.record(&info.key(), ChangeKind::Modified, obj.clone(), Some(old));
        obj
    }

    /// Removes the object for good (DELETED event with a fresh resourceVersion), then
    /// garbage-collects its dependents.
    pub(crate) fn remove(&mut self, info: &KindInfo, ns: &str, name: &str) -> Value {
        let Some(mut obj) = self
            .objects
            .get_mut(&info.key())
            .and_then(|m| m.remove(&slot(ns, name)))
        else {
            return Value::Null;
        };
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(&info.key(), ChangeKind::Deleted, obj.clone(), None);
        let uid = meta::uid(&obj).to_string();
        self.collect_garbage(&uid);
        self.release_foreground_owners(&obj);
        obj
    }
}
