//! Table-driven tests of the planner: every tuning state, re-runs, deletion, inference.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::api::names::{ANNOTATION_HASH, ANNOTATION_REVISION, FINALIZER};
use crate::api::reason;
use crate::api::{
    ConditionType, DataSource, InferenceSpec, PresetSpec, ResourceSpec, TuningSpec,
    WorkspaceV1Beta1,
};
use crate::traits::NodeReadiness;

fn tuning_ws(url: &str) -> WorkspaceV1Beta1 {
    let mut ws = WorkspaceV1Beta1::new("default", "tune");
    ws.metadata.generation = Some(1);
    ws.resource = Some(ResourceSpec {
        instance_type: Some("Standard_NC6s_v3".into()),
        ..Default::default()
    });
    ws.tuning = Some(TuningSpec {
        preset: Some(PresetSpec {
            name: "phi-3-mini-128k-instruct".into(),
            ..Default::default()
        }),
        method: Some("qlora".into()),
        input: Some(DataSource {
            urls: Some(vec![url.into()]),
            ..Default::default()
        }),
        ..Default::default()
    });
    ws
}

/// A workspace that already has its finalizer and revision-1 annotations.
fn settled(mut ws: WorkspaceV1Beta1) -> (WorkspaceV1Beta1, Vec<ObservedRevision>) {
    let hash = spec_hash(&ws);
    ws.metadata.finalizers = Some(vec![FINALIZER.into()]);
    ws.metadata.annotations = Some(
        [
            (ANNOTATION_HASH.to_owned(), hash.clone()),
            (ANNOTATION_REVISION.to_owned(), "1".to_owned()),
        ]
        .into(),
    );
    let revisions = vec![ObservedRevision {
        name: revision_name("tune", &hash),
        revision: 1,
        hash,
    }];
    (ws, revisions)
}

fn observed(
    nodes: Option<NodeReadiness>,
    job: Option<ObservedJob>,
    revisions: Vec<ObservedRevision>,
) -> Observed {
    Observed {
        nodes,
        provisioned_nodes: 1,
        job,
        inference: None,
        revisions,
        now: Time(Timestamp::from_second(1_800_000_000).expect("valid")),
    }
}

fn ready() -> Option<NodeReadiness> {
    Some(NodeReadiness::Ready {
        nodes: vec!["ws1a2b3c4d5".into()],
    })
}

fn job(f: impl FnOnce(&mut ObservedJob)) -> Option<ObservedJob> {
    let mut j = ObservedJob {
        revision: Some("1".into()),
        ..Default::default()
    };
    f(&mut j);
    Some(j)
}

fn cond(plan: &Plan, t: ConditionType) -> (String, String) {
    let c = plan
        .status
        .condition(t)
        .unwrap_or_else(|| panic!("{t:?} missing"));
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_new_workspace_gets_finalizer_revision_and_nodes() {
    let ws = tuning_ws("https://example.com/d.parquet");
    let plan = plan(&ws, &observed(None, None, vec![]), &PlanContext::default());
    assert!(matches!(plan.actions[0], Action::AddFinalizer));
    assert!(matches!(
        &plan.actions[1],
        Action::CreateRevision { revision: 1, .. }
    ));
    assert!(matches!(
        &plan.actions[2],
        Action::AnnotateWorkspace { revision: 1, .. }
    ));
    let Action::EnsureNodes(req) = &plan.actions[3] else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(
        (req.count, req.instance_type.as_deref(), req.os_disk_gib),
        (1, Some("Standard_NC6s_v3"), 1024)
    );
    assert_eq!(plan.status.target_node_count, Some(1));
    assert_eq!(plan.status.state.as_deref(), Some("Pending"));
    assert!(plan.requeue_after.is_some());
}

#[test]
fn tuning_states_table() {
    struct Case {
        name: &'static str,
        nodes: Option<NodeReadiness>,
        job: Option<ObservedJob>,
        actions: Vec<Action>,
        state: &'static str,
        job_started: (&'static str, &'static str),
        succeeded: (&'static str, &'static str),
    }
    let pending_nodes = Some(NodeReadiness::Pending {
        reason: "NodeClaimNotReady".into(),
        message: "launching".into(),
    });
    let cases = vec![
        Case {
            name: "nodes pending: keep ensuring, Pending",
            nodes: pending_nodes,
            job: None,
            actions: vec![],
            state: "Pending",
            job_started: ("False", reason::TUNING_JOB_PENDING),
            succeeded: ("False", reason::WORKSPACE_PENDING),
        },
        Case {
            name: "nodes ready, no job: create it",
            nodes: ready(),
            job: None,
            actions: vec![Action::CreateJob { revision: 1 }],
            state: "Pending",
            job_started: ("False", reason::TUNING_JOB_PENDING),
            succeeded: ("False", reason::WORKSPACE_PENDING),
        },
        Case {
            name: "job active: Running",
            nodes: ready(),
            job: job(|j| j.active = 1),
            actions: vec![],
            state: "Running",
            job_started: ("True", reason::TUNING_JOB_STARTED),
            succeeded: ("False", reason::WORKSPACE_PENDING),
        },
        Case {
            name: "job succeeded: Succeeded",
            nodes: ready(),
            job: job(|j| {
                j.succeeded = 1;
                j.complete = true;
            }),
            actions: vec![],
            state: "Succeeded",
            job_started: ("True", reason::TUNING_JOB_STARTED),
            succeeded: ("True", reason::WORKSPACE_SUCCEEDED),
        },
        Case {
            name: "failed pod then successful retry: Succeeded (KAITO says Failed)",
            nodes: ready(),
            job: job(|j| {
                j.failed = 1;
                j.succeeded = 1;
                j.complete = true;
            }),
            actions: vec![],
            state: "Succeeded",
            job_started: ("True", reason::TUNING_JOB_STARTED),
            succeeded: ("True", reason::WORKSPACE_SUCCEEDED),
        },
        Case {
            name: "failed pod, retry running: Running",
            nodes: ready(),
            job: job(|j| {
                j.failed = 1;
                j.active = 1;
            }),
            actions: vec![],
            state: "Running",
            job_started: ("True", reason::TUNING_JOB_STARTED),
            succeeded: ("False", reason::WORKSPACE_PENDING),
        },
        Case {
            name: "job failed for good: Failed",
            nodes: ready(),
            job: job(|j| {
                j.failed = 6;
                j.failed_condition = Some("BackoffLimitExceeded".into());
            }),
            actions: vec![],
            state: "Failed",
            job_started: ("False", reason::TUNING_JOB_FAILED),
            succeeded: ("False", reason::WORKSPACE_FAILED),
        },
        Case {
            name: "job of an older revision: delete it (re-run)",
            nodes: ready(),
            job: job(|j| {
                j.revision = Some("0".into());
                j.succeeded = 1;
            }),
            actions: vec![Action::DeleteJob],
            state: "Pending",
            job_started: ("False", reason::TUNING_JOB_PENDING),
            succeeded: ("False", reason::WORKSPACE_PENDING),
        },
        Case {
            name: "old job already deleting: wait",
            nodes: ready(),
            job: job(|j| {
                j.revision = Some("0".into());
                j.deleting = true;
            }),
            actions: vec![],
            state: "Pending",
            job_started: ("False", reason::TUNING_JOB_PENDING),
            succeeded: ("False", reason::WORKSPACE_PENDING),
        },
    ];
    for case in cases {
        let (ws, revisions) = settled(tuning_ws("https://example.com/d.parquet"));
        let plan = plan(
            &ws,
            &observed(case.nodes.clone(), case.job, revisions),
            &PlanContext::default(),
        );
        let mut expected = case.actions;
        if !matches!(case.nodes, Some(NodeReadiness::Ready { .. })) {
            expected.insert(
                0,
                Action::EnsureNodes(node_requirements(&ws, KAITO_TUNING_DISK_GIB, None)),
            );
        }
        assert_eq!(plan.actions, expected, "{}", case.name);
        assert_eq!(
            plan.status.state.as_deref(),
            Some(case.state),
            "{}",
            case.name
        );
        let js = cond(&plan, ConditionType::JobStarted);
        assert_eq!(
            (js.0.as_str(), js.1.as_str()),
            case.job_started,
            "{}",
            case.name
        );
        let ws_ok = cond(&plan, ConditionType::WorkspaceSucceeded);
        assert_eq!(
            (ws_ok.0.as_str(), ws_ok.1.as_str()),
            case.succeeded,
            "{}",
            case.name
        );
    }
}

#[test]
fn a_changed_input_is_revision_two_and_a_new_job() {
    let (old, revisions) = settled(tuning_ws("https://example.com/a.parquet"));
    let mut ws = old.clone();
    ws.tuning
        .as_mut()
        .and_then(|t| t.input.as_mut())
        .expect("input")
        .urls = Some(vec!["https://example.com/b.parquet".into()]);
    // The old job is gone: revision 2 is recorded and its Job created.
    let plan = plan(
        &ws,
        &observed(ready(), None, revisions),
        &PlanContext::default(),
    );
    assert!(
        matches!(&plan.actions[0], Action::CreateRevision { revision: 2, .. }),
        "{:?}",
        plan.actions
    );
    assert!(plan.actions.contains(&Action::AnnotateWorkspace {
        hash: spec_hash(&ws),
        revision: 2
    }));
    assert_eq!(
        plan.actions.last(),
        Some(&Action::CreateJob { revision: 2 })
    );
}

#[test]
fn quota_failure_shows_the_provisioners_reason() {
    let (ws, revisions) = settled(tuning_ws("https://example.com/d.parquet"));
    let failed = NodeReadiness::Failed {
        reason: "QuotaExceeded".into(),
        message: "need 6 more vCPUs of NCv3".into(),
    };
    let plan = plan(
        &ws,
        &observed(Some(failed), None, revisions),
        &PlanContext::default(),
    );
    assert!(
        plan.actions.is_empty(),
        "no job, no new nodes: {:?}",
        plan.actions
    );
    let c = plan
        .status
        .condition(ConditionType::ResourceReady)
        .expect("set");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "QuotaExceeded")
    );
    assert!(c.message.contains("vCPUs"));
}

#[test]
fn deletion_deletes_nodes_then_removes_the_finalizer() {
    let (mut ws, revisions) = settled(tuning_ws("https://example.com/d.parquet"));
    ws.metadata.deletion_timestamp =
        Some(Time(Timestamp::from_second(1_800_000_100).expect("valid")));
    let mut obs = observed(ready(), None, revisions);
    let plan1 = plan(&ws, &obs, &PlanContext::default());
    assert_eq!(plan1.actions, vec![Action::DeleteNodes]);
    assert_eq!(cond(&plan1, ConditionType::WorkspaceDeleting).0, "True");
    obs.provisioned_nodes = 0;
    assert_eq!(
        plan(&ws, &obs, &PlanContext::default()).actions,
        vec![Action::RemoveFinalizer]
    );
    ws.metadata.finalizers = None;
    assert!(plan(&ws, &obs, &PlanContext::default()).actions.is_empty());
}

#[test]
fn an_unchanged_status_is_not_rewritten() {
    let (mut ws, revisions) = settled(tuning_ws("https://example.com/d.parquet"));
    let obs = observed(ready(), job(|j| j.active = 1), revisions);
    let first = plan(&ws, &obs, &PlanContext::default());
    assert!(first.status_changed);
    ws.status = Some(first.status);
    let second = plan(&ws, &obs, &PlanContext::default());
    assert!(!second.status_changed);
}

#[test]
fn inference_is_applied_then_ready() {
    let mut ws = WorkspaceV1Beta1::new("default", "tune");
    ws.inference = Some(InferenceSpec {
        preset: Some(PresetSpec {
            name: "phi-3-mini-4k-instruct".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let (ws, revisions) = settled(ws);
    let mut obs = observed(ready(), None, revisions);
    let plan1 = plan(&ws, &obs, &PlanContext::default());
    assert_eq!(plan1.actions, vec![Action::ApplyInference { revision: 1 }]);
    assert_eq!(plan1.status.state.as_deref(), Some("NotReady"));
    obs.inference = Some(ObservedInference {
        revision: Some("1".into()),
        replicas: 1,
        ready_replicas: 1,
    });
    let plan2 = plan(&ws, &obs, &PlanContext::default());
    assert!(plan2.actions.is_empty());
    assert_eq!(cond(&plan2, ConditionType::InferenceReady).0, "True");
    assert_eq!(plan2.status.state.as_deref(), Some("Ready"));
}
