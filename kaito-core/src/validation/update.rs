//! Update rules: what may not change, and re-validation of what did.
//!
//! Only the parts that changed are re-validated: an update the operator itself makes (a
//! finalizer, an annotation) must not be rejected because the cluster's context moved on since
//! the workspace was created.

use super::names::selector_as_map;
use super::{Checker, InferenceRuntime, inference, resource, tuning};
use crate::api::WorkspaceV1Beta1;
use crate::api::names::ANNOTATION_RUNTIME;

pub(crate) fn check_update(c: &mut Checker<'_>, old: &WorkspaceV1Beta1, new: &WorkspaceV1Beta1) {
    if old.inference.is_some() != new.inference.is_some() {
        c.error(
            "inference",
            "cannot be added or removed once the workspace exists",
        );
    }
    if old.tuning.is_some() != new.tuning.is_some() {
        c.error(
            "tuning",
            "cannot be added or removed once the workspace exists",
        );
    }
    if old.metadata.annotations != new.metadata.annotations {
        resource::check_annotations(c, new);
    }
    check_resource(c, old, new);
    if let (Some(o), Some(n)) = (&old.tuning, &new.tuning) {
        if o.preset != n.preset {
            c.error("tuning.preset", "cannot be changed");
        }
        let lower = |m: &Option<String>| m.as_deref().map(str::to_ascii_lowercase);
        if lower(&o.method) != lower(&n.method) {
            c.error("tuning.method", "cannot be changed");
        }
        match (&o.input, &n.input) {
            (_, None) => c.error("tuning.input", "required"),
            (old_input, Some(input)) => {
                if old_input.as_ref().and_then(|i| i.name.as_ref()) != input.name.as_ref() {
                    c.error("tuning.input.name", "cannot be changed");
                }
                if old_input.as_ref() != Some(input) {
                    tuning::check_input(c, input);
                }
            }
        }
        match (&o.output, &n.output) {
            (_, None) => c.error("tuning.output", "required"),
            (old_output, Some(output)) if old_output.as_ref() != Some(output) => {
                tuning::check_output(c, output)
            }
            (_, Some(output)) => {
                // Unchanged, but KAITO re-parses the image on every update.
                if let Some(image) = &output.image {
                    c.image("tuning.output.image", image);
                }
            }
        }
        if o.config != n.config
            && let Some(method) = n.tuning_method()
        {
            tuning::check_config(c, new, n, method);
        }
    }
    if let (Some(o), Some(n)) = (&old.inference, &new.inference) {
        if o.preset != n.preset {
            c.error("inference.preset", "cannot be changed");
        }
        if o.template.is_some() != n.template.is_some() {
            c.error(
                "inference.template",
                "cannot be set or unset once the workspace exists",
            );
        }
        let runtime = match new
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_RUNTIME))
            .map(String::as_str)
        {
            Some("vllm") => InferenceRuntime::Vllm,
            Some("transformers") => InferenceRuntime::Transformers,
            _ => c.ctx.default_runtime,
        };
        inference::check_adapters(c, n.adapters.as_deref().unwrap_or_default(), runtime);
    }
}

fn check_resource(c: &mut Checker<'_>, old: &WorkspaceV1Beta1, new: &WorkspaceV1Beta1) {
    let (Some(o), Some(n)) = (&old.resource, &new.resource) else {
        if new.resource.is_none() {
            c.error("resource", "required");
        }
        return;
    };
    if let (Some(a), Some(b)) = (o.count, n.count)
        && a != b
    {
        c.error("resource.count", "field is immutable");
    }
    let (a, b) = (
        o.instance_type.as_deref().unwrap_or_default(),
        n.instance_type.as_deref().unwrap_or_default(),
    );
    // Clearing it is allowed for bring-your-own nodes, for workspaces created before BYO mode.
    let cleared_for_byo = b.is_empty() && !c.ctx.node_auto_provisioning;
    if a != b && !cleared_for_byo {
        c.error("resource.instanceType", "field is immutable");
    }
    if o.partition != n.partition {
        c.error("resource.partition", "field is immutable");
    }
    match (
        selector_as_map(&o.label_selector),
        selector_as_map(&n.label_selector),
    ) {
        (Ok(a), Ok(b)) if a != b => c.error("resource.labelSelector", "field is immutable"),
        (Ok(_), Ok(_)) => {}
        _ => c.error(
            "resource.labelSelector",
            "only matchLabels or single-value In expressions are allowed",
        ),
    }
}
