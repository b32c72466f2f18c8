//! `JobSim` (the Job controller and kubelet for batch/v1 Jobs) and `StatefulSetSim`.
//!
//! `JobSim::step` gives every unfinished Job one pod (labels from the template plus the
//! Job's `batch.kubernetes.io/job-name` / `controller-uid`), binds it to a fitting Node and
//! runs it, and keeps `status.active/ready/succeeded/failed` in line with its pods. Pods
//! finish only on command: [`JobSim::succeed`], [`JobSim::fail_pod`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::kinds::ResourceKey;
use crate::meta;
use crate::sim_karpenter::{SimHandle, changed, set_condition, spawn_loop};
use crate::sim_pods::{
    create_from_template, is_ready, is_terminal, owned_pods, phase, schedule_and_run, terminate,
};
use crate::store::Store;

fn jobs() -> ResourceKey {
    ResourceKey::new("batch", "jobs")
}

#[derive(Clone)]
pub struct JobSim {
    store: Store,
    /// Jobs (by uid) a test failed for good.
    failed_for_good: Arc<Mutex<HashSet<String>>>,
}

impl JobSim {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            failed_for_good: Arc::default(),
        }
    }

    fn finished(job: &Value) -> bool {
        job.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
                })
            })
    }

    /// Creates/binds/runs pods and syncs Job status; returns how many objects changed.
    pub fn step(&self) -> usize {
        let mut n = 0;
        for job in self.store.list_raw(&jobs(), None, None).unwrap_or_default() {
            if meta::is_deleting(&job) || Self::finished(&job) {
                continue;
            }
            let (ns, name, uid) = (meta::namespace(&job), meta::name(&job), meta::uid(&job));
            let pods = owned_pods(&self.store, ns, uid);
            if !pods.iter().any(|p| !is_terminal(p)) && !self.is_failed_for_good(uid) {
                let extra = json!({"batch.kubernetes.io/job-name": name, "job-name": name,
                                   "batch.kubernetes.io/controller-uid": uid, "controller-uid": uid});
                for i in pods.len().. {
                    let pod_name = format!("{name}-{i:05x}");
                    if create_from_template(&self.store, &job, &pod_name, extra.clone()).is_some() {
                        n += 1;
                        break;
                    }
                    if i > pods.len() + 16 {
                        break;
                    }
                }
            }
            for p in owned_pods(&self.store, ns, uid) {
                n += usize::from(schedule_and_run(&self.store, &p));
            }
            n += usize::from(self.sync(ns, name));
        }
        n
    }

    fn is_failed_for_good(&self, uid: &str) -> bool {
        self.failed_for_good
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(uid)
    }

    /// Recomputes the Job's status from its pods.
    fn sync(&self, ns: &str, name: &str) -> bool {
        let Some(job) = self.store.get_raw(&jobs(), ns, name) else {
            return false;
        };
        let pods = owned_pods(&self.store, ns, meta::uid(&job));
        let count = |f: &dyn Fn(&Value) -> bool| pods.iter().filter(|p| f(p)).count();
        let active = count(&|p| !is_terminal(p));
        let ready = count(&|p| is_ready(p));
        let succeeded = count(&|p| phase(p) == "Succeeded");
        let failed = count(&|p| phase(p) == "Failed");
        let completions = job
            .pointer("/spec/completions")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let backoff_limit = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_u64)
            .unwrap_or(6) as usize;
        let failed_for_good = self.is_failed_for_good(meta::uid(&job)) || failed > backoff_limit;
        changed(&self.store, &jobs(), ns, name, |j| {
            let st = &mut j["status"];
            if st.get("startTime").is_none() && !pods.is_empty() {
                st["startTime"] = meta::now();
            }
            for (field, v) in [
                ("active", active),
                ("succeeded", succeeded),
                ("failed", failed),
            ] {
                // Zero counts are omitted, as the Job controller's omitempty fields are.
                if v > 0 {
                    st[field] = json!(v);
                } else if let Some(m) = st.as_object_mut() {
                    m.remove(field);
                }
            }
            st["ready"] = json!(ready);
            st["terminating"] = json!(0);
            if succeeded >= completions {
                st["completionTime"] = meta::now();
                set_condition(
                    j,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                set_condition(
                    j,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
            } else if failed_for_good && active == 0 {
                set_condition(
                    j,
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                );
                set_condition(
                    j,
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                );
            }
        })
    }

    fn running_pod(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        let job = self
            .store
            .get_raw(&jobs(), ns, name)
            .ok_or_else(|| ApiError::not_found("jobs.batch", name))?;
        owned_pods(&self.store, ns, meta::uid(&job))
            .into_iter()
            .find(|p| !is_terminal(p))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "job {ns}/{name} has no active pod (call step() first)"
                ))
            })
    }

    /// The Job's active pod exits 0: `succeeded=1`, `completionTime`, `Complete=True`.
    pub fn succeed(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        self.succeed_with_message(ns, name, None)
    }

    /// As [`succeed`](Self::succeed), with a container termination message (e.g. a report).
    pub fn succeed_with_message(
        &self,
        ns: &str,
        name: &str,
        message: Option<&str>,
    ) -> Result<(), ApiError> {
        let pod = self.running_pod(ns, name)?;
        terminate(&self.store, &pod, true, message);
        self.sync(ns, name);
        Ok(())
    }

    /// The Job's active pod exits 1 (`failed += 1`). With `retry`, the next step starts a new
    /// pod (as the Job controller does under its backoffLimit); without, the Job is `Failed`.
    pub fn fail_pod(
        &self,
        ns: &str,
        name: &str,
        retry: bool,
        message: Option<&str>,
    ) -> Result<(), ApiError> {
        let pod = self.running_pod(ns, name)?;
        if !retry {
            let uid = self
                .store
                .get_raw(&jobs(), ns, name)
                .map(|j| meta::uid(&j).to_string())
                .unwrap_or_default();
            self.failed_for_good
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(uid);
        }
        terminate(&self.store, &pod, false, message);
        self.sync(ns, name);
        Ok(())
    }

    /// Run mode: pods are created, bound and run in the background (finishing stays manual).
    pub fn spawn(&self, delay: Duration) -> SimHandle {
        let sim = self.clone();
        spawn_loop(self.store.clone(), delay, move || sim.step())
    }
}

/// Plays the StatefulSet controller and kubelet: pods `<name>-<i>` for `spec.replicas`,
/// bound and Ready when a Node fits; `status.replicas/readyReplicas/...` follow the pods.
/// Template changes do not roll pods.
#[derive(Clone)]
pub struct StatefulSetSim {
    store: Store,
}

impl StatefulSetSim {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn step(&self) -> usize {
        let key = ResourceKey::new("apps", "statefulsets");
        let mut n = 0;
        for sts in self.store.list_raw(&key, None, None).unwrap_or_default() {
            if meta::is_deleting(&sts) {
                continue;
            }
            let (ns, name, uid) = (meta::namespace(&sts), meta::name(&sts), meta::uid(&sts));
            let replicas = sts
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            for i in 0..replicas {
                let pod_name = format!("{name}-{i}");
                if self
                    .store
                    .get_raw(&crate::sim_pods::pods(), ns, &pod_name)
                    .is_none()
                {
                    let extra = json!({"statefulset.kubernetes.io/pod-name": pod_name, "apps.kubernetes.io/pod-index": i.to_string(),
                                       "controller-revision-hash": format!("{name}-rev")});
                    n += usize::from(
                        create_from_template(&self.store, &sts, &pod_name, extra).is_some(),
                    );
                }
            }
            let pods = owned_pods(&self.store, ns, uid);
            for p in &pods {
                let index = meta::name(p)
                    .rsplit('-')
                    .next()
                    .and_then(|i| i.parse::<u64>().ok());
                if index.is_some_and(|i| i >= replicas) {
                    n += usize::from(
                        self.store
                            .delete_raw(&crate::sim_pods::pods(), ns, meta::name(p))
                            .is_ok(),
                    );
                } else {
                    n += usize::from(schedule_and_run(&self.store, p));
                }
            }
            let pods = owned_pods(&self.store, ns, uid);
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            let generation = sts
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            n += usize::from(changed(&self.store, &key, ns, name, |s| {
                let st = &mut s["status"];
                st["observedGeneration"] = generation;
                st["replicas"] = json!(pods.len());
                st["readyReplicas"] = json!(ready);
                st["availableReplicas"] = json!(ready);
                st["currentReplicas"] = json!(pods.len());
                st["updatedReplicas"] = json!(pods.len());
                st["currentRevision"] = json!(format!("{name}-rev"));
                st["updateRevision"] = json!(format!("{name}-rev"));
            }));
        }
        n
    }

    pub fn spawn(&self, delay: Duration) -> SimHandle {
        let sim = self.clone();
        spawn_loop(self.store.clone(), delay, move || sim.step())
    }
}
