//! The validity seam: may this node prevote for a proposed value?
//!
//! In Stele a replica re-executes the proposed batch on its committed state
//! and compares the roots and write sets with the proposer's; here the check
//! is a trait with in-memory twins.

use crate::context::{Height, Value};

/// Decides whether a proposed value is valid at a height.
///
/// To ensure correctness: the verdict must be a deterministic function of the
/// height, the value and the committed state before that height, so that every
/// honest validator reaches the same verdict. A node never prevotes for a value
/// it was told is invalid (it feeds nothing and prevotes nil on its timeout).
pub trait Validity {
    /// Whether `value`, proposed at `height`, is valid.
    fn is_valid(&mut self, height: Height, value: &Value) -> bool;
}

/// Every value is valid (a node that does not check, or a test twin).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Validity for AcceptAll {
    fn is_valid(&mut self, _height: Height, _value: &Value) -> bool {
        true
    }
}

/// A value is valid when a function of the height and the value says so.
pub struct ValidityFn<F>(pub F);

impl<F: FnMut(Height, &Value) -> bool> Validity for ValidityFn<F> {
    fn is_valid(&mut self, height: Height, value: &Value) -> bool {
        (self.0)(height, value)
    }
}
