//! Re-export of `stele_history::state`, kept for the `crate::history` path.
pub use stele_history::state::*;
