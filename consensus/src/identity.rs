//! Re-export of `stele_history::identity`, kept for the `crate::identity` path.
pub use stele_history::identity::*;
