//! Image references, following the grammar of `github.com/distribution/reference` that KAITO's
//! webhook uses (`ParseDockerRef`):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path            (at most 255 characters)
//! domain     := host [ ":" port ]              host: DNS name, IPv4, or "[" IPv6 "]"
//! path       := component ( "/" component )*   component: [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [\w][\w.-]{0,127}
//! digest     := algorithm ":" hex{32,}         algorithm: [A-Za-z][A-Za-z0-9]* ( [+._-] [A-Za-z][A-Za-z0-9]* )*
//! ```
//!
//! The first path element is a registry when it contains `.` or `:`, is `localhost`, or has an
//! upper-case letter; otherwise the registry is `docker.io`.

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
    /// Registry host (and port); `docker.io` when the reference names none.
    pub registry: String,
    /// Repository path (`library/` is prefixed for official Docker Hub images).
    pub repository: String,
    /// The tag, if given.
    pub tag: Option<String>,
    /// The digest, if given.
    pub digest: Option<String>,
}

/// Parses `s` as a Docker image reference.
pub fn parse_image_reference(s: &str) -> Result<ImageReference, String> {
    if s.is_empty() {
        return Err("empty image reference".to_owned());
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            digest_ok(d)?;
            (r, Some(d.to_owned()))
        }
        None => (s, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        tag_ok(tag)?;
    }
    if name.is_empty() {
        return Err("missing repository name".to_owned());
    }
    if name.len() > 255 {
        return Err(format!(
            "repository name must not be longer than 255 characters (has {})",
            name.len()
        ));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, remainder))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            domain_ok(first)?;
            (first.to_owned(), remainder)
        }
        _ => ("docker.io".to_owned(), name),
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository name {path:?} must be lowercase"));
    }
    for component in path.split('/') {
        path_component_ok(component)?;
    }
    let repository = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    Ok(ImageReference {
        registry,
        repository,
        tag: tag.map(str::to_owned),
        digest,
    })
}

fn path_component_ok(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "invalid repository path component {c:?}: use [a-z0-9] separated by '.', '_', '__' or '-'"
        ))
    };
    let bytes = c.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "."
            || sep == "_"
            || sep == "__"
            || (!sep.is_empty() && sep.bytes().all(|b| b == b'-'));
        if !ok {
            return bad();
        }
    }
    Ok(())
}

fn domain_ok(d: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid registry {d:?}"));
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return bad();
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return bad(),
        };
        (None, port)
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return bad();
        }
    }
    Ok(())
}

fn tag_ok(t: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !t.is_empty()
        && t.len() <= 128
        && word(t.as_bytes()[0])
        && t.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {t:?}: at most 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

fn digest_ok(d: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "invalid digest {d:?}: expected algorithm:hex, e.g. sha256:<64 hex digits>"
        ))
    };
    let Some((algorithm, hex)) = d.split_once(':') else {
        return bad();
    };
    let component_ok = |c: &str| {
        c.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    if !algorithm.split(['+', '.', '-', '_']).all(component_ok) {
        return bad();
    }
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad();
    }
    if algorithm == "sha256" && hex.len() != 64 {
        return Err(format!("invalid digest {d:?}: sha256 needs 64 hex digits"));
    }
    Ok(())
}

/// Whether `s` contains a template placeholder such as `ACR_REPO_HERE` (an all-caps word with
/// an underscore), as KAITO's examples ship them.
pub fn has_placeholder(s: &str) -> bool {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| {
            w.contains('_')
                && w.chars().any(|c| c.is_ascii_uppercase())
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references_parse_into_parts() {
        let r = parse_image_reference("myregistry.azurecr.io/adapters/phi-3:0.0.1").expect("valid");
        assert_eq!(r.registry, "myregistry.azurecr.io");
        assert_eq!(r.repository, "adapters/phi-3");
        assert_eq!(r.tag.as_deref(), Some("0.0.1"));
        let r = parse_image_reference("busybox").expect("valid");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag),
            ("docker.io", "library/busybox", None)
        );
        let r = parse_image_reference("localhost:5000/a__b/c-d---e.f_g@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
            .expect("valid");
        assert_eq!(r.registry, "localhost:5000");
        assert!(r.digest.is_some());
        assert!(parse_image_reference("[::1]:5000/x:y").is_ok());
    }

    #[test]
    fn invalid_references_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1", "registry"),
            ("registry.io/Upper:1", "lowercase"),
            ("registry.io/a:b:c", "component"),
            ("registry.io/a:", "tag"),
            ("registry.io/a@sha256:abc", "digest"),
            ("registry.io/a..b", "component"),
            ("registry.io/a___b", "component"),
            ("registry.io/-a", "component"),
            ("https://registry.io/a", "registry"),
        ] {
            let err = parse_image_reference(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(parse_image_reference(&format!("r.io/{}", "a".repeat(260))).is_err());
    }

    #[test]
    fn placeholders_are_recognised() {
        assert!(has_placeholder(
            "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1"
        ));
        assert!(has_placeholder("ACR_REGISTRY_SECRET_HERE"));
        assert!(!has_placeholder("myacr.azurecr.io/adapter:v1"));
        assert!(!has_placeholder("MyImage"));
    }
}
