//! One module per subcommand.

pub mod operator;
pub mod validate;
