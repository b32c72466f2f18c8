//! Download URLs for `tuning.input.urls`: absolute http(s) with a public host.
//!
//! The job downloads these from inside the cluster, so a URL naming the node itself, a private
//! network or a cloud metadata endpoint would let a workspace author read what they should not
//! (SSRF). Hosts are read with the WHATWG parser of the `url` crate, which also normalises
//! numeric IPv4 spellings (`http://2130706433/`, `http://0x7f.1/`) to addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Host names that resolve to the node or to a cloud metadata service.
const BLOCKED_HOSTS: &[&str] = &[
    "localhost",
    "metadata.google.internal",
    "metadata.google",
    "instance-data.ec2.internal",
];

/// Checks one input URL; the error says what to change.
pub fn check_download_url(raw: &str) -> Result<(), String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not allowed; use http or https",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed: they would be stored in the workspace in clear".to_owned());
    }
    match url.host() {
        None => Err("the URL has no host".to_owned()),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d.is_empty() {
                return Err("the URL has no host".to_owned());
            }
            if BLOCKED_HOSTS.contains(&d.as_str()) || d.ends_with(".localhost") {
                return Err(format!(
                    "host {d:?} is not allowed: it names the node or a cloud metadata service"
                ));
            }
            Ok(())
        }
        Some(Host::Ipv4(ip)) => ipv4_public(ip),
        Some(Host::Ipv6(ip)) => ipv6_public(ip),
    }
}

fn ipv4_public(ip: Ipv4Addr) -> Result<(), String> {
    let kind = if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local (cloud metadata)"
    } else if ip.is_unspecified() || ip.octets()[0] == 0 {
        "unspecified"
    } else {
        return Ok(());
    };
    Err(format!(
        "{kind} address {ip} is not allowed; use a public host"
    ))
}

fn ipv6_public(ip: Ipv6Addr) -> Result<(), String> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_public(v4);
    }
    let seg0 = ip.segments()[0];
    let kind = if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if seg0 & 0xfe00 == 0xfc00 {
        "private (unique local)"
    } else if seg0 & 0xffc0 == 0xfe80 {
        "link-local"
    } else {
        return Ok(());
    };
    Err(format!(
        "{kind} address {ip} is not allowed; use a public host"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_https_and_http_urls_pass() {
        for ok in [
            "https://huggingface.co/datasets/philschmid/dolly-15k-oai-style/resolve/main/data/train.parquet?download=true",
            "http://example.com:8080/data.jsonl",
            "https://8.8.8.8/x",
            "https://[2001:db8::1]/x",
        ] {
            assert_eq!(check_download_url(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn relative_other_schemes_and_hostless_urls_fail() {
        for (bad, why) in [
            ("data/train.parquet", "absolute"),
            ("ftp://example.com/x", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("s3://bucket/key", "scheme"),
            ("https://user:pw@example.com/x", "credentials"),
        ] {
            let err = check_download_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn node_and_metadata_hosts_fail() {
        for bad in [
            "http://localhost/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://metadata.google/x",
            "http://instance-data.ec2.internal/latest/meta-data",
        ] {
            assert!(
                check_download_url(bad).unwrap_err().contains("not allowed"),
                "{bad}"
            );
        }
    }

    #[test]
    fn loopback_private_and_link_local_literals_fail_in_every_spelling() {
        for bad in [
            "http://127.0.0.1/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://10.1.2.3/x",
            "http://172.16.0.1/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/x",
            "http://[::1]/x",
            "http://[::]/x",
            "http://[fd00::1]/x",
            "http://[fe80::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::ffff:169.254.169.254]/x",
        ] {
            assert!(
                check_download_url(bad).unwrap_err().contains("address"),
                "{bad}"
            );
        }
    }
}
