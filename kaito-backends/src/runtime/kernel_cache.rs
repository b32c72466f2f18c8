//! Persistent GPU kernel caches, so that a job's warm start takes seconds.
//!
//! burn-cuda's first training step compiled and autotuned its kernels for 128 s on the H200
//! (deps.md). CubeCL can keep both results on disk: the PTX of every compiled kernel (off by
//! default) and the autotune winners (on by default, but under `~/.cache`, which dies with the
//! pod). `use_kernel_cache` (feature `cuda`) points both at one directory; the operator mounts a per-node
//! directory there (`KAITO_KERNEL_CACHE`) and points the CUDA driver's own PTX-to-SASS cache
//! (`CUDA_CACHE_PATH`) into it too, so the second job on a node skips all three.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The directories inside a kernel cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCacheDirs {
    /// CubeCL's compiled PTX.
    pub ptx: PathBuf,
    /// CubeCL's autotune results (one file per device model and kernel family).
    pub autotune: PathBuf,
}

impl KernelCacheDirs {
    /// The layout under `root`.
    pub fn under(root: &Path) -> Self {
        Self {
            ptx: root.join("ptx"),
            autotune: root.join("autotune"),
        }
    }

    /// Creates the directories, naming the one that fails (a read-only or full volume).
    pub fn create(&self) -> Result<()> {
        for dir in [&self.ptx, &self.autotune] {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::invalid(
                    "kernel cache",
                    format!("cannot create {}: {e}", dir.display()),
                )
            })?;
        }
        Ok(())
    }
}

/// Makes CubeCL keep compiled kernels and autotune results under `root` for the rest of the
/// process. Must run before the first GPU tensor is created: CubeCL reads its configuration
/// once, and this is an error (not a silent no-op) when it already has.
#[cfg(feature = "cuda")]
pub fn use_kernel_cache(root: &Path) -> Result<KernelCacheDirs> {
    use cubecl::config::cache::CacheConfig;
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    let dirs = KernelCacheDirs::under(root);
    dirs.create()?;
    // Start from what CubeCL would have read itself (cubecl.toml, CUBECL_* variables).
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.compilation.cache = Some(CacheConfig::File(dirs.ptx.clone()));
    config.autotune.cache = CacheConfig::File(dirs.autotune.clone());
    let mut state = CubeClRuntimeConfig::storage().lock();
    if state.is_some() {
        return Err(Error::invalid(
            "kernel cache",
            "the GPU runtime is already configured; set the kernel cache before using the GPU",
        ));
    }
    *state = Some(std::sync::Arc::new(config));
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_created_and_an_unwritable_root_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = KernelCacheDirs::under(&tmp.path().join("kernels"));
        dirs.create().unwrap();
        assert!(dirs.ptx.is_dir() && dirs.autotune.is_dir());

        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = KernelCacheDirs::under(&file)
            .create()
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-file/ptx"), "{err}");
    }
}
