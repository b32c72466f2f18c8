//! One module per subcommand.

pub mod artifact;
pub mod operator;
mod report;
pub mod serve;
pub mod tune;
pub mod validate;
