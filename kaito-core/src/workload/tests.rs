//! Golden tests: the seed workspace's Job and an inference workspace's StatefulSet and Services,
//! compared field for field with files under `src/workload/golden/` (regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p kaito-core workload`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::api::manifest::parse_manifests;
use crate::api::{AdapterSpec, DataSource, InferenceSpec, PresetSpec, ResourceSpec};

const SEED: &str = include_str!("../../../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");

fn seed() -> WorkspaceV1Beta1 {
    let mut ws = parse_manifests("seed", SEED)
        .expect("seed parses")
        .workspaces
        .remove(0)
        .into_storage();
    ws.metadata.namespace = Some("default".into());
    ws.metadata.uid = Some("0b5e7c1e-1111-4222-8333-944445555666".into());
    ws
}

fn settings() -> WorkloadSettings {
    WorkloadSettings {
        image: "ghcr.io/kaito-rs/kaito:0.1.0".into(),
        gpu_count: 1,
        azure: true,
        backoff_limit: 6,
        kernel_cache_host_path: Some(super::DEFAULT_KERNEL_CACHE_HOST_PATH.into()),
    }
}

fn golden(name: &str, actual: &impl serde::Serialize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/workload/golden")
        .join(name);
    let actual = serde_json::to_value(actual).expect("serializes");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&actual).expect("json") + "\n",
        )
        .expect("write golden");
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    let expected: Value = serde_json::from_str(&text).expect("golden is JSON");
    assert_eq!(
        actual,
        expected,
        "{} differs; if intended, regenerate with UPDATE_GOLDEN=1",
        path.display()
    );
}

#[test]
fn seed_tuning_job_matches_golden() {
    let job = tuning_job(&seed(), 1, &settings()).expect("job");
    golden("tuning_job_seed.json", &job);
}

#[test]
fn seed_tuning_job_has_kaitos_essentials() {
    let job =
        serde_json::to_value(tuning_job(&seed(), 2, &settings()).expect("job")).expect("json");
    assert_eq!(
        job["metadata"]["annotations"]["workspace.kaito.io/revision"],
        "2"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let term = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0];
    assert_eq!(
        term["matchExpressions"],
        json!([{ "key": "app", "operator": "In", "values": ["tuning-phi-3"] }])
    );
    let c = &pod["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(&args[..2], ["tune", "--in-cluster"]);
    assert!(
        args.windows(2).any(|w| w
            == [
                "--output-image",
                "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1"
            ]),
        "{args:?}"
    );
    let volumes = pod["volumes"].as_array().expect("volumes");
    let config = volumes
        .iter()
        .find(|v| v["name"] == "config-volume")
        .expect("config volume");
    assert_eq!(
        config["configMap"]["name"], "qlora-params-template",
        "empty config falls back to the method's template"
    );
    let auth = volumes
        .iter()
        .find(|v| v["name"] == "registry-auth")
        .expect("push secret projected");
    assert_eq!(
        auth["projected"]["sources"][0]["secret"]["name"],
        "ACR_REGISTRY_SECRET_HERE"
    );
    assert_eq!(
        volumes.iter().find(|v| v["name"] == "dshm").expect("dshm")["emptyDir"]["medium"],
        "Memory"
    );
    assert_eq!(
        pod["imagePullSecrets"][0]["name"],
        "ACR_REGISTRY_SECRET_HERE"
    );
}

#[test]
fn volume_sources_replace_the_empty_dirs_and_cpu_has_no_gpu_request() {
    let mut ws = seed();
    let tuning = ws.tuning.as_mut().expect("tuning");
    tuning.config = Some("my-config".into());
    tuning.input = Some(DataSource {
        name: Some("in".into()),
        volume_source: Some(json!({"persistentVolumeClaim": {"claimName": "data"}})),
        ..Default::default()
    });
    tuning.output = Some(crate::api::DataDestination {
        volume_source: Some(json!({"persistentVolumeClaim": {"claimName": "out"}})),
        ..Default::default()
    });
    let s = WorkloadSettings {
        gpu_count: 0,
        azure: false,
        ..settings()
    };
    let job = serde_json::to_value(tuning_job(&ws, 1, &s).expect("job")).expect("json");
    let pod = &job["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().expect("volumes");
    let by = |n: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == n)
            .cloned()
            .expect("volume")
    };
    assert_eq!(
        by("data-volume")["persistentVolumeClaim"]["claimName"],
        "data"
    );
    assert_eq!(
        by("results-volume")["persistentVolumeClaim"]["claimName"],
        "out"
    );
    assert_eq!(by("config-volume")["configMap"]["name"], "my-config");
    assert!(pod["containers"][0].get("resources").is_none());
    assert!(volumes.iter().all(|v| v["name"] != "registry-auth"));
    assert_eq!(
        pod["tolerations"].as_array().expect("tolerations").len(),
        2,
        "no spot toleration off Azure"
    );

    tuning_job(&WorkspaceV1Beta1::new("ns", "x"), 1, &s).expect_err("no tuning");
    let mut bad = seed();
    bad.tuning
        .as_mut()
        .expect("tuning")
        .input
        .as_mut()
        .expect("input")
        .volume_source = Some(json!("nope"));
    let err = tuning_job(&bad, 1, &s).expect_err("bad volume");
    assert!(
        err.to_string().contains("tuning.input.volumeSource"),
        "{err}"
    );
}

fn inference_ws(lb: bool) -> WorkspaceV1Beta1 {
    let mut ws = WorkspaceV1Beta1::new("default", "phi-3-chat");
    ws.metadata.uid = Some("7c9e6679-7425-40de-944b-e07fc1f90ae7".into());
    if lb {
        ws.metadata.annotations =
            Some([("kaito.sh/enablelb".to_owned(), "True".to_owned())].into());
    }
    ws.resource = Some(ResourceSpec {
        instance_type: Some("Standard_NC6s_v3".into()),
        label_selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([("apps".to_owned(), "phi-3".to_owned())].into()),
            match_expressions: None,
        },
        ..Default::default()
    });
    ws.inference = Some(InferenceSpec {
        preset: Some(PresetSpec {
            name: "phi-3-mini-128k-instruct".into(),
            ..Default::default()
        }),
        adapters: Some(vec![
            AdapterSpec {
                source: Some(DataSource {
                    name: Some("dolly".into()),
                    image: Some("myacr.azurecr.io/adapter-dolly:0.0.1".into()),
                    image_pull_secrets: Some(vec!["acr-pull".into()]),
                    ..Default::default()
                }),
                strength: Some("0.5".into()),
            },
            AdapterSpec {
                source: Some(DataSource {
                    name: Some("local".into()),
                    volume_source: Some(
                        json!({"persistentVolumeClaim": {"claimName": "adapters"}}),
                    ),
                    ..Default::default()
                }),
                strength: None,
            },
        ]),
        ..Default::default()
    });
    ws
}

#[test]
fn inference_objects_match_golden() {
    let ws = inference_ws(false);
    golden(
        "inference_statefulset.json",
        &inference_statefulset(&ws, 1, &settings()).expect("sts"),
    );
    golden(
        "inference_service.json",
        &inference_service(&ws).expect("svc"),
    );
    golden(
        "inference_headless_service.json",
        &headless_service(&ws).expect("headless"),
    );
}

#[test]
fn inference_adapters_service_and_probes() {
    let ws = inference_ws(true);
    let sts = serde_json::to_value(inference_statefulset(&ws, 3, &settings()).expect("sts"))
        .expect("json");
    assert_eq!(sts["spec"]["serviceName"], "phi-3-chat-headless");
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.windows(2).any(|w| w
            == [
                "--adapter",
                "dolly=oci://myacr.azurecr.io/adapter-dolly:0.0.1"
            ]),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--adapter", "local=/mnt/adapter/local"]),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--adapter-strength", "dolly=0.5"]),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--adapter-strength", "local=1.0"]),
        "{args:?}"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 5000);
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/mnt/adapter/local")
    );
    let svc = serde_json::to_value(inference_service(&ws).expect("svc")).expect("json");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 5000);
    assert_eq!(
        svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
        "phi-3-chat-0"
    );
}

#[test]
fn custom_inference_template_is_used_with_workspace_labels() {
    let mut ws = inference_ws(false);
    let inference = ws.inference.as_mut().expect("inference");
    inference.preset = None;
    inference.adapters = None;
    inference.template =
        Some(json!({"spec": {"containers": [{"name": "custom", "image": "nginx"}]}}));
    let sts = inference_statefulset(&ws, 1, &settings()).expect("sts");
    let template = sts.spec.template;
    assert_eq!(template.spec.expect("pod").containers[0].name, "custom");
    assert_eq!(
        template
            .metadata
            .and_then(|m| m.labels)
            .and_then(|l| l.get("kaito.sh/workspace").cloned())
            .as_deref(),
        Some("phi-3-chat")
    );
}

#[test]
fn gpu_pods_share_the_nodes_kernel_cache_and_cpu_pods_do_not() {
    let ws = seed();
    let find = |pod: &serde_json::Value| {
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "kernel-cache")
            .cloned();
        let env: BTreeMap<String, String> = pod["containers"][0]["env"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|v| Some((v["name"].as_str()?.into(), v["value"].as_str()?.into())))
                    .collect()
            })
            .unwrap_or_default();
        (volume, env)
    };
    let job = |s: &WorkloadSettings| {
        let job = serde_json::to_value(tuning_job(&ws, 1, s).expect("job")).expect("json");
        find(&job["spec"]["template"]["spec"])
    };

    let (volume, env) = job(&settings());
    let volume = volume.expect("a GPU job mounts the kernel cache");
    assert_eq!(volume["hostPath"]["path"], "/var/lib/kaito/kernel-cache");
    assert_eq!(volume["hostPath"]["type"], "DirectoryOrCreate");
    assert_eq!(env["KAITO_KERNEL_CACHE"], super::KERNEL_CACHE_DIR);
    assert_eq!(
        env["CUDA_CACHE_PATH"],
        format!("{}/nv", super::KERNEL_CACHE_DIR)
    );

    for s in [
        WorkloadSettings {
            gpu_count: 0,
            ..settings()
        },
        WorkloadSettings {
            kernel_cache_host_path: None,
            ..settings()
        },
        WorkloadSettings {
            kernel_cache_host_path: Some(String::new()),
            ..settings()
        },
    ] {
        let (volume, env) = job(&s);
        assert!(volume.is_none(), "{s:?}");
        assert!(!env.contains_key("KAITO_KERNEL_CACHE"), "{s:?}");
    }

    let inference = inference_ws(false);
    let sts = serde_json::to_value(inference_statefulset(&inference, 1, &settings()).expect("sts"))
        .expect("json");
    let (volume, env) = find(&sts["spec"]["template"]["spec"]);
    assert!(volume.is_some() && env.contains_key("CUDA_CACHE_MAXSIZE"));
}
