//! Kubernetes name rules (apimachinery `validation`) and label selectors.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// `IsDNS1123Label`: at most 63 lowercase alphanumerics or `-`, starting and ending alphanumeric.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > 63 {
        return Err(format!(
            "must be no more than 63 characters (has {})",
            s.len()
        ));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !s.chars().all(|c| ok_char(c) || c == '-')
        || !s.starts_with(ok_char)
        || !s.ends_with(ok_char)
    {
        return Err(format!(
            "{s:?} is not a DNS-1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// `IsDNS1123Subdomain`: at most 253 characters of dot-separated DNS-1123 labels.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > 253 {
        return Err(format!(
            "must be no more than 253 characters (has {})",
            s.len()
        ));
    }
    if s.split('.').any(|part| dns1123_label(part).is_err()) {
        return Err(format!(
            "{s:?} is not a DNS-1123 subdomain: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A name segment of a label key or a label value: at most 63 characters, alphanumerics with
/// `-`, `_`, `.` inside.
fn label_segment(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// `IsQualifiedName` (label keys): `[prefix/]name`, prefix a DNS-1123 subdomain.
pub fn label_key(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let prefix_ok = prefix.is_none_or(|p| dns1123_subdomain(p).is_ok());
    if !prefix_ok || name.is_empty() || !label_segment(name) {
        return Err(format!(
            "{s:?} is not a valid label key: an optional DNS subdomain prefix and '/', then at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok(())
}

/// `IsValidLabelValue`: empty, or a label segment.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || label_segment(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid label value: at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ))
    }
}

/// `metav1.LabelSelectorAsMap`: `matchLabels` plus `In` expressions with exactly one value.
pub fn selector_as_map(sel: &LabelSelector) -> Result<BTreeMap<String, String>, String> {
    let mut map = sel.match_labels.clone().unwrap_or_default();
    for expr in sel.match_expressions.iter().flatten() {
        match (expr.operator.as_str(), expr.values.as_deref()) {
            ("In", Some([value])) => {
                map.insert(expr.key.clone(), value.clone());
            }
            ("In", _) => {
                return Err(format!(
                    "operator In on {:?} needs exactly one value to become a node label",
                    expr.key
                ));
            }
            (op, _) => {
                return Err(format!(
                    "operator {op:?} on {:?} cannot become a node label; use matchLabels or In with one value",
                    expr.key
                ));
            }
        }
    }
    Ok(map)
}

/// Whether a node with `labels` matches `sel` (all of matchLabels and matchExpressions).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn dns_labels_and_subdomains() {
        assert!(dns1123_label("workspace-tuning-phi-3").is_ok());
        for bad in ["", "Workspace", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad:?}");
        }
        assert!(dns1123_subdomain("my.secret-1").is_ok());
        assert!(dns1123_subdomain("ACR_REGISTRY_SECRET_HERE").is_err());
        assert!(dns1123_subdomain("a..b").is_err());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(label_key("app").is_ok());
        assert!(label_key("kaito.sh/workspace").is_ok());
        assert!(label_key("Bad Key").is_err());
        assert!(label_key("/x").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("tuning-phi-3").is_ok());
        assert!(label_value("-x").is_err());
    }

    #[test]
    fn selectors_convert_to_maps_only_with_single_value_in() {
        let expr = |op: &str, values: &[&str]| LabelSelectorRequirement {
            key: "gpu".into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let mut sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "x".into())])),
            match_expressions: Some(vec![expr("In", &["a100"])]),
        };
        let map = selector_as_map(&sel).expect("converts");
        assert_eq!(map.get("gpu").map(String::as_str), Some("a100"));
        sel.match_expressions = Some(vec![expr("In", &["a", "b"])]);
        assert!(selector_as_map(&sel).is_err());
        sel.match_expressions = Some(vec![expr("NotIn", &["a"])]);
        assert!(selector_as_map(&sel).is_err());
    }

    #[test]
    fn selectors_match_node_labels() {
        let labels = BTreeMap::from([
            ("app".to_owned(), "x".to_owned()),
            ("gpu".to_owned(), "a100".to_owned()),
        ]);
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "x".into())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "zone".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        assert!(selector_matches(&sel, &labels));
        let other = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "y".into())])),
            match_expressions: None,
        };
        assert!(!selector_matches(&other, &labels));
    }
}
