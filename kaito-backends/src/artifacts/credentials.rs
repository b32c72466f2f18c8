//! Registry credentials from a `kubernetes.io/dockerconfigjson` Secret (or `~/.docker/config.json`).
//!
//! `auths` keys may be a bare host (`myacr.azurecr.io`), carry a scheme and path
//! (`https://index.docker.io/v1/`) or a port. An entry gives `username`/`password`, or `auth`
//! (base64 `user:password`), or an `identitytoken` (an ACR refresh token, used as the password of
//! the all-zeros user). No matching entry means anonymous access.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use kaito_core::traits::{RegistryCredentials, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The user name ACR expects with a refresh token.
pub const ACR_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
    identitytoken: Option<String>,
}

/// Parsed `auths` of a docker config. `Debug` prints host names only.
#[derive(Clone, Default)]
pub struct DockerCredentials {
    by_host: BTreeMap<String, RegistryCredentials>,
}

impl std::fmt::Debug for DockerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerCredentials")
            .field("hosts", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DockerCredentials {
    /// Parses the JSON of a docker config; `source` names it in errors (a file, a Secret).
    pub fn parse(json: &[u8], source: &str) -> Result<Self> {
        // serde_json's message quotes only positions and types, never the values.
        let config: DockerConfig = serde_json::from_slice(json)
            .map_err(|e| Error::invalid(source, format!("not a docker config: {e}")))?;
        let mut by_host = BTreeMap::new();
        for (key, entry) in config.auths {
            let host = normalize_host(&key);
            let creds = entry_credentials(entry)
                .map_err(|m| Error::invalid(source, format!("auths[{key:?}]: {m}")))?;
            by_host.insert(host, creds);
        }
        Ok(Self { by_host })
    }

    /// Reads and parses a docker config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Credentials for the registry of `reference` (a host, or an image reference).
    pub fn for_reference(&self, reference: &str) -> RegistryCredentials {
        let host = registry_host(reference);
        let docker_hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
        self.by_host
            .get(&host)
            .or_else(|| {
                docker_hub
                    .contains(&host.as_str())
                    .then(|| docker_hub.iter().find_map(|h| self.by_host.get(*h)))
                    .flatten()
            })
            .cloned()
            .unwrap_or_default()
    }

    /// The hosts that have an entry.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.keys().map(String::as_str)
    }
}

fn entry_credentials(entry: AuthEntry) -> Result<RegistryCredentials, String> {
    if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
        return Ok(RegistryCredentials::Basic {
            username: ACR_TOKEN_USER.to_string(),
            password: SecretString::new(token),
        });
    }
    if let (Some(username), Some(password)) = (entry.username.clone(), entry.password)
        && !username.is_empty()
    {
        return Ok(RegistryCredentials::Basic {
            username,
            password: SecretString::new(password),
        });
    }
    if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "`auth` is not valid base64".to_string())?;
        let decoded = String::from_utf8(decoded).map_err(|_| "`auth` is not UTF-8".to_string())?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or("`auth` is not of the form user:password")?;
        return Ok(RegistryCredentials::Basic {
            username: username.to_string(),
            password: SecretString::new(password.to_string()),
        });
    }
    Ok(RegistryCredentials::Anonymous)
}

/// `https://index.docker.io/v1/` -> `index.docker.io`; `Host:5000/path` -> `host:5000`.
fn normalize_host(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    without_scheme
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The registry host of an image reference, following docker's rule: the first path component
/// is a host when it has a `.` or `:` or is `localhost`; otherwise the image is on Docker Hub.
pub fn registry_host(reference: &str) -> String {
    let trimmed = reference
        .split_once("://")
        .map_or(reference, |(_, rest)| rest);
    match trimmed.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_ascii_lowercase()
        }
        Some(_) => "docker.io".to_string(),
        None if trimmed.contains('.') || trimmed.contains(':') || trimmed == "localhost" => {
            normalize_host(trimmed)
        }
        None => "docker.io".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"auths":{
        "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
        "myacr.azurecr.io": {"username": "sp", "password": "sp-secret"},
        "http://127.0.0.1:5001/some/path": {"auth": "a2FpdG86czNjcmV0"},
        "token.azurecr.io": {"identitytoken": "refresh-tok"},
        "empty.example.com": {}
    }}"#;

    fn basic(user: &str, pass: &str) -> RegistryCredentials {
        RegistryCredentials::Basic {
            username: user.into(),
            password: SecretString::new(pass),
        }
    }

    #[test]
    fn matches_hosts_with_or_without_scheme_and_path() {
        let c = DockerCredentials::parse(CONFIG.as_bytes(), "secret/push").unwrap();
        assert_eq!(
            c.for_reference("myacr.azurecr.io/adapters/phi:v1"),
            basic("sp", "sp-secret")
        );
        assert_eq!(
            c.for_reference("127.0.0.1:5001/kaito/a:v1"),
            basic("kaito", "s3cret")
        );
        assert_eq!(
            c.for_reference("library/ubuntu:22.04"),
            basic("hub", "hubpass")
        );
        assert_eq!(
            c.for_reference("token.azurecr.io/x:1"),
            basic(ACR_TOKEN_USER, "refresh-tok")
        );
        assert_eq!(
            c.for_reference("empty.example.com/x:1"),
            RegistryCredentials::Anonymous
        );
        assert_eq!(
            c.for_reference("ghcr.io/other/x:1"),
            RegistryCredentials::Anonymous
        );
    }

    #[test]
    fn debug_and_errors_never_show_secrets() {
        let c = DockerCredentials::parse(CONFIG.as_bytes(), "secret/push").unwrap();
        let shown = format!("{c:?} {:?}", c.for_reference("myacr.azurecr.io/a:1"));
        assert!(
            !shown.contains("sp-secret") && !shown.contains("s3cret"),
            "{shown}"
        );
        let err = DockerCredentials::parse(
            br#"{"auths":{"h.io":{"auth":"!!notbase64-hunter2"}}}"#,
            "secret/x",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("secret/x") && err.contains("h.io") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn registry_host_follows_docker_rules() {
        assert_eq!(registry_host("localhost/a:1"), "localhost");
        assert_eq!(registry_host("Foo.IO:443/a/b@sha256:00"), "foo.io:443");
        assert_eq!(registry_host("ubuntu"), "docker.io");
        assert_eq!(registry_host("myacr.azurecr.io"), "myacr.azurecr.io");
    }
}
