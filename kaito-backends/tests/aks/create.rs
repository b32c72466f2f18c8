//! Creating pools: the PUT body, async-operation and Location polling, idempotence, restarts.

use kaito_core::traits::{NodeProvisioner, NodeReadiness};
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::*;

/// The PUT body without the creation timestamp (checked separately: it is "now").
fn expected_body() -> serde_json::Value {
    json!({"properties": {
        "count": 1, "vmSize": "Standard_NC24ads_A100_v4", "osDiskSizeGB": 1024, "osType": "Linux", "osSKU": "Ubuntu",
        "mode": "User", "type": "VirtualMachineScaleSets", "nodeTaints": ["sku=gpu:NoSchedule"],
        "nodeLabels": {"apps": "phi", "kaito.sh/workspace": "tune-phi", "kaito.sh/workspacenamespace": "default",
            "kaito.sh/machine-type": "gpu", "kaito.sh/node-provisioner": "aks"}
    }})
}

fn body_is_expected(r: &wiremock::Request) -> bool {
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
        return false;
    };
    let stamp = body["properties"]["nodeLabels"]
        .as_object_mut()
        .and_then(|l| l.remove("kaito.sh/creation-timestamp"));
    let stamp_ok = stamp
        .as_ref()
        .and_then(|s| s.as_str())
        .is_some_and(|s| s.len() == 20 && s.ends_with('Z') && !s.contains(':'));
    stamp_ok && body == expected_body()
}

fn created(f: &Fixture, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .insert_header("Azure-AsyncOperation", f.op_url(OPERATION).as_str())
        .insert_header("Retry-After", "0")
        .set_body_json(our_pool(name, "Creating"))
}

#[tokio::test]
async fn ensure_creates_one_pool_per_node_with_the_gpu_provisioner_body() {
    let f = Fixture::new().await;
    for i in 0..2 {
        arm("GET", &pool_path(&name(i)))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(arm_error("NotFound", "no pool")),
            )
            .expect(1)
            .mount(&f.server)
            .await;
        arm("PUT", &pool_path(&name(i)))
            .and(body_is_expected)
            .respond_with(created(&f, &name(i)))
            .expect(1)
            .mount(&f.server)
            .await;
    }
    f.provisioner
        .ensure_nodes(&requirements(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.server.verify().await;
    f.assert_all_authorized().await;
}

#[tokio::test]
async fn long_running_create_polls_the_async_operation_until_the_node_is_ready() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(sequence(vec![
            ResponseTemplate::new(404),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Creating")),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Succeeded")),
        ]))
        .expect(5)
        .mount(&f.server)
        .await;
    arm("PUT", &pool_path(&n))
        .respond_with(created(&f, &n))
        .expect(1)
        .mount(&f.server)
        .await;
    op(OPERATION)
        .respond_with(sequence(vec![
            ResponseTemplate::new(200)
                .insert_header("Retry-After", "0")
                .set_body_json(json!({"name": "op-1", "status": "InProgress"})),
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "op-1", "status": "Succeeded"})),
        ]))
        .expect(2)
        .mount(&f.server)
        .await;

    let req = requirements(1);
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pending = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&pending, NodeReadiness::Pending { reason, message } if reason == "NodeClaimNotReady" && message.contains("Creating")),
        "{pending:?}"
    );

    // Operation done, pool Succeeded, but no node yet; then a node without GPUs; then ready.
    let no_node = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&no_node, NodeReadiness::Pending { reason, .. } if reason == "NodeNotReady"),
        "{no_node:?}"
    );
    f.nodes.set(vec![node(&n, true, 0)]);
    let no_gpu = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&no_gpu, NodeReadiness::Pending { reason, .. } if reason == "NodePluginsNotReady"),
        "{no_gpu:?}"
    );
    f.nodes.set(vec![node(&n, true, 1)]);
    let ready = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ready,
        NodeReadiness::Ready {
            nodes: vec![format!("aks-{n}-12345678-vmss000000")]
        }
    );
    f.server.verify().await;
    f.assert_all_authorized().await;
}

#[tokio::test]
async fn create_with_only_a_location_header_polls_the_location() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(sequence(vec![
            ResponseTemplate::new(404),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Creating")),
        ]))
        .expect(2)
        .mount(&f.server)
        .await;
    let accepted = ResponseTemplate::new(201)
        .insert_header("Location", f.op_url(OPERATION_RESULT).as_str())
        .set_body_json(our_pool(&n, "Creating"));
    arm("PUT", &pool_path(&n))
        .respond_with(accepted)
        .expect(1)
        .mount(&f.server)
        .await;
    let error = json!({"error": {"code": "CreateVMSSAgentPoolFailed", "message": "VMSS failed", "details": [{"code": "SkuNotAvailable", "message": "Standard_NC24ads_A100_v4 is not available in westus3"}]}});
    op(OPERATION_RESULT)
        .respond_with(sequence(vec![
            ResponseTemplate::new(202).insert_header("Retry-After", "0"),
            ResponseTemplate::new(400).set_body_json(error),
        ]))
        .expect(2)
        .mount(&f.server)
        .await;

    let req = requirements(1);
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pending = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(pending, NodeReadiness::Pending { .. }),
        "{pending:?}"
    );
    let failed = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let NodeReadiness::Failed { reason, message } = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(reason, "SkuNotAvailable");
    assert!(message.contains("not available in westus3"), "{message}");
    // Known failed: no new PUT, no more polls.
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        f.provisioner.readiness(&req).await,
        Ok(NodeReadiness::Failed { .. })
    ));
    f.server.verify().await;
    f.assert_all_authorized().await;
}

#[tokio::test]
async fn ensure_twice_creates_nothing_new() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(sequence(vec![
            ResponseTemplate::new(404),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Creating")),
        ]))
        .expect(2)
        .mount(&f.server)
        .await;
    arm("PUT", &pool_path(&n))
        .respond_with(created(&f, &n))
        .expect(1)
        .mount(&f.server)
        .await;
    let req = requirements(1);
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Same process: the running create is known, no call at all.
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Another process: the pool exists, so only a GET.
    f.restarted()
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.server.verify().await;
}

#[tokio::test]
async fn an_in_progress_create_found_after_a_restart_is_waited_on() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(sequence(vec![
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Creating")),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Creating")),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Succeeded")),
        ]))
        .expect(3)
        .mount(&f.server)
        .await;
    arm("PUT", &pool_path(&n))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&f.server)
        .await;
    f.nodes.set(vec![node(&n, true, 2)]);
    let req = requirements(1);
    let restarted = f.restarted();
    restarted
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        restarted.readiness(&req).await,
        Ok(NodeReadiness::Pending { .. })
    ));
    assert!(matches!(
        restarted.readiness(&req).await,
        Ok(NodeReadiness::Ready { .. })
    ));
    f.server.verify().await;
}

#[tokio::test]
async fn a_put_refused_for_an_in_progress_create_is_accepted_and_watched() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(sequence(vec![
            ResponseTemplate::new(404),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Succeeded")),
        ]))
        .expect(3)
        .mount(&f.server)
        .await;
    let busy = arm_error(
        "OperationNotAllowed",
        "Operation is not allowed because there's an in progress create node pool operation",
    );
    arm("PUT", &pool_path(&n))
        .respond_with(ResponseTemplate::new(409).set_body_json(busy))
        .expect(1)
        .mount(&f.server)
        .await;
    f.nodes.set(vec![node(&n, true, 1)]);
    let req = requirements(1);
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        f.provisioner.readiness(&req).await,
        Ok(NodeReadiness::Ready { .. })
    ));
    f.server.verify().await;
}
