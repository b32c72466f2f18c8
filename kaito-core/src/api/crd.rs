//! The Workspace CustomResourceDefinition, generated from the Rust types.
//!
//! The committed manifest (`deploy/crds/kaito.sh_workspaces.yaml`) is compared against this in a
//! test, so the CRD can never drift from the types. v1beta1 is the storage version; v1alpha1 is
//! the same schema without the v1beta1-only fields and with v1alpha1's `instanceType` default.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresources,
    CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::{Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Value, json};

use super::version::{GROUP, KIND, PLURAL};
use super::workspace::{InferenceSpec, ResourceSpec, TuningSpec, WorkspaceStatus};

/// The CRD's name.
pub const CRD_NAME: &str = "workspaces.kaito.sh";
/// v1alpha1's default for `resource.instanceType`.
pub const V1ALPHA1_DEFAULT_INSTANCE_TYPE: &str = "Standard_NC24ads_A100_v4";

/// Schema for schemaless fields (pod templates, volume sources): any object is kept.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// The Workspace CRD serving both versions.
pub fn workspace_crd() -> CustomResourceDefinition {
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(CRD_NAME.to_owned()),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: KIND.to_owned(),
                list_kind: Some(format!("{KIND}List")),
                plural: PLURAL.to_owned(),
                singular: Some("workspace".to_owned()),
                short_names: Some(vec!["wk".to_owned(), "wks".to_owned()]),
                categories: Some(vec!["workspace".to_owned()]),
            },
            scope: "Namespaced".to_owned(),
            versions: vec![version("v1alpha1", false), version("v1beta1", true)],
            conversion: None,
            preserve_unknown_fields: None,
        },
        status: None,
    }
}

/// The CRD as YAML, as `kaito crd` prints it and `deploy/crds/` holds it.
pub fn workspace_crd_yaml() -> String {
    let mut crd = serde_json::to_value(workspace_crd()).expect("a CRD always serializes");
    if let Value::Object(map) = &mut crd {
        map.insert("apiVersion".into(), json!("apiextensions.k8s.io/v1"));
        map.insert("kind".into(), json!("CustomResourceDefinition"));
    }
    serde_saphyr::to_string(&crd).expect("a JSON value always serializes to YAML")
}

fn version(name: &str, storage: bool) -> CustomResourceDefinitionVersion {
    let beta = name == "v1beta1";
    let condition = |t: &str| CustomResourceColumnDefinition {
        name: t.to_owned(),
        type_: "string".to_owned(),
        json_path: format!(".status.conditions[?(@.type==\"{t}\")].status"),
        ..Default::default()
    };
    let mut columns = vec![CustomResourceColumnDefinition {
        name: "Instance".to_owned(),
        type_: "string".to_owned(),
        json_path: ".resource.instanceType".to_owned(),
        ..Default::default()
    }];
    columns.extend(
        [
            "ResourceReady",
            "InferenceReady",
            "JobStarted",
            "WorkspaceSucceeded",
        ]
        .map(condition),
    );
    if beta {
        columns.push(CustomResourceColumnDefinition {
            name: "TargetNodeCount".to_owned(),
            type_: "integer".to_owned(),
            json_path: ".status.targetNodeCount".to_owned(),
            ..Default::default()
        });
        columns.push(CustomResourceColumnDefinition {
            name: "State".to_owned(),
            type_: "string".to_owned(),
            json_path: ".status.state".to_owned(),
            ..Default::default()
        });
    }
    columns.push(CustomResourceColumnDefinition {
        name: "Age".to_owned(),
        type_: "date".to_owned(),
        json_path: ".metadata.creationTimestamp".to_owned(),
        ..Default::default()
    });
    let schema: JSONSchemaProps = serde_json::from_value(object_schema(beta))
        .unwrap_or_else(|e| panic!("generated schema is not valid JSONSchemaProps: {e}"));
    CustomResourceDefinitionVersion {
        name: name.to_owned(),
        served: true,
        storage,
        additional_printer_columns: Some(columns),
        schema: Some(CustomResourceValidation {
            open_api_v3_schema: Some(schema),
        }),
        subresources: Some(CustomResourceSubresources {
            status: Some(Default::default()),
            scale: None,
        }),
        ..Default::default()
    }
}

fn generator() -> SchemaGenerator {
    SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(kube_core::schema::OptionalEnum)
        .with_transform(kube_core::schema::StructuralSchemaRewriter)
        .into_generator()
}

/// One top-level field's schema. Root schemas get the generator's transforms (nullable instead
/// of `type: [x, "null"]`, structural rewrites); their title is dropped.
fn part<T: schemars::JsonSchema>() -> Value {
    let mut schema = generator().root_schema_for::<T>().to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("title");
        obj.remove("$schema");
    }
    schema
}

fn object_schema(beta: bool) -> Value {
    let mut resource = part::<ResourceSpec>();
    let mut inference = part::<InferenceSpec>();
    let mut tuning = part::<TuningSpec>();
    let mut status = part::<WorkspaceStatus>();
    // KAITO's schema requires these; the Rust types keep them optional so that validation can
    // report every missing field at once instead of failing on the first.
    require(&mut resource, "labelSelector");
    require(&mut tuning, "input");
    require(&mut tuning, "output");
    if !beta {
        remove_property(&mut resource, &["partition"]);
        remove_property(
            &mut inference,
            &["preset", "presetOptions", "modelAccessSecret"],
        );
        remove_property(
            &mut tuning,
            &["preset", "presetOptions", "modelAccessSecret"],
        );
        for field in ["targetNodeCount", "state", "performance"] {
            remove_property(&mut status, &[field]);
        }
        if let Some(p) = resource.pointer_mut("/properties/instanceType") {
            p["default"] = json!(V1ALPHA1_DEFAULT_INSTANCE_TYPE);
        }
    }
    json!({
        "description": "Workspace is the Schema for the workspaces API",
        "type": "object",
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": { "type": "object" },
            "resource": resource,
            "inference": inference,
            "tuning": tuning,
            "status": status,
        },
    })
}

fn require(schema: &mut Value, field: &str) {
    if let Some(obj) = schema.as_object_mut() {
        let required = obj.entry("required").or_insert_with(|| json!([]));
        if let Some(list) = required.as_array_mut()
            && !list.iter().any(|v| v == field)
        {
            list.push(json!(field));
        }
    }
}

fn remove_property(schema: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = schema;
    for p in parents {
        match node.pointer_mut(&format!("/properties/{p}")) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(props) = node.get_mut("properties").and_then(Value::as_object_mut) {
        props.remove(*last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_matches_the_types() {
        let committed = include_str!("../../../deploy/crds/kaito.sh_workspaces.yaml");
        let generated = workspace_crd_yaml();
        if std::env::var_os("KAITO_UPDATE_CRD").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../deploy/crds/kaito.sh_workspaces.yaml"
            );
            std::fs::write(path, &generated).expect("write the CRD");
            return;
        }
        assert!(
            committed == generated,
            "deploy/crds/kaito.sh_workspaces.yaml drifted from the Rust types; regenerate it with \
             `KAITO_UPDATE_CRD=1 cargo test -p kaito-core committed_crd` (or `kaito crd`)"
        );
    }

    #[test]
    fn v1alpha1_lacks_v1beta1_only_fields() {
        let crd = serde_json::to_value(workspace_crd()).expect("serializes");
        let alpha = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        let beta = &crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"];
        assert!(beta["resource"]["properties"]["partition"].is_object());
        assert!(alpha["resource"]["properties"]["partition"].is_null());
        assert!(beta["status"]["properties"]["state"].is_object());
        assert!(alpha["status"]["properties"]["state"].is_null());
        assert_eq!(
            alpha["resource"]["properties"]["instanceType"]["default"],
            V1ALPHA1_DEFAULT_INSTANCE_TYPE
        );
        assert_eq!(crd["spec"]["versions"][1]["storage"], true);
        assert_eq!(beta["tuning"]["required"], json!(["input", "output"]));
        assert_eq!(
            beta["inference"]["properties"]["template"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }
}
