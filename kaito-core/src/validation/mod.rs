//! Admission rules for Workspaces (kaito.md §5), returning every violation at once.

mod field;

pub use field::{FieldError, FieldErrors};
