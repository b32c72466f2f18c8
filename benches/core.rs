//! kaito-core's hot paths in the operator: planning one reconcile and validating a Workspace.
//! `cargo bench -p kaito-core --bench core`

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaito_core::api::manifest::parse_manifests;
use kaito_core::planner::{Observed, PlanContext, plan};
use kaito_core::traits::NodeReadiness;
use kaito_core::validation::{ValidationContext, check_create};

const SEED: &str = include_str!("../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");

fn core(c: &mut Criterion) {
    let ws = parse_manifests("seed", SEED)
        .expect("seed")
        .workspaces
        .remove(0)
        .into_storage();
    let observed = Observed {
        nodes: Some(NodeReadiness::Ready {
            nodes: vec!["n1".into()],
        }),
        provisioned_nodes: 1,
        job: None,
        inference: None,
        revisions: vec![],
        now: Time(Timestamp::from_second(0).expect("epoch")),
    };
    let ctx = ValidationContext {
        placeholders_as_warnings: true,
        ..ValidationContext::default()
    };
    c.bench_function("parse seed manifest", |b| {
        b.iter(|| parse_manifests("seed", SEED))
    });
    c.bench_function("plan one reconcile", |b| {
        b.iter(|| plan(&ws, &observed, &PlanContext::default()))
    });
    c.bench_function("validate seed", |b| b.iter(|| check_create(&ws, &ctx)));
}

criterion_group!(benches, core);
criterion_main!(benches);
