//! `tuning.input.urls`: downloads as KAITO's `data-downloader` does, made safe.
//!
//! File name = the URL path's last segment (query and fragment dropped); up to 3 tries, 2 s
//! apart; HTTP 200 and a non-empty body are required. Bodies stream to a temporary name in the
//! destination and are renamed only when complete; a size limit stops runaway downloads. Every
//! connection, redirects included, goes through the address guard.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kaito_core::ErrorKind;
use tokio::io::AsyncWriteExt;
use url::Url;

use super::guard::{BlockedAddress, GuardedResolver, check_url};
use crate::artifacts::RetryPolicy;
use crate::error::{Error, Result};

/// Settings of [`UrlDownloader`].
#[derive(Clone, Debug)]
pub struct UrlFetchConfig {
    /// Test-only: allow loopback, private and link-local addresses (local test servers).
    pub allow_private_addresses: bool,
    /// Largest accepted body, in bytes.
    pub max_bytes: u64,
    /// Tries per URL and the pause between them (KAITO: 3 tries, 2 s apart).
    pub retry: RetryPolicy,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one read of the body.
    pub read_timeout: Duration,
}

impl Default for UrlFetchConfig {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            max_bytes: 10 << 30,
            retry: RetryPolicy {
                attempts: 3,
                initial_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(2),
            },
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// Downloads tuning input URLs into a directory.
#[derive(Clone, Debug)]
pub struct UrlDownloader {
    config: UrlFetchConfig,
    http: reqwest::Client,
}

/// The file name KAITO gives the download of `url`: the last path segment, without query or
/// fragment.
pub fn file_name_for(url: &str) -> Result<String> {
    let parsed = Url::parse(url).map_err(|e| {
        Error::download(
            ErrorKind::InvalidInput,
            url,
            format!("not a valid URL: {e}"),
        )
    })?;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::download(
            ErrorKind::InvalidInput,
            url,
            "the URL path has no file name",
        ));
    }
    Ok(name.to_string())
}

impl UrlDownloader {
    /// A downloader with `config`.
    pub fn new(config: UrlFetchConfig) -> Result<Self> {
        let allow_private = config.allow_private_addresses;
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("more than 10 redirects");
            }
            match check_url(attempt.url(), allow_private) {
                Ok(()) => attempt.follow(),
                Err(reason) => {
                    let message = format!("redirect to {} refused: {reason}", attempt.url());
                    attempt.error(BlockedAddress(message))
                }
            }
        });
        let http = reqwest::Client::builder()
            .redirect(redirect)
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| Error::download(ErrorKind::Terminal, "http client", e.to_string()))?;
        Ok(Self { config, http })
    }

    /// Downloads every URL into `dest` (created if needed); returns the files in URL order.
    pub async fn download_all(&self, urls: &[String], dest: &Path) -> Result<Vec<PathBuf>> {
        tokio::fs::create_dir_all(dest)
            .await
            .map_err(|e| Error::io(dest, e))?;
        let mut out = Vec::with_capacity(urls.len());
        for url in urls {
            out.push(self.download(url, dest).await?);
        }
        Ok(out)
    }

    /// Downloads `url` into `dest/<file name>`.
    pub async fn download(&self, url: &str, dest: &Path) -> Result<PathBuf> {
        let name = file_name_for(url)?;
        let parsed = Url::parse(url)
            .map_err(|e| Error::download(ErrorKind::InvalidInput, url, e.to_string()))?;
        check_url(&parsed, self.config.allow_private_addresses)
            .map_err(|reason| Error::download(ErrorKind::InvalidInput, url, reason))?;
        let target = dest.join(&name);
        self.config
            .retry
            .run("download", || self.try_once(url, &target))
            .await?;
        tracing::info!(url, file = %target.display(), "downloaded tuning input");
        Ok(target)
    }

    async fn try_once(&self, url: &str, target: &Path) -> Result<()> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| request_error(url, e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let kind = match status.as_u16() {
                429 | 500..=599 => ErrorKind::Retryable,
                401 | 403 => ErrorKind::Unauthorized,
                404 | 410 => ErrorKind::NotFound,
                _ => ErrorKind::Terminal,
            };
            return Err(Error::download(
                kind,
                url,
                format!("HTTP {status} (200 required)"),
            ));
        }
        let max = self.config.max_bytes;
        if let Some(len) = response.content_length().filter(|len| *len > max) {
            return Err(Error::download(
                ErrorKind::InvalidInput,
                url,
                format!("too large: {len} bytes, the limit is {max}"),
            ));
        }
        let dir = target.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let mut file =
            tokio::fs::File::from_std(tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?);
        let mut written: u64 = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| request_error(url, e))?;
            written += chunk.len() as u64;
            if written > max {
                return Err(Error::download(
                    ErrorKind::InvalidInput,
                    url,
                    format!("too large: more than {max} bytes"),
                ));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(tmp.path(), e))?;
        }
        file.flush().await.map_err(|e| Error::io(tmp.path(), e))?;
        drop(file);
        if written == 0 {
            return Err(Error::download(ErrorKind::Retryable, url, "empty body"));
        }
        tmp.persist(target)
            .map_err(|e| Error::io(target, e.error))?;
        Ok(())
    }
}

/// Classifies a transport failure; refused addresses are final, the rest is retried.
fn request_error(url: &str, err: reqwest::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut detail = Vec::new();
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<BlockedAddress>() {
            return Error::download(ErrorKind::InvalidInput, url, blocked.0.clone());
        }
        let text = e.to_string();
        if !detail.iter().any(|d: &String| d.contains(&text)) {
            detail.push(text);
        }
        source = e.source();
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_redirect() {
        "redirect failed"
    } else {
        "request failed"
    };
    let kind = if err.is_redirect() {
        ErrorKind::InvalidInput
    } else {
        ErrorKind::Retryable
    };
    // reqwest puts the URL in its text; the error already names it once.
    let detail: Vec<String> = detail
        .into_iter()
        .map(|d| d.replace(url, "").replace(" for url ()", ""))
        .collect();
    Error::Download {
        kind,
        url: url.to_string(),
        message: format!("{what}: {}", detail.join(": ")),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_is_the_last_path_segment_without_query_or_fragment() {
        assert_eq!(
            file_name_for("https://h.io/d/train.jsonl?sig=abc#x").unwrap(),
            "train.jsonl"
        );
        assert_eq!(
            file_name_for("https://h.io/a/b/data.parquet").unwrap(),
            "data.parquet"
        );
        assert!(
            file_name_for("https://h.io/dir/")
                .unwrap_err()
                .to_string()
                .contains("no file name")
        );
        assert!(file_name_for("not a url").is_err());
    }
}
