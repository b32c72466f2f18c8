//! Every Workspace manifest shipped under `examples/` parses with no unknown field and passes
//! every admission rule (template placeholders such as `ACR_REPO_HERE` count as warnings).

use std::path::{Path, PathBuf};

use kaito_core::api::manifest::parse_manifests;
use kaito_core::validation::{ValidationContext, check_create};

fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("examples dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            manifests(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_workspace_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    manifests(&root, &mut files);
    assert!(files.len() >= 3, "examples found: {files:?}");
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let parsed = parse_manifests(&file.display().to_string(), &text).expect("parses");
        assert!(
            parsed.unknown_fields.is_empty(),
            "{}: {:?}",
            file.display(),
            parsed.unknown_fields
        );
        for ws in parsed.workspaces {
            let ws = ws.into_storage();
            let has_sku = ws
                .resource
                .as_ref()
                .and_then(|r| r.instance_type.as_deref())
                .is_some_and(|s| !s.is_empty());
            let ctx = ValidationContext {
                node_auto_provisioning: has_sku,
                config_maps: parsed.config_maps.values().cloned().collect(),
                config_maps_complete: false,
                placeholders_as_warnings: true,
                ..ValidationContext::default()
            };
            let report = check_create(&ws, &ctx);
            assert!(
                report.errors.is_empty(),
                "{}: {}",
                file.display(),
                report.errors
            );
            checked += 1;
        }
    }
    assert!(checked >= 3);
}
