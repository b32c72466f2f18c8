//! What an embedder's unit test looks like: a custom platform composes kaito-core's planner with
//! its own implementations of the traits, and tests itself against the exported mockall mocks
//! (feature `mocks`). Copy this file as a starting point.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaito_core::api::manifest::parse_manifests;
use kaito_core::planner::{Action, Observed, PlanContext, plan};
use kaito_core::traits::{MockNodeProvisioner, NodeProvisioner, NodeReadiness};
use kaito_core::{Error, ErrorKind};

/// A tiny "platform": asks its provisioner for readiness, plans, and provisions when told to.
struct Platform {
    nodes: Arc<dyn NodeProvisioner>,
}

impl Platform {
    async fn step(
        &self,
        ws: &kaito_core::api::WorkspaceV1Beta1,
    ) -> kaito_core::Result<Vec<Action>> {
        let requirements = kaito_core::planner::node_requirements(ws, 1024, None);
        let readiness = self.nodes.readiness(&requirements).await?;
        let observed = Observed {
            nodes: Some(readiness),
            provisioned_nodes: 0,
            job: None,
            inference: None,
            revisions: vec![],
            now: Time(Timestamp::from_second(0).expect("epoch")),
        };
        let plan = plan(ws, &observed, &PlanContext::default());
        for action in &plan.actions {
            if let Action::EnsureNodes(req) = action {
                self.nodes.ensure_nodes(req).await?;
            }
        }
        Ok(plan.actions)
    }
}

fn seed() -> kaito_core::api::WorkspaceV1Beta1 {
    let text = include_str!("../../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");
    parse_manifests("seed", text)
        .expect("parses")
        .workspaces
        .remove(0)
        .into_storage()
}

#[tokio::test]
async fn pending_nodes_are_ensured_once_per_step() {
    let mut nodes = MockNodeProvisioner::new();
    nodes.expect_readiness().times(1).returning(|_| {
        Ok(NodeReadiness::Pending {
            reason: "NodeClaimNotReady".into(),
            message: "launching".into(),
        })
    });
    nodes
        .expect_ensure_nodes()
        .withf(|req| req.instance_type.as_deref() == Some("Standard_NC6s_v3") && req.count == 1)
        .times(1)
        .returning(|_| Ok(()));
    let platform = Platform {
        nodes: Arc::new(nodes),
    };
    let actions = platform.step(&seed()).await.expect("step");
    assert!(actions.iter().any(|a| matches!(a, Action::EnsureNodes(_))));
}

#[tokio::test]
async fn ready_nodes_lead_to_the_tuning_job() {
    let mut nodes = MockNodeProvisioner::new();
    nodes.expect_readiness().returning(|_| {
        Ok(NodeReadiness::Ready {
            nodes: vec!["n1".into()],
        })
    });
    nodes.expect_ensure_nodes().never();
    let platform = Platform {
        nodes: Arc::new(nodes),
    };
    let actions = platform.step(&seed()).await.expect("step");
    assert_eq!(actions.last(), Some(&Action::CreateJob { revision: 1 }));
}

#[tokio::test]
async fn a_provisioner_error_surfaces_with_its_kind() {
    let mut nodes = MockNodeProvisioner::new();
    nodes
        .expect_readiness()
        .returning(|_| Err(Error::backend(ErrorKind::Retryable, "apiserver timed out")));
    let platform = Platform {
        nodes: Arc::new(nodes),
    };
    let err = platform.step(&seed()).await.expect_err("fails");
    assert!(err.is_retryable());
}
