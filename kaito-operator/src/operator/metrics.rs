//! Prometheus metrics of the operator, served as text at `/metrics`.
//!
//! A handful of counters does not warrant a metrics crate: they are atomics rendered in the
//! Prometheus text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The operator's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    reconcile_errors: AtomicU64,
    reconcile_micros: AtomicU64,
    actions: Mutex<BTreeMap<&'static str, u64>>,
    admissions_allowed: AtomicU64,
    admissions_denied: AtomicU64,
    leader: AtomicBool,
}

impl Metrics {
    /// Records one reconcile.
    pub fn observe_reconcile(&self, took: Duration, ok: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.reconcile_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.reconcile_micros.fetch_add(
            took.as_micros().try_into().unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Records one executed planner action.
    pub fn count_action(&self, name: &'static str) {
        *self
            .actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name)
            .or_insert(0) += 1;
    }

    /// Records one admission review.
    pub fn count_admission(&self, allowed: bool) {
        let counter = if allowed {
            &self.admissions_allowed
        } else {
            &self.admissions_denied
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets whether this process holds the leader Lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this process holds the leader Lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: String| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{value}");
        };
        counter(
            "kaito_reconcile_total",
            "Workspace reconciles.",
            format!(
                "kaito_reconcile_total {}\n",
                self.reconciles.load(Ordering::Relaxed)
            ),
        );
        counter(
            "kaito_reconcile_errors_total",
            "Workspace reconciles that failed.",
            format!(
                "kaito_reconcile_errors_total {}\n",
                self.reconcile_errors.load(Ordering::Relaxed)
            ),
        );
        counter(
            "kaito_reconcile_seconds_total",
            "Time spent reconciling.",
            format!(
                "kaito_reconcile_seconds_total {}\n",
                self.reconcile_micros.load(Ordering::Relaxed) as f64 / 1e6
            ),
        );
        let actions = self
            .actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let lines: String = actions
            .iter()
            .map(|(k, v)| format!("kaito_actions_total{{action=\"{k}\"}} {v}\n"))
            .collect();
        counter(
            "kaito_actions_total",
            "Planner actions executed, by action.",
            lines,
        );
        counter(
            "kaito_admission_reviews_total",
            "Admission reviews, by result.",
            format!(
                "kaito_admission_reviews_total{{allowed=\"true\"}} {}\nkaito_admission_reviews_total{{allowed=\"false\"}} {}\n",
                self.admissions_allowed.load(Ordering::Relaxed),
                self.admissions_denied.load(Ordering::Relaxed)
            ),
        );
        let _ = write!(
            out,
            "# HELP kaito_leader Whether this process holds the leader Lease.\n# TYPE kaito_leader gauge\nkaito_leader {}\n",
            u8::from(self.is_leader())
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe_reconcile(Duration::from_millis(1500), false);
        m.count_action("create_job");
        m.count_admission(false);
        m.set_leader(true);
        let text = m.render();
        assert!(text.contains("kaito_reconcile_total 1\n"), "{text}");
        assert!(text.contains("kaito_reconcile_errors_total 1\n"));
        assert!(text.contains("kaito_reconcile_seconds_total 1.5\n"));
        assert!(text.contains("kaito_actions_total{action=\"create_job\"} 1\n"));
        assert!(text.contains("kaito_admission_reviews_total{allowed=\"false\"} 1\n"));
        assert!(text.contains("# TYPE kaito_leader gauge\nkaito_leader 1\n"));
    }
}
