//! GPU SKU tables of KAITO's `pkg/sku` (kaito.md §4.2), per cloud provider.
//!
//! Memory is KAITO's "GPU memory per VM" figure in GiB (KAITO multiplies its `GPUMemGB` by
//! 2^30). Retired Azure entries (V100/T4/M60/MI25) are kept because examples still name them.

use std::fmt;
use std::str::FromStr;

/// The cloud whose SKU table applies (KAITO's `CLOUD_PROVIDER`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CloudProvider {
    /// Azure (AKS).
    #[default]
    Azure,
    /// Azure Arc-enabled clusters.
    Arc,
    /// AWS (EKS).
    Aws,
}

impl FromStr for CloudProvider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "azure" => Ok(Self::Azure),
            "arc" => Ok(Self::Arc),
            "aws" => Ok(Self::Aws),
            other => Err(format!(
                "unknown cloud provider {other:?}; expected azure, arc or aws"
            )),
        }
    }
}

impl fmt::Display for CloudProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Azure => "azure",
            Self::Arc => "arc",
            Self::Aws => "aws",
        })
    }
}

/// An accelerator model and what it can compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuModel {
    /// Marketing name, e.g. `V100`.
    pub name: &'static str,
    /// CUDA compute capability (major, minor); `None` for non-NVIDIA accelerators.
    pub compute_capability: Option<(u8, u8)>,
}

impl GpuModel {
    /// bf16 arithmetic needs CUDA compute capability 8.0 (Ampere) or newer.
    pub fn supports_bf16(&self) -> bool {
        self.compute_capability.is_some_and(|cc| cc >= (8, 0))
    }
    /// fp16 tensor-core arithmetic: Volta (7.0) and newer.
    pub fn supports_fp16(&self) -> bool {
        self.compute_capability.is_some_and(|cc| cc >= (7, 0))
    }
    /// Whether this is an NVIDIA CUDA GPU.
    pub fn is_cuda(&self) -> bool {
        self.compute_capability.is_some()
    }
}

const fn nv(name: &'static str, major: u8, minor: u8) -> GpuModel {
    GpuModel {
        name,
        compute_capability: Some((major, minor)),
    }
}
const fn other(name: &'static str) -> GpuModel {
    GpuModel {
        name,
        compute_capability: None,
    }
}

const A10: GpuModel = nv("A10", 8, 6);
const A10G: GpuModel = nv("A10G", 8, 6);
const A100: GpuModel = nv("A100", 8, 0);
const H100: GpuModel = nv("H100", 9, 0);
const H200: GpuModel = nv("H200", 9, 0);
const V100: GpuModel = nv("V100", 7, 0);
const T4: GpuModel = nv("T4", 7, 5);
const M60: GpuModel = nv("M60", 5, 2);
const A2: GpuModel = nv("A2", 8, 6);
const A16: GpuModel = nv("A16", 8, 6);
const L4: GpuModel = nv("L4", 8, 9);
const V620: GpuModel = other("AMD Radeon PRO V620");
const MI25: GpuModel = other("AMD Radeon Instinct MI25");
const V520: GpuModel = other("AMD Radeon Pro V520");
const TRAINIUM: GpuModel = other("AWS Trainium");
const INFERENTIA2: GpuModel = other("AWS Inferentia2");

/// One VM SKU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuSku {
    /// The instance type, as the cloud spells it.
    pub name: &'static str,
    /// GPUs per VM.
    pub gpu_count: u32,
    /// The GPU model.
    pub gpu: GpuModel,
    /// GPU memory of the whole VM, GiB.
    pub total_memory_gib: u32,
    /// Local NVMe disks.
    pub nvme: bool,
    /// Removed from KAITO HEAD's table (CUDA compute capability < 8.0); kept for old examples.
    pub retired: bool,
}

impl GpuSku {
    /// Memory of one GPU, bytes.
    pub fn memory_per_gpu_bytes(&self) -> u64 {
        u64::from(self.total_memory_gib) * (1 << 30) / u64::from(self.gpu_count.max(1))
    }
}

const fn sku(
    name: &'static str,
    gpu_count: u32,
    gpu: GpuModel,
    total_memory_gib: u32,
    nvme: bool,
) -> GpuSku {
    GpuSku {
        name,
        gpu_count,
        gpu,
        total_memory_gib,
        nvme,
        retired: false,
    }
}
const fn retired(
    name: &'static str,
    gpu_count: u32,
    gpu: GpuModel,
    total_memory_gib: u32,
) -> GpuSku {
    GpuSku {
        name,
        gpu_count,
        gpu,
        total_memory_gib,
        nvme: false,
        retired: true,
    }
}

/// Azure SKUs (HEAD, then the retired ones).
pub static AZURE_SKUS: &[GpuSku] = &[
    sku("Standard_NV36ads_A10_v5", 1, A10, 24, false),
    sku("Standard_NV72ads_A10_v5", 2, A10, 48, false),
    sku("Standard_NC24ads_A100_v4", 1, A100, 80, true),
    sku("Standard_NC48ads_A100_v4", 2, A100, 160, true),
    sku("Standard_NC96ads_A100_v4", 4, A100, 320, true),
    sku("Standard_ND96asr_A100_v4", 8, A100, 320, false),
    sku("Standard_ND96amsr_A100_v4", 8, A100, 640, true),
    sku("Standard_NC40ads_H100_v5", 1, H100, 94, true),
    sku("Standard_NC80adis_H100_v5", 2, H100, 188, true),
    sku("Standard_ND96isr_H100_v5", 8, H100, 640, true),
    sku("Standard_NCC40ads_H100_v5", 1, H100, 94, false),
    sku("Standard_ND96isr_H200_v5", 8, H200, 1128, true),
    sku("Standard_NG32ads_V620_v1", 1, V620, 32, false),
    sku("Standard_NG32adms_V620_v1", 1, V620, 32, false),
    retired("Standard_NC6s_v3", 1, V100, 16),
    retired("Standard_NC12s_v3", 2, V100, 32),
    retired("Standard_NC24s_v3", 4, V100, 64),
    retired("Standard_NC24rs_v3", 4, V100, 64),
    retired("Standard_NC4as_T4_v3", 1, T4, 16),
    retired("Standard_NC8as_T4_v3", 1, T4, 16),
    retired("Standard_NC16as_T4_v3", 1, T4, 16),
    retired("Standard_NC64as_T4_v3", 4, T4, 64),
    retired("Standard_NV6", 1, M60, 8),
    retired("Standard_NV12", 2, M60, 16),
    retired("Standard_NV24", 4, M60, 32),
    retired("Standard_NV12s_v3", 1, M60, 8),
    retired("Standard_NV24s_v3", 2, M60, 16),
    retired("Standard_NV48s_v3", 4, M60, 32),
    retired("Standard_NV32as_v4", 1, MI25, 16),
];

/// Azure Arc SKUs.
pub static ARC_SKUS: &[GpuSku] = &[
    sku("Standard_NC4_A2", 1, A2, 16, false),
    sku("Standard_NC8_A2", 1, A2, 16, false),
    sku("Standard_NC16_A2", 2, A2, 32, false),
    sku("Standard_NC32_A2", 2, A2, 32, false),
    sku("Standard_NC4_A16", 1, A16, 16, false),
    sku("Standard_NC8_A16", 1, A16, 16, false),
    sku("Standard_NC16_A16", 2, A16, 32, false),
    sku("Standard_NC32_A16", 2, A16, 32, false),
];

/// AWS instance types.
pub static AWS_SKUS: &[GpuSku] = &[
    sku("p4d.24xlarge", 8, A100, 320, true),
    sku("p4de.24xlarge", 8, A100, 640, true),
    sku("p5.48xlarge", 8, H100, 640, true),
    sku("p5e.48xlarge", 8, H200, 1128, true),
    sku("p5en.48xlarge", 8, H200, 1128, true),
    sku("g6.xlarge", 1, L4, 24, true),
    sku("g6.2xlarge", 1, L4, 24, true),
    sku("g6.4xlarge", 1, L4, 24, true),
    sku("g6.8xlarge", 1, L4, 24, true),
    sku("g6.16xlarge", 1, L4, 24, true),
    sku("gr6.4xlarge", 1, L4, 24, true),
    sku("gr6.8xlarge", 1, L4, 24, true),
    sku("g6.12xlarge", 4, L4, 96, true),
    sku("g6.24xlarge", 4, L4, 96, true),
    sku("g6.48xlarge", 8, L4, 192, true),
    sku("g5.xlarge", 1, A10G, 24, true),
    sku("g5.2xlarge", 1, A10G, 24, true),
    sku("g5.4xlarge", 1, A10G, 24, true),
    sku("g5.8xlarge", 1, A10G, 24, true),
    sku("g5.16xlarge", 1, A10G, 24, true),
    sku("g5.12xlarge", 4, A10G, 96, true),
    sku("g5.24xlarge", 4, A10G, 96, true),
    sku("g5.48xlarge", 8, A10G, 192, true),
    sku("g4ad.xlarge", 1, V520, 8, true),
    sku("g4ad.2xlarge", 1, V520, 8, true),
    sku("g4ad.4xlarge", 1, V520, 8, true),
    sku("g4ad.8xlarge", 2, V520, 16, true),
    sku("g4ad.16xlarge", 4, V520, 32, true),
    sku("trn1.2xlarge", 1, TRAINIUM, 32, true),
    sku("trn1.32xlarge", 16, TRAINIUM, 512, true),
    sku("trn1n.32xlarge", 16, TRAINIUM, 512, true),
    sku("inf2.xlarge", 1, INFERENTIA2, 32, false),
    sku("inf2.8xlarge", 1, INFERENTIA2, 32, false),
    sku("inf2.24xlarge", 6, INFERENTIA2, 192, false),
    sku("inf2.48xlarge", 12, INFERENTIA2, 384, false),
];

/// The SKU table of a provider.
pub fn skus(provider: CloudProvider) -> &'static [GpuSku] {
    match provider {
        CloudProvider::Azure => AZURE_SKUS,
        CloudProvider::Arc => ARC_SKUS,
        CloudProvider::Aws => AWS_SKUS,
    }
}

/// A SKU by instance type, case-insensitively (as KAITO looks them up).
pub fn find_sku(provider: CloudProvider, instance_type: &str) -> Option<&'static GpuSku> {
    skus(provider)
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(instance_type.trim()))
}

/// A GPU model by the product name NVIDIA's GPU feature discovery puts in the
/// `nvidia.com/gpu.product` label (e.g. `Tesla-V100-PCIE-16GB`, `NVIDIA-A100-SXM4-80GB`).
pub fn gpu_model_from_product(product: &str) -> Option<GpuModel> {
    let p = product.to_ascii_uppercase();
    // Longest names first so that A100 is not read as A10, A10G not as A10.
    [H200, H100, A100, A10G, A16, A10, A2, L4, V100, T4, M60]
        .into_iter()
        .find(|m| {
            p.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|tok| tok == m.name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_per_provider() {
        let s = find_sku(CloudProvider::Azure, "standard_nc6s_V3").expect("NC6s_v3");
        assert_eq!(
            (s.gpu_count, s.gpu.name, s.total_memory_gib, s.retired),
            (1, "V100", 16, true)
        );
        assert!(!s.gpu.supports_bf16());
        assert!(s.gpu.supports_fp16());
        assert_eq!(
            find_sku(CloudProvider::Azure, "Standard_NC12s_v3").map(|s| s.gpu_count),
            Some(2)
        );
        assert!(find_sku(CloudProvider::Aws, "Standard_NC6s_v3").is_none());
        assert_eq!(
            find_sku(CloudProvider::Aws, "G5.XLARGE").map(|s| s.gpu.name),
            Some("A10G")
        );
        assert_eq!(
            find_sku(CloudProvider::Arc, "Standard_NC16_A2").map(|s| s.total_memory_gib),
            Some(32)
        );
    }

    #[test]
    fn per_gpu_memory_divides_the_vm_total() {
        let nd = find_sku(CloudProvider::Azure, "Standard_ND96asr_A100_v4").expect("nd96");
        assert_eq!(nd.memory_per_gpu_bytes(), 40 << 30);
        let a10 = find_sku(CloudProvider::Azure, "Standard_NV36ads_A10_v5").expect("a10");
        assert_eq!(a10.memory_per_gpu_bytes(), 24 << 30);
        assert!(a10.gpu.supports_bf16());
    }

    #[test]
    fn providers_parse_and_gpu_products_map_to_models() {
        assert_eq!("AWS".parse::<CloudProvider>(), Ok(CloudProvider::Aws));
        assert!("gcp".parse::<CloudProvider>().is_err());
        assert_eq!(
            gpu_model_from_product("NVIDIA-A100-SXM4-80GB").map(|m| m.name),
            Some("A100")
        );
        assert_eq!(
            gpu_model_from_product("Tesla-V100-PCIE-16GB").map(|m| m.name),
            Some("V100")
        );
        assert_eq!(
            gpu_model_from_product("NVIDIA-A10G").map(|m| m.name),
            Some("A10G")
        );
        assert_eq!(gpu_model_from_product("mystery"), None);
    }

    #[test]
    fn names_are_unique_within_each_table() {
        for provider in [CloudProvider::Azure, CloudProvider::Arc, CloudProvider::Aws] {
            let mut names: Vec<_> = skus(provider)
                .iter()
                .map(|s| s.name.to_ascii_lowercase())
                .collect();
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "{provider}");
        }
    }
}
