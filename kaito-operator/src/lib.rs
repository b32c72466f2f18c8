//! The library side of the `kaito` binary, so that integration tests can drive the operator:
//! [`operator`] is the reference Workspace controller behind `kaito operator`.

pub mod operator;
