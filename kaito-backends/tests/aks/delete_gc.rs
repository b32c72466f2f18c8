//! Deleting pools, listing them, and garbage-collecting orphans.

use std::time::Duration;

use kaito_backends::provision::aks::format_timestamp;
use kaito_core::traits::{NodeProvisioner, ProvisionedNode, WorkspaceRef};
use serde_json::json;
use wiremock::matchers::{method, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::*;

fn page(pools: Vec<serde_json::Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "value": pools }))
}

#[tokio::test]
async fn delete_of_a_missing_pool_is_success() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", POOLS)
        .respond_with(page(vec![our_pool(&n, "Succeeded")]))
        .expect(1)
        .mount(&f.server)
        .await;
    let gone =
        ResponseTemplate::new(404).set_body_json(arm_error("NotFound", "Agent Pool not found"));
    arm("DELETE", &pool_path(&n))
        .respond_with(gone)
        .expect(1)
        .mount(&f.server)
        .await;
    f.provisioner
        .delete_nodes(&ws())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.server.verify().await;
    f.assert_all_authorized().await;
}

#[tokio::test]
async fn delete_polls_the_location_until_the_pool_is_gone() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", POOLS)
        .respond_with(sequence(vec![
            page(vec![our_pool(&n, "Succeeded")]),
            page(vec![our_pool(&n, "Deleting")]),
            page(vec![]),
        ]))
        .expect(4)
        .mount(&f.server)
        .await;
    let accepted = ResponseTemplate::new(202)
        .insert_header("Location", f.op_url(OPERATION_RESULT).as_str())
        .insert_header("Retry-After", "0");
    arm("DELETE", &pool_path(&n))
        .respond_with(accepted)
        .expect(1)
        .mount(&f.server)
        .await;
    op(OPERATION_RESULT)
        .respond_with(sequence(vec![
            ResponseTemplate::new(202).insert_header("Retry-After", "0"),
            ResponseTemplate::new(204),
        ]))
        .expect(2)
        .mount(&f.server)
        .await;

    f.provisioner
        .delete_nodes(&ws())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.provisioner
        .wait_deleted(&ws(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        f.provisioner
            .list_nodes(&ws())
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        Vec::<ProvisionedNode>::new()
    );
    // Deleting again: nothing left, nothing sent (the DELETE expectation is exactly one).
    f.provisioner
        .delete_nodes(&ws())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.server.verify().await;
    f.assert_all_authorized().await;
}

#[tokio::test]
async fn a_pool_found_deleting_after_a_restart_is_waited_on_not_deleted_again() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", POOLS)
        .respond_with(page(vec![our_pool(&n, "Deleting")]))
        .expect(2)
        .mount(&f.server)
        .await;
    arm("DELETE", &pool_path(&n))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&f.server)
        .await;
    arm("GET", &pool_path(&n))
        .respond_with(sequence(vec![
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Deleting")),
            ResponseTemplate::new(404),
        ]))
        .expect(2)
        .mount(&f.server)
        .await;
    let restarted = f.restarted();
    restarted
        .delete_nodes(&ws())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    restarted
        .wait_deleted(&ws(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.server.verify().await;
}

#[tokio::test]
async fn delete_with_an_async_operation_that_fails_is_reported() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", POOLS)
        .respond_with(page(vec![our_pool(&n, "Succeeded")]))
        .expect(2)
        .mount(&f.server)
        .await;
    let accepted = ResponseTemplate::new(202)
        .insert_header("Azure-AsyncOperation", f.op_url(OPERATION).as_str());
    arm("DELETE", &pool_path(&n))
        .respond_with(accepted)
        .expect(1)
        .mount(&f.server)
        .await;
    let failed = json!({"status": "Failed", "error": {"code": "PodDrainFailure", "message": "drain blocked by a PodDisruptionBudget"}});
    op(OPERATION)
        .respond_with(ResponseTemplate::new(200).set_body_json(failed))
        .expect(1)
        .mount(&f.server)
        .await;
    f.provisioner
        .delete_nodes(&ws())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = f
        .provisioner
        .wait_deleted(&ws(), Duration::from_secs(5))
        .await
        .err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("PodDrainFailure: drain blocked")),
        "{err:?}"
    );
    f.server.verify().await;
}

#[tokio::test]
async fn list_nodes_reports_the_workspace_pools_and_their_nodes() {
    let f = Fixture::new().await;
    let foreign = pool_json("nodepool1", "Succeeded", None, "2020-01-01T00-00-00Z");
    arm("GET", POOLS)
        .respond_with(page(vec![
            our_pool(&name(1), "Creating"),
            foreign,
            our_pool(&name(0), "Succeeded"),
        ]))
        .expect(1)
        .mount(&f.server)
        .await;
    f.nodes.set(vec![node(&name(0), true, 1)]);
    let listed = f
        .provisioner
        .list_nodes(&ws())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let vm = Some("Standard_NC24ads_A100_v4".to_owned());
    assert_eq!(
        listed,
        vec![
            ProvisionedNode {
                name: name(0),
                node_name: Some(format!("aks-{}-12345678-vmss000000", name(0))),
                instance_type: vm.clone(),
                ready: true
            },
            ProvisionedNode {
                name: name(1),
                node_name: None,
                instance_type: vm,
                ready: false
            },
        ]
    );
    f.server.verify().await;
}

#[tokio::test]
async fn gc_deletes_orphaned_pools_only_following_next_link() {
    let f = Fixture::new().await;
    let gone = Some(("default", "deleted-ws"));
    let old = "2020-01-01T00-00-00Z";
    let fresh = format_timestamp(azure_core::time::OffsetDateTime::now_utc());
    let next = format!(
        "{}{POOLS}?api-version={API_VERSION}&$skipToken=page2",
        f.server.uri()
    );
    let page1 = json!({"value": [our_pool(&name(0), "Succeeded"), pool_json("orphanold", "Succeeded", gone, old)], "nextLink": next});
    let mut gpu_provisioner_pool = pool_json("ws0123456789", "Succeeded", None, old);
    gpu_provisioner_pool["properties"]["nodeLabels"]["kaito.sh/workspace"] = json!("deleted-ws");
    let page2 = page(vec![
        pool_json("orphannew", "Creating", gone, &fresh),
        pool_json("orphandel", "Deleting", gone, old),
        pool_json("nodepool1", "Succeeded", None, old),
        gpu_provisioner_pool,
    ]);
    arm("GET", POOLS)
        .and(query_param("$skipToken", "page2"))
        .respond_with(page2)
        .with_priority(1)
        .expect(1)
        .mount(&f.server)
        .await;
    arm("GET", POOLS)
        .respond_with(ResponseTemplate::new(200).set_body_json(page1))
        .expect(1)
        .mount(&f.server)
        .await;
    let accepted =
        ResponseTemplate::new(202).insert_header("Location", f.op_url(OPERATION_RESULT).as_str());
    arm("DELETE", &pool_path("orphanold"))
        .respond_with(accepted)
        .with_priority(1)
        .expect(1)
        .mount(&f.server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&f.server)
        .await;

    let deleted = f
        .provisioner
        .gc(&[
            ws(),
            WorkspaceRef {
                namespace: "other".into(),
                name: "x".into(),
            },
        ])
        .await;
    assert_eq!(
        deleted.unwrap_or_else(|e| panic!("{e}")),
        vec!["orphanold".to_owned()]
    );
    f.server.verify().await;
    f.assert_all_authorized().await;
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let f = Fixture::new().await;
    let body = json!({"value": [], "nextLink": "https://attacker.example.com/steal?api-version=1"});
    arm("GET", POOLS)
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&f.server)
        .await;
    let err = f.provisioner.list_nodes(&ws()).await.err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("another host")),
        "{err:?}"
    );
    f.server.verify().await;
}
