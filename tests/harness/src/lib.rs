//! Test-only fake kube-apiserver and simulators for kaito-rs.
//!
//! Where to start:
//! - [`FakeApiServer::start`] serves an in-process apiserver on 127.0.0.1; [`FakeApiServer::client`]
//!   gives a real `kube::Client` for it, [`FakeApiServer::kubeconfig_yaml`] a kubeconfig for a
//!   child process. Core v1, batch, apps, coordination, events, `karpenter.sh/v1` NodeClaim and
//!   NodePool, and `kaito.sh` Workspace (v1beta1 and v1alpha1, one store) are preregistered
//!   ([`kinds::builtin_kinds`]); [`Store::register`] adds more.
//! - [`FakeApiServer::store`] reads and writes objects directly with the same semantics
//!   (resourceVersion, generation, finalizers, GC, watch events) — what simulators use.
//! - [`FakeApiServer::fail_next`] / [`FakeApiServer::request_count`] inject failures and count
//!   requests per [`Verb`] and kind.
//! - [`KarpenterSim`] turns NodeClaims into Nodes; [`JobSim`] and [`StatefulSetSim`] play the
//!   kubelet and workload controllers. Each has a step mode (`step`) and a run mode (`spawn`).
//!
//! Semantics and their limits are documented on each module: [`store`] (objects, history),
//! `write` (create/update/delete), `gc` (ownerReferences), `watch`, `patch`, `selector`.

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
