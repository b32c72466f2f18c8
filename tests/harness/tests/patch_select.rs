//! Every PATCH content type and label/field selectors (with paging), through a real
//! `kube::Client`.

mod common;

use common::{code, config_map, server};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn every_patch_type() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &config_map("a", &[("x", "1")], &[("k", "v")]),
    )
    .await
    .unwrap();
    let pp = PatchParams::default();

    let merged = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"y": "2"}}, "data": {"k": null}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.labels.as_ref().unwrap().len(), 2);
    assert!(merged.data.unwrap_or_default().is_empty());

    let smp = api
        .patch("a", &pp, &Patch::Strategic(json!({"data": {"s": "1"}})))
        .await
        .unwrap();
    assert_eq!(smp.data.unwrap()["s"], "1");

    let ok: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/labels/x", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
    ]))
    .unwrap();
    let jp = api.patch("a", &pp, &Patch::<()>::Json(ok)).await.unwrap();
    assert_eq!(jp.metadata.finalizers, Some(vec!["f".to_string()]));
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/labels/x", "value": "nope"},
        {"op": "remove", "path": "/metadata/finalizers"}
    ]))
    .unwrap();
    assert_eq!(
        code(
            api.patch("a", &pp, &Patch::<()>::Json(failing))
                .await
                .unwrap_err()
        ),
        422
    );

    let stale = Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"z": "1"}}));
    assert_eq!(
        code(api.patch("a", &pp, &stale).await.unwrap_err()),
        409,
        "rv in a patch is a precondition"
    );

    let apply = PatchParams::apply("harness-test");
    let created = api
        .patch("b", &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"a": "1"}})))
        .await
        .unwrap();
    assert_eq!(
        created.data.unwrap()["a"],
        "1",
        "apply creates a missing object"
    );
    let applied = api
        .patch("b", &apply, &Patch::Apply(json!({"data": {"b": "2"}})))
        .await
        .unwrap();
    assert_eq!(
        applied.data.unwrap().len(),
        2,
        "apply merges into the existing object"
    );
    assert_eq!(
        code(
            api.patch("missing", &pp, &Patch::Merge(json!({})))
                .await
                .unwrap_err()
        ),
        404
    );
}

#[tokio::test]
async fn label_and_field_selectors() {
    let (_s, client) = server().await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    for (name, app, tier) in [
        ("p1", "web", "gpu"),
        ("p2", "web", "cpu"),
        ("p3", "db", "gpu"),
    ] {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.labels = Some(
            [
                ("app".to_string(), app.to_string()),
                ("tier".to_string(), tier.to_string()),
            ]
            .into(),
        );
        api.create(&PostParams::default(), &pod).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<Pod>| {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let q = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(api.list(&q("app=web")).await.unwrap()), ["p1", "p2"]);
    assert_eq!(names(api.list(&q("app!=web")).await.unwrap()), ["p3"]);
    assert_eq!(
        names(api.list(&q("tier in (gpu),app notin (db)")).await.unwrap()),
        ["p1"]
    );
    assert_eq!(names(api.list(&q("tier")).await.unwrap()).len(), 3);
    assert!(names(api.list(&q("!tier")).await.unwrap()).is_empty());
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=p2"))
                .await
                .unwrap()
        ),
        ["p2"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.namespace=default,metadata.name!=p2"))
                .await
                .unwrap()
        ),
        ["p1", "p3"]
    );
    assert_eq!(code(api.list(&q("tier in gpu")).await.unwrap_err()), 400);

    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().expect("a continue token");
    let rest = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest), ["p3"]);
}
