//! CRUD, conflicts, the status subresource, patch types, selectors, discovery and test
//! controls, all through a real `kube::Client`.

mod common;

use common::{code, config_map, reason, server};
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, PodSpec, PodTemplateSpec};
use kaito_harness::{FakeApiServer, Verb};
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::discovery::ApiResource;
use serde_json::json;

#[tokio::test]
async fn crud_round_trip_with_server_fields() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &config_map("a", &[], &[("k", "v")]))
        .await
        .unwrap();
    let md = &created.metadata;
    assert!(md.uid.is_some() && md.creation_timestamp.is_some());
    assert_eq!(md.namespace.as_deref(), Some("default"));
    assert_eq!(md.generation, Some(1));
    let rv1: u64 = md.resource_version.as_deref().unwrap().parse().unwrap();

    let got = api.get("a").await.unwrap();
    assert_eq!(got.data, created.data);

    let mut changed = got.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("k".into(), "w".into());
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(
        replaced.metadata.generation,
        Some(2),
        "a data change bumps generation"
    );

    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    let err = api
        .create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap_err();
    assert_eq!(reason(err), "AlreadyExists");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api.get("a").await.unwrap_err();
    assert_eq!(code(err), 404);

    let mut generated = config_map("", &[], &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(g.metadata.name.unwrap().starts_with("gen-"));
    assert_eq!(reason(api.get("a").await.unwrap_err()), "NotFound");
}

#[tokio::test]
async fn stale_resource_version_is_409_and_noop_keeps_rv() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let v1 = api
        .create(&PostParams::default(), &config_map("a", &[], &[("k", "1")]))
        .await
        .unwrap();
    let mut v2 = v1.clone();
    v2.data.as_mut().unwrap().insert("k".into(), "2".into());
    api.replace("a", &PostParams::default(), &v2).await.unwrap();
    let mut stale = v1.clone();
    stale.data.as_mut().unwrap().insert("k".into(), "3".into());
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(code(err), 409);

    let cur = api.get("a").await.unwrap();
    let same = api
        .replace("a", &PostParams::default(), &cur)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version, cur.metadata.resource_version,
        "no-op writes do not bump"
    );
}

#[tokio::test]
async fn cluster_scoped_and_namespaced_paths() {
    let (_s, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some("n1".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = nodes.create(&PostParams::default(), &node).await.unwrap();
    assert_eq!(created.metadata.namespace, None);
    assert!(nodes.get("n1").await.is_ok());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("team".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert!(namespaces.get("team").await.is_ok());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &config_map("x", &[], &[]))
        .await
        .unwrap();
    assert_eq!(
        code(
            Api::<ConfigMap>::namespaced(client.clone(), "other")
                .get("x")
                .await
                .unwrap_err()
        ),
        404
    );
    assert_eq!(
        Api::<ConfigMap>::all(client)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

fn job(name: &str) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec::default()),
            },
            ..Default::default()
        }),
        status: Some(JobStatus {
            active: Some(5),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn status_subresource_is_isolated() {
    let (_s, client) = server().await;
    let api: Api<Job> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &job("j")).await.unwrap();
    assert!(
        created.status.is_none(),
        "create drops status for kinds with the subresource"
    );

    let mut with_status = created.clone();
    with_status.status = Some(JobStatus {
        active: Some(1),
        ..Default::default()
    });
    with_status.spec.as_mut().unwrap().parallelism = Some(3);
    let after_status = api
        .replace_status("j", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(after_status.status.as_ref().unwrap().active, Some(1));
    assert_eq!(
        after_status.spec.as_ref().unwrap().parallelism,
        None,
        "status write ignores spec"
    );
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes keep generation"
    );

    let mut main = after_status.clone();
    main.status = Some(JobStatus {
        active: Some(9),
        ..Default::default()
    });
    main.spec.as_mut().unwrap().parallelism = Some(2);
    let after_main = api
        .replace("j", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(
        after_main.status.as_ref().unwrap().active,
        Some(1),
        "main write ignores status"
    );
    assert_eq!(after_main.spec.as_ref().unwrap().parallelism, Some(2));
    assert_eq!(after_main.metadata.generation, Some(2));

    let patched = api
        .patch_status(
            "j",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": 1}, "spec": {"parallelism": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref().unwrap().ready, Some(1));
    assert_eq!(patched.spec.as_ref().unwrap().parallelism, Some(2));
}

#[tokio::test]
async fn workspace_is_served_at_both_versions() {
    let (_s, client) = server().await;
    let ar = |v: &str| {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kaito.sh", v, "Workspace"),
            "workspaces",
        )
    };
    let beta: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar("v1beta1"));
    let alpha: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar("v1alpha1"));
    let mut ws = DynamicObject::new("ws", &ar("v1beta1"));
    ws.data = json!({"resource": {"instanceType": "Standard_NC24ads_A100_v4"}, "tuning": {"preset": {"name": "phi-3-mini-128k-instruct"}}});
    beta.create(&PostParams::default(), &ws).await.unwrap();
    let got = alpha.get("ws").await.unwrap();
    assert_eq!(got.types.unwrap().api_version, "kaito.sh/v1alpha1");
    assert_eq!(
        got.data["tuning"]["preset"]["name"],
        "phi-3-mini-128k-instruct"
    );
}

#[tokio::test]
async fn discovery_finds_registered_kinds() {
    let (_s, client) = server().await;
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"))
        .expect("NodeClaim discovered");
    assert_eq!(ar.plural, "nodeclaims");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("batch", "v1", "Job"))
            .is_some()
    );
}

#[tokio::test]
async fn injected_failures_and_counters() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    s.fail_next(Verb::Create, "ConfigMap", 500);
    let err = api
        .create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap_err();
    assert_eq!(code(err), 500);
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    s.fail_next_with(
        Verb::Get,
        "ConfigMap",
        kaito_harness::ApiError::conflict("configmaps", "a"),
    );
    assert_eq!(reason(api.get("a").await.unwrap_err()), "Conflict");
    assert_eq!(s.request_count(Verb::Create, "ConfigMap"), 2);
    assert_eq!(s.request_count(Verb::Get, "ConfigMap"), 1);
    assert_eq!(s.request_count(Verb::Delete, "ConfigMap"), 0);
}

#[tokio::test]
async fn cleared_faults_unregistered_kinds_and_unserved_requests() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // 500, not 503: kube's client retries 503s itself (with backoff), 100 of them take minutes.
    s.fail_times(Verb::Create, "ConfigMap", 500, 100);
    assert_eq!(
        code(
            api.create(&PostParams::default(), &config_map("a", &[], &[]))
                .await
                .unwrap_err()
        ),
        500
    );
    s.clear_faults();
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();

    // A cluster without the Karpenter CRDs: 404 on the path, absent from discovery, logged.
    assert!(s.unserved_requests().is_empty());
    s.store()
        .unregister(&kaito_harness::ResourceKey::nodeclaims());
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"),
        "nodeclaims",
    );
    let claims: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    assert_eq!(
        code(claims.list(&ListParams::default()).await.unwrap_err()),
        404
    );
    assert_eq!(s.request_count(Verb::List, "NodeClaim"), 0, "never routed");
    assert_eq!(
        s.unserved_requests(),
        vec!["GET /apis/karpenter.sh/v1/nodeclaims".to_owned()]
    );
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"))
            .is_none()
    );
    s.reset_counts();
    assert!(s.unserved_requests().is_empty());
}

#[tokio::test]
async fn kubeconfig_reaches_the_server() {
    let s = FakeApiServer::start().await.unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&s.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    s.store().create(&config_map("seen", &[], &[])).unwrap_err(); // direct writes need a namespace
    let mut cm = config_map("seen", &[], &[]);
    cm.metadata.namespace = Some("default".into());
    s.store().create(&cm).unwrap();
    let got: ConfigMap = Api::default_namespaced(client).get("seen").await.unwrap();
    assert_eq!(got.metadata.name.as_deref(), Some("seen"));
}
