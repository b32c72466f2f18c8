//! The workspace revision: a hash of what the user asked for, and its ControllerRevision
//! history (kaito.md §2 step 3).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::{InferenceSpec, ResourceSpec, TuningSpec, WorkspaceV1Beta1};

/// How many ControllerRevisions KAITO keeps per workspace.
pub const REVISION_HISTORY_LIMIT: usize = 10;

/// sha256 (hex) over the JSON of `resource`, `inference` and `tuning`: the same spec always
/// yields the same hash; metadata and status never change it.
pub fn spec_hash(ws: &WorkspaceV1Beta1) -> String {
    #[derive(Serialize)]
    struct Hashed<'a> {
        resource: &'a Option<ResourceSpec>,
        inference: &'a Option<InferenceSpec>,
        tuning: &'a Option<TuningSpec>,
    }
    let json = serde_json::to_vec(&Hashed {
        resource: &ws.resource,
        inference: &ws.inference,
        tuning: &ws.tuning,
    })
    .expect("workspace specs always serialize");
    hex::encode(Sha256::digest(json))
}

/// The ControllerRevision name for a hash: `<workspace>-<first 5 hex digits>`.
pub fn revision_name(workspace: &str, hash: &str) -> String {
    format!("{workspace}-{}", &hash[..hash.len().min(5)])
}

/// A ControllerRevision as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRevision {
    /// The object's name.
    pub name: String,
    /// Its revision number.
    pub revision: i64,
    /// Its `workspace.kaito.io/hash` annotation.
    pub hash: String,
}

/// The revision the workspace is at, and what to do with the history to get there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionPlan {
    /// The spec hash.
    pub hash: String,
    /// The revision number for that hash (existing, or last + 1).
    pub revision: i64,
    /// Create this ControllerRevision (name) when the hash has none yet.
    pub create: Option<String>,
    /// Delete these (oldest first) to keep the history within the limit.
    pub delete: Vec<String>,
}

/// Decides the revision for `ws` given the existing history.
pub fn plan_revision(ws: &WorkspaceV1Beta1, history: &[ObservedRevision]) -> RevisionPlan {
    let hash = spec_hash(ws);
    if let Some(existing) = history.iter().find(|r| r.hash == hash) {
        return RevisionPlan {
            hash,
            revision: existing.revision,
            create: None,
            delete: Vec::new(),
        };
    }
    let revision = history.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    let mut sorted: Vec<&ObservedRevision> = history.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    // After creating one more, at most REVISION_HISTORY_LIMIT remain.
    let excess = (sorted.len() + 1).saturating_sub(REVISION_HISTORY_LIMIT);
    let delete = sorted.iter().take(excess).map(|r| r.name.clone()).collect();
    RevisionPlan {
        create: Some(revision_name(ws.name(), &hash)),
        hash,
        revision,
        delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DataSource, TuningSpec};

    fn ws(url: &str) -> WorkspaceV1Beta1 {
        let mut ws = WorkspaceV1Beta1::new("default", "tune");
        ws.tuning = Some(TuningSpec {
            input: Some(DataSource {
                urls: Some(vec![url.to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        });
        ws
    }

    #[test]
    fn same_spec_same_hash_and_metadata_does_not_count() {
        let a = ws("https://example.com/a.parquet");
        let mut b = a.clone();
        b.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into());
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_ne!(
            spec_hash(&a),
            spec_hash(&ws("https://example.com/b.parquet"))
        );
        assert_eq!(spec_hash(&a).len(), 64);
    }

    #[test]
    fn first_revision_is_one_and_existing_hash_is_reused() {
        let w = ws("https://example.com/a.parquet");
        let first = plan_revision(&w, &[]);
        assert_eq!(first.revision, 1);
        assert_eq!(
            first.create.as_deref(),
            Some(revision_name("tune", &first.hash).as_str())
        );
        let history = [ObservedRevision {
            name: first.create.clone().unwrap_or_default(),
            revision: 1,
            hash: first.hash.clone(),
        }];
        let again = plan_revision(&w, &history);
        assert_eq!((again.revision, again.create), (1, None));
        let changed = plan_revision(&ws("https://example.com/b.parquet"), &history);
        assert_eq!(changed.revision, 2);
    }

    #[test]
    fn history_is_capped_oldest_first() {
        let history: Vec<ObservedRevision> = (1..=10)
            .map(|i| ObservedRevision {
                name: format!("r{i}"),
                revision: i,
                hash: format!("h{i}"),
            })
            .collect();
        let plan = plan_revision(&ws("https://example.com/new.parquet"), &history);
        assert_eq!(plan.revision, 11);
        assert_eq!(plan.delete, vec!["r1".to_owned()]);
    }
}
