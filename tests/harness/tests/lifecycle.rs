//! Deletion: finalizers and deletionTimestamp, ownerReference garbage collection
//! (cascading, multiple owners, orphaning), delete preconditions and deletecollection.

mod common;

use common::{code, config_map, server};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kaito_harness::ResourceKey;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use serde_json::json;

fn owner_ref(cm: &ConfigMap) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: cm.metadata.name.clone().unwrap(),
        uid: cm.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn secret(name: &str, owners: Vec<OwnerReference>) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.owner_references = Some(owners);
    s
}

#[tokio::test]
async fn finalizers_delay_removal_until_cleared() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm = config_map("f", &[], &[]);
    cm.metadata.finalizers = Some(vec!["a/x".into(), "b/y".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();

    let deleted = api
        .delete("f", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object, still there");
    let ts = deleted
        .metadata
        .deletion_timestamp
        .clone()
        .expect("deletionTimestamp set");
    let again = api
        .delete("f", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        again.metadata.deletion_timestamp,
        Some(ts),
        "a second delete changes nothing"
    );

    let rm_first = Patch::Merge(json!({"metadata": {"finalizers": ["b/y"]}}));
    let still = api
        .patch("f", &PatchParams::default(), &rm_first)
        .await
        .unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());

    let mut last = api.get("f").await.unwrap();
    last.metadata.finalizers = None;
    api.replace("f", &PostParams::default(), &last)
        .await
        .unwrap();
    assert_eq!(
        code(api.get("f").await.unwrap_err()),
        404,
        "gone once the last finalizer is removed"
    );
}

#[tokio::test]
async fn owner_deletion_cascades_and_respects_other_owners() {
    let (s, client) = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let owner = cms
        .create(&PostParams::default(), &config_map("owner", &[], &[]))
        .await
        .unwrap();
    let other = cms
        .create(&PostParams::default(), &config_map("other", &[], &[]))
        .await
        .unwrap();
    // owner -> child (ConfigMap) -> grandchild (Secret); shared has two owners.
    let mut child = config_map("child", &[], &[]);
    child.metadata.owner_references = Some(vec![owner_ref(&owner)]);
    let child = cms.create(&PostParams::default(), &child).await.unwrap();
    secrets
        .create(
            &PostParams::default(),
            &secret("grandchild", vec![owner_ref(&child)]),
        )
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &secret("shared", vec![owner_ref(&owner), owner_ref(&other)]),
        )
        .await
        .unwrap();
    let mut guarded = secret("guarded", vec![owner_ref(&owner)]);
    guarded.metadata.finalizers = Some(vec!["keep/me".into()]);
    secrets
        .create(&PostParams::default(), &guarded)
        .await
        .unwrap();

    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(cms.get("child").await.unwrap_err()), 404);
    assert_eq!(
        code(secrets.get("grandchild").await.unwrap_err()),
        404,
        "cascades"
    );
    let shared = secrets.get("shared").await.unwrap();
    let refs = shared.metadata.owner_references.unwrap();
    assert_eq!(refs.len(), 1, "dangling reference dropped");
    assert_eq!(refs[0].name, "other");
    let guarded = secrets.get("guarded").await.unwrap();
    assert!(
        guarded.metadata.deletion_timestamp.is_some(),
        "GC deletes gracefully"
    );
    assert!(
        s.store()
            .get_raw(&ResourceKey::new("", "secrets"), "default", "guarded")
            .is_some()
    );
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents() {
    let (_s, client) = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let owner = cms
        .create(&PostParams::default(), &config_map("owner", &[], &[]))
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &secret("dep", vec![owner_ref(&owner)]),
        )
        .await
        .unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    cms.delete("owner", &dp).await.unwrap();
    let dep = secrets.get("dep").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());
    let fg = DeleteParams::foreground();
    let owner2 = cms
        .create(&PostParams::default(), &config_map("owner2", &[], &[]))
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &secret("dep2", vec![owner_ref(&owner2)]),
        )
        .await
        .unwrap();
    cms.delete("owner2", &fg).await.unwrap();
    assert_eq!(
        code(secrets.get("dep2").await.unwrap_err()),
        404,
        "foreground deletes dependents too"
    );
    assert_eq!(code(cms.get("owner2").await.unwrap_err()), 404);

    // A dependent held by a finalizer keeps a foreground-deleted owner around.
    let owner3 = cms
        .create(&PostParams::default(), &config_map("owner3", &[], &[]))
        .await
        .unwrap();
    let mut held = secret("held", vec![owner_ref(&owner3)]);
    held.metadata.finalizers = Some(vec!["keep/me".into()]);
    secrets.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("owner3", &fg).await.unwrap();
    let waiting = cms.get("owner3").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(waiting.metadata.finalizers.unwrap(), ["foregroundDeletion"]);
    secrets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(code(secrets.get("held").await.unwrap_err()), 404);
    assert_eq!(
        code(cms.get("owner3").await.unwrap_err()),
        404,
        "owner released once its dependents are gone"
    );
}

#[tokio::test]
async fn delete_preconditions_and_collection() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(&PostParams::default(), &config_map(n, &[("g", l)], &[]))
            .await
            .unwrap();
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(code(api.delete("a", &dp).await.unwrap_err()), 409);
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("g=x"),
    )
    .await
    .unwrap();
    let left = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(left.items.len(), 1);
    assert_eq!(left.items[0].metadata.name.as_deref(), Some("c"));
}
