//! Test-only fake kube-apiserver and simulators for kaito-rs.
//!
//! Where to start:
//! - [`FakeApiServer::start`] serves an in-process apiserver on 127.0.0.1;
//!   [`FakeApiServer::client`] gives a real `kube::Client` for it,
//!   [`FakeApiServer::kubeconfig_yaml`] / [`FakeApiServer::write_kubeconfig`] a kubeconfig for
//!   a child process. Core v1 (Pod, Node, Service, Secret, ConfigMap, Event, Namespace,
//!   ServiceAccount), batch/v1 Job, apps/v1 StatefulSet, Deployment and ControllerRevision,
//!   coordination.k8s.io Lease, events.k8s.io Event, `karpenter.sh/v1` NodeClaim and NodePool
//!   (cluster-scoped) and `kaito.sh` Workspace (v1beta1 and v1alpha1 from one store) are
//!   preregistered ([`kinds::builtin_kinds`]); [`Store::register`] adds more.
//! - [`FakeApiServer::store`] reads and writes objects directly with the same semantics
//!   (resourceVersion, generation, finalizers, GC, watch events): what simulators and
//!   controller-less actors use. [`Store::compact`] and [`Store::drop_watches`] force 410s and
//!   re-watches.
//! - [`FakeApiServer::fail_next`] / [`FakeApiServer::fail_next_with`] inject failures and
//!   [`FakeApiServer::request_count`] counts requests, per [`Verb`] and kind.
//! - [`KarpenterSim`] turns NodeClaims into Nodes (and can fail launches, [`LaunchFailure`]);
//!   [`JobSim`] and [`StatefulSetSim`] play the workload controllers and the kubelet. Each has
//!   a step mode (`step`, `settle`) and a run mode (`spawn`, stopped when the handle drops).
//!
//! ```no_run
//! use std::time::Duration;
//! use kaito_harness::{FakeApiServer, JobSim, KarpenterSim, LaunchFailure, Verb};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = FakeApiServer::start().await?;
//! let client = server.client(); // hand this to the operator's Controller
//! let karpenter = KarpenterSim::new(server.store()).with_gpu_count(|_sku| 1);
//! karpenter.fail_next_launch(LaunchFailure::quota()); // the first NodeClaim hits quota
//! let _running = karpenter.spawn(Duration::from_millis(20)); // run mode
//! let jobs = JobSim::new(server.store());
//! jobs.step(); // step mode: pods for new Jobs, bound to fitting Nodes
//! jobs.succeed("default", "my-workspace")?;
//! server.fail_next(Verb::Create, "NodeClaim", 500);
//! assert_eq!(server.request_count(Verb::Create, "Job"), 1);
//! # drop(client);
//! # Ok(()) }
//! ```
//!
//! Deliberate simplifications (documented where they live): strategic merge and server-side
//! apply are merge patches (no list merge keys, no field ownership); garbage collection is
//! synchronous; namespaces need not exist; no admission, validation or defaulting beyond
//! metadata; `continue` tokens are offsets, not snapshots; list `resourceVersion` parameters
//! are ignored (every list is "most recent"); `dryRun` is honoured on create only.

mod discovery;
pub mod error;
pub mod faults;
mod gc;
mod http;
pub mod kinds;
mod meta;
mod patch;
pub mod selector;
mod server;
pub mod sim_job;
pub mod sim_karpenter;
mod sim_pods;
mod sim_sched;
pub mod store;
mod watch;
mod write;

pub use error::ApiError;
pub use faults::Verb;
pub use kinds::{KindInfo, ResourceKey};
pub use server::FakeApiServer;
pub use sim_job::{JobSim, StatefulSetSim};
pub use sim_karpenter::{KarpenterSim, LaunchFailure, SimHandle};
pub use store::{Change, ChangeKind, Store};

/// Whether a pod with `pod_spec` may run on `node` (both as JSON) by the simulators' scheduling
/// rules: Ready and not deleting, `nodeSelector`, required node affinity, NoSchedule/NoExecute
/// taints against tolerations. E.g. to check where a shipped DaemonSet's pods can land.
pub fn pod_fits_node(node: &serde_json::Value, pod_spec: &serde_json::Value) -> bool {
    sim_sched::fits(node, pod_spec)
}
