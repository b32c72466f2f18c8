//! kube-runtime helpers beyond the Controller: the events `Recorder` (events.k8s.io/v1,
//! create then merge-patch of a series) and Lease-style optimistic locking.

mod common;

use common::{code, config_map, server};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Resource;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

#[tokio::test]
async fn recorder_creates_then_patches_a_series() {
    let (s, client) = server().await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let cm = cms
        .create(&PostParams::default(), &config_map("target", &[], &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kaito".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "NodeClaimCreated".into(),
        note: Some("created nodeclaim ws0123".into()),
        action: "Provision".into(),
        secondary: None,
    };
    recorder.publish(&ev, &cm.object_ref(&())).await.unwrap();
    recorder.publish(&ev, &cm.object_ref(&())).await.unwrap();
    let events: Api<K8sEvent> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "the repeat is a series on the same Event"
    );
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("NodeClaimCreated"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(s.request_count(kaito_harness::Verb::Create, "Event"), 1);
}

#[tokio::test]
async fn lease_takeover_is_optimistic() {
    let (_s, client) = server().await;
    let leases: Api<Lease> = Api::namespaced(client, "kaito-system");
    let mut lease = Lease::default();
    lease.metadata.name = Some("kaito-operator".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("a".into()),
        ..Default::default()
    });
    let held = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut by_b = held.clone();
    by_b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let mut by_c = held.clone();
    by_c.spec.as_mut().unwrap().holder_identity = Some("c".into());
    leases
        .replace("kaito-operator", &PostParams::default(), &by_b)
        .await
        .unwrap();
    let err = leases
        .replace("kaito-operator", &PostParams::default(), &by_c)
        .await
        .unwrap_err();
    assert_eq!(code(err), 409, "the second contender loses");
    let now = leases.get("kaito-operator").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));
}
