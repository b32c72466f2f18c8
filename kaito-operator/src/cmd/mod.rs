//! One module per subcommand.

pub mod artifact;
mod model;
pub mod operator;
mod report;
pub mod serve;
pub mod tune;
pub mod validate;
