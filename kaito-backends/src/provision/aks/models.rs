//! Serde models of the ARM agent pool resource and of ARM's error and operation bodies.
//!
//! Hand-written instead of taken from `azure_mgmt_containerservice` (see
//! docs/decisions/azure-mgmt-containerservice.md): only the fields gpu-provisioner sends and
//! the ones readiness reads. Fields we do not model are ignored on read and never sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Microsoft.ContainerService/managedClusters/agentPools`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentPool {
    /// ARM resource id (read-only).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    /// The pool name (read-only; the name is in the URL).
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// The pool's properties.
    #[serde(default)]
    pub properties: AgentPoolProperties,
}

/// `ManagedClusterAgentPoolProfileProperties`, the subset kaito uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolProperties {
    /// Number of nodes; always 1 for kaito pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// VM size, e.g. `Standard_NC24ads_A100_v4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_size: Option<String>,
    /// OS disk size in GiB.
    #[serde(
        default,
        rename = "osDiskSizeGB",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_disk_size_gb: Option<i32>,
    /// `Linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// `Ubuntu` or `AzureLinux`.
    #[serde(default, rename = "osSKU", skip_serializing_if = "Option::is_none")]
    pub os_sku: Option<String>,
    /// `User` (kaito pools never host system pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `VirtualMachineScaleSets`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub pool_type: Option<String>,
    /// Labels AKS puts on the pool's nodes; also how kaito recognises its pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_labels: Option<BTreeMap<String, String>>,
    /// Taints as `key=value:Effect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_taints: Option<Vec<String>>,
    /// `Creating`, `Succeeded`, `Failed`, `Deleting`, ... (read-only, a free string).
    #[serde(default, skip_serializing)]
    pub provisioning_state: Option<String>,
    /// Whether the pool is running or stopped (read-only).
    #[serde(default, skip_serializing)]
    pub power_state: Option<PowerState>,
    /// The node image version AKS picked (read-only).
    #[serde(default, skip_serializing)]
    pub node_image_version: Option<String>,
}

/// `powerState`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerState {
    /// `Running` or `Stopped`.
    #[serde(default)]
    pub code: Option<String>,
}

impl AgentPool {
    /// The node label `key`, if the pool carries it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.properties
            .node_labels
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// `provisioningState`, empty when absent.
    pub fn provisioning_state(&self) -> &str {
        self.properties
            .provisioning_state
            .as_deref()
            .unwrap_or_default()
    }

    /// `powerState.code`, when reported.
    pub fn power_state(&self) -> Option<&str> {
        self.properties.power_state.as_ref()?.code.as_deref()
    }
}

/// `GET .../agentPools`: one page.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolList {
    /// The pools on this page.
    #[serde(default)]
    pub value: Vec<AgentPool>,
    /// The next page, absolute.
    #[serde(default)]
    pub next_link: Option<String>,
}

/// ARM's error detail (`{"code","message","details":[...]}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ArmErrorDetail {
    /// Machine-readable code, e.g. `QuotaExceeded`.
    #[serde(default)]
    pub code: Option<String>,
    /// Human-readable text.
    #[serde(default)]
    pub message: Option<String>,
    /// Nested causes; AKS puts the compute error (`AllocationFailed`, ...) here.
    #[serde(default)]
    pub details: Vec<ArmErrorDetail>,
}

/// An ARM error response body: `{"error":{...}}`, or the detail at the top level.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ArmErrorBody {
    /// The wrapped form.
    #[serde(default)]
    pub error: Option<ArmErrorDetail>,
    /// The unwrapped form's code.
    #[serde(default)]
    pub code: Option<String>,
    /// The unwrapped form's message.
    #[serde(default)]
    pub message: Option<String>,
}

impl ArmErrorBody {
    /// The detail, whichever form ARM used.
    pub fn into_detail(self) -> ArmErrorDetail {
        self.error.unwrap_or(ArmErrorDetail {
            code: self.code,
            message: self.message,
            details: Vec::new(),
        })
    }
}

/// The body of an `Azure-AsyncOperation` status URL.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AsyncOperationStatus {
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled` (ARM allows others while running).
    #[serde(default)]
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<ArmErrorDetail>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_fields_are_never_sent() {
        let pool = AgentPool {
            id: Some("/subscriptions/x".into()),
            name: Some("ws1".into()),
            properties: AgentPoolProperties {
                count: Some(1),
                os_disk_size_gb: Some(1024),
                os_sku: Some("Ubuntu".into()),
                pool_type: Some("VirtualMachineScaleSets".into()),
                provisioning_state: Some("Succeeded".into()),
                power_state: Some(PowerState {
                    code: Some("Running".into()),
                }),
                ..Default::default()
            },
        };
        let json = serde_json::to_value(&pool).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"properties": {"count": 1, "osDiskSizeGB": 1024, "osSKU": "Ubuntu", "type": "VirtualMachineScaleSets"}})
        );
    }

    #[test]
    fn reads_a_real_shaped_get_response() {
        let body = r#"{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/agentPools/ws1",
            "name":"ws1","type":"Microsoft.ContainerService/managedClusters/agentPools",
            "properties":{"count":1,"vmSize":"Standard_NC6s_v3","osDiskSizeGB":128,"provisioningState":"Creating",
            "powerState":{"code":"Running"},"nodeLabels":{"kaito.sh/workspace":"w"},"enableFIPS":false}}"#;
        let pool: AgentPool = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(pool.provisioning_state(), "Creating");
        assert_eq!(pool.power_state(), Some("Running"));
        assert_eq!(pool.label("kaito.sh/workspace"), Some("w"));
        assert_eq!(pool.properties.vm_size.as_deref(), Some("Standard_NC6s_v3"));
    }

    #[test]
    fn error_body_in_both_forms() {
        let wrapped: ArmErrorBody =
            serde_json::from_str(r#"{"error":{"code":"QuotaExceeded","message":"no cores"}}"#)
                .unwrap_or_default();
        assert_eq!(wrapped.into_detail().code.as_deref(), Some("QuotaExceeded"));
        let flat: ArmErrorBody =
            serde_json::from_str(r#"{"code":"NotFound","message":"gone"}"#).unwrap_or_default();
        assert_eq!(flat.into_detail().message.as_deref(), Some("gone"));
    }
}
