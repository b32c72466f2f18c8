//! Where a tuning input URL may point.
//!
//! Validation checks the URL text; here the rules are enforced again on what the name resolves
//! to, for every connection (redirects included), so a public-looking name that resolves to a
//! cluster-internal address (SSRF, DNS rebinding) is refused. Tests opt out with
//! `allow_private_addresses`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// A refused address; reqwest wraps it, the downloader finds it again by downcasting.
#[derive(Debug)]
pub(crate) struct BlockedAddress(pub String);

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BlockedAddress {}

/// Whether `ip` is public (not loopback, private, link-local, CGNAT, unique-local, multicast…).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT, used for pod networks
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80) // link local
}

/// Checks a URL's scheme and, for a literal IP host, the address.
pub(crate) fn check_url(url: &Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not allowed (http or https only)",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed".to_string());
    }
    let ip = match url.host() {
        None => return Err("the URL has no host".to_string()),
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
    };
    if !allow_private && !is_public(ip) {
        return Err(format!("address {ip} is loopback, private or link-local"));
    }
    Ok(())
}

/// A resolver that refuses names resolving to non-public addresses.
pub(crate) struct GuardedResolver {
    pub allow_private: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_checked(
            name.as_str().to_string(),
            self.allow_private,
        ))
    }
}

async fn resolve_checked(host: String, allow_private: bool) -> Result<Addrs, BoxError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        let msg = format!(
            "host {host} resolves to {}, a loopback, private or link-local address",
            bad.ip()
        );
        return Err(Box::new(BlockedAddress(msg)));
    }
    Ok(Box::new(addrs.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "20.50.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_connecting() {
        let check = |u: &str, allow| check_url(&Url::parse(u).unwrap(), allow);
        assert!(check("https://data.example.com/a.json", false).is_ok());
        assert!(
            check("ftp://data.example.com/a.json", false)
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            check("http://169.254.169.254/latest", false)
                .unwrap_err()
                .contains("169.254.169.254")
        );
        // Names are judged by what they resolve to (GuardedResolver), not by their text.
        assert!(check("http://localhost:8080/x", false).is_ok());
        assert!(check("http://127.0.0.1:8080/x", true).is_ok());
        assert!(
            check("https://user:pw@example.com/x", false)
                .unwrap_err()
                .contains("credentials")
        );
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_private_addresses() {
        let err = match (GuardedResolver {
            allow_private: false,
        })
        .resolve("localhost".parse().unwrap())
        .await
        {
            Err(e) => e,
            Ok(_) => panic!("localhost resolved"),
        };
        assert!(err.downcast_ref::<BlockedAddress>().is_some(), "{err}");
    }
}
