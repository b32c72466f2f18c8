//! Base weights from the Hugging Face hub into huggingface_hub's cache layout.
//!
//! `<cache>/models--<org>--<name>/{refs/<revision>, blobs/<sha256>, snapshots/<commit>/<file>}`,
//! snapshot entries being relative links to the blobs, so a cache filled here is usable by
//! huggingface_hub and the other way round. Requests: `GET {endpoint}/api/models/{repo}/revision/
//! {revision}` (commit and file list) and `GET {endpoint}/{repo}/resolve/{commit}/{file}`, with the
//! `modelAccessSecret` token as Bearer.
//!
//! Why not the `hf-hub` crate: 1.0 depends unconditionally on `hf-xet` (a large storage client and
//! its dependency tree), and 0.4 on reqwest 0.12 next to our 0.13; the two endpoints above are
//! a small amount of code on the reqwest client the crate already uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use kaito_core::ErrorKind;
use kaito_core::traits::SecretString;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::artifacts::RetryPolicy;
use crate::error::{Error, Result};

/// Settings of [`HubClient`].
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Hub base URL (`HF_ENDPOINT`), `https://huggingface.co` by default.
    pub endpoint: String,
    /// The `modelAccessSecret` token, sent as Bearer.
    pub token: Option<SecretString>,
    /// Which files of the repository to fetch (`*` wildcards).
    pub allow_patterns: Vec<String>,
    /// Retries of 5xx, 429 and connection failures.
    pub retry: RetryPolicy,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one read of a body.
    pub read_timeout: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://huggingface.co".into(),
            token: None,
            allow_patterns: [
                "*.json",
                "*.safetensors",
                "tokenizer.model",
                "*.tiktoken",
                "*.txt",
                "*.jinja",
            ]
            .map(String::from)
            .to_vec(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// Fetches model snapshots from the hub.
#[derive(Clone, Debug)]
pub struct HubClient {
    config: HubConfig,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct ModelInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(serde::Deserialize)]
struct Sibling {
    rfilename: String,
}

/// `*`-only glob match.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => name.strip_prefix(head).is_some_and(|rest| {
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }),
    }
}

/// The cache directory of `repo` (`org/name` -> `models--org--name`).
pub fn repo_cache_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

impl HubClient {
    /// A client with `config`.
    pub fn new(config: HubConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| Error::download(ErrorKind::Terminal, &config.endpoint, e.to_string()))?;
        Ok(Self { config, http })
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match &self.config.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    async fn send(&self, url: &str, repo: &str) -> Result<reqwest::Response> {
        let response = self.get(url).send().await.map_err(|e| {
            let kind = if e.is_connect() || e.is_timeout() || e.is_request() {
                ErrorKind::Retryable
            } else {
                ErrorKind::Terminal
            };
            Error::download(kind, url, format!("request failed: {}", e.without_url()))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let (kind, message) = match status.as_u16() {
            401 | 403 => (
                ErrorKind::Unauthorized,
                format!(
                    "HTTP {status}: {repo} is gated or private; check the modelAccessSecret token"
                ),
            ),
            404 => (
                ErrorKind::NotFound,
                format!("HTTP 404: {repo} or the file does not exist"),
            ),
            429 | 500..=599 => (ErrorKind::Retryable, format!("HTTP {status}")),
            _ => (ErrorKind::Terminal, format!("HTTP {status}")),
        };
        Err(Error::download(kind, url, message))
    }

    /// Downloads the allowed files of `repo` at `revision` into the cache; returns the snapshot
    /// directory. Files already in the snapshot are not fetched again.
    pub async fn snapshot(&self, repo: &str, revision: &str, cache: &Path) -> Result<PathBuf> {
        if repo.split('/').any(|p| p.is_empty() || p == "..") || revision.contains("..") {
            return Err(Error::download(
                ErrorKind::InvalidInput,
                repo,
                "not a valid repository id or revision",
            ));
        }
        let base = self.config.endpoint.trim_end_matches('/');
        let repo_dir = repo_cache_dir(cache, repo);
        let info_url = format!("{base}/api/models/{repo}/revision/{revision}");
        let info: ModelInfo = match self
            .config
            .retry
            .run("hub model info", || async {
                let response = self.send(&info_url, repo).await?;
                response.json::<ModelInfo>().await.map_err(|e| {
                    Error::download(
                        ErrorKind::Terminal,
                        &info_url,
                        format!("unexpected answer: {}", e.without_url()),
                    )
                })
            })
            .await
        {
            Ok(info) => info,
            // Offline with a cached snapshot of this revision: use it.
            Err(err) if err.kind() == ErrorKind::Retryable => {
                let commit = tokio::fs::read_to_string(repo_dir.join("refs").join(revision))
                    .await
                    .map_err(|_| err)?;
                tracing::warn!(repo, revision, "hub unreachable, using the cached snapshot");
                return Ok(repo_dir.join("snapshots").join(commit.trim()));
            }
            Err(err) => return Err(err),
        };
        if info.sha.is_empty() || info.sha.contains('/') || info.sha.contains("..") {
            return Err(Error::download(
                ErrorKind::Terminal,
                &info_url,
                "the answer has no valid commit sha",
            ));
        }
        let snapshot = repo_dir.join("snapshots").join(&info.sha);
        let blobs = repo_dir.join("blobs");
        for dir in [&snapshot, &blobs, &repo_dir.join("refs")] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::io(dir, e))?;
        }
        let wanted: Vec<&str> = info
            .siblings
            .iter()
            .map(|s| s.rfilename.as_str())
            .filter(|f| self.config.allow_patterns.iter().any(|p| glob(p, f)))
            .collect();
        if wanted.is_empty() {
            return Err(Error::download(
                ErrorKind::NotFound,
                &info_url,
                "no files of the repository match the allowed patterns",
            ));
        }
        for file in wanted {
            if file
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            {
                return Err(Error::download(
                    ErrorKind::Terminal,
                    &info_url,
                    format!("unsafe file name {file:?}"),
                ));
            }
            let target = snapshot.join(file);
            if tokio::fs::metadata(&target).await.is_ok() {
                continue;
            }
            let url = format!("{base}/{repo}/resolve/{}/{file}", info.sha);
            let blob = self
                .config
                .retry
                .run("hub download", || self.download_blob(&url, repo, &blobs))
                .await?;
            link(&blob, &target, file.matches('/').count())?;
        }
        let ref_file = repo_dir.join("refs").join(revision);
        if revision != info.sha {
            if let Some(parent) = ref_file.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| Error::io(parent, e))?;
            }
            tokio::fs::write(&ref_file, &info.sha)
                .await
                .map_err(|e| Error::io(&ref_file, e))?;
        }
        Ok(snapshot)
    }

    /// Streams `url` into `blobs/<sha256>`; checks the hub's LFS hash when it sends one.
    async fn download_blob(&self, url: &str, repo: &str, blobs: &Path) -> Result<PathBuf> {
        let response = self.send(url, repo).await?;
        let linked = response
            .headers()
            .get("x-linked-etag")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_string());
        let tmp = tempfile::Builder::new()
            .prefix(".incomplete-")
            .tempfile_in(blobs)
            .map_err(|e| Error::io(blobs, e))?;
        let mut file =
            tokio::fs::File::from_std(tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?);
        let mut hasher = Sha256::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::download(
                    ErrorKind::Retryable,
                    url,
                    format!("download interrupted: {}", e.without_url()),
                )
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(tmp.path(), e))?;
        }
        file.flush().await.map_err(|e| Error::io(tmp.path(), e))?;
        let sha = hex::encode(hasher.finalize());
        if let Some(expected) = linked.filter(|l| l.len() == 64)
            && expected != sha
        {
            return Err(Error::download(
                ErrorKind::Retryable,
                url,
                format!("content hash {sha} differs from the hub's {expected}"),
            ));
        }
        let blob = blobs.join(&sha);
        tmp.persist(&blob).map_err(|e| Error::io(&blob, e.error))?;
        Ok(blob)
    }
}

/// Links `snapshots/<commit>/<file>` to its blob, relatively (huggingface_hub's layout).
fn link(blob: &Path, target: &Path, depth: usize) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut relative = PathBuf::from("../..");
    for _ in 0..depth {
        relative.push("..");
    }
    relative.push("blobs");
    relative.push(blob.file_name().unwrap_or_default());
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(&relative, target);
    #[cfg(not(unix))]
    let made = std::fs::copy(blob, target).map(drop);
    made.map_err(|e| Error::io(target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_star_patterns() {
        assert!(glob("*.json", "config.json"));
        assert!(glob("*.safetensors", "model-00001-of-00002.safetensors"));
        assert!(!glob("*.json", "model.bin"));
        assert!(glob("tokenizer.model", "tokenizer.model"));
        assert!(glob("a*b*c", "a12b34c"));
        assert!(!glob("a*b*c", "a12b34"));
    }
}
