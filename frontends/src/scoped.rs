//! [`ScopedTx`]: a [`Tx`] that refuses keys outside the command's declared key set.

use stele_kv::{ReadView, Tx, WriteSet};

use crate::command::{AbortReason, KeySet};
use crate::FrontendError;

/// How an app's execution stops early: a deterministic abort (the client's outcome),
/// or an internal fault (a bug; the batch cannot be executed).
#[derive(Debug)]
pub enum Stop {
    /// The transaction aborts with this reason and writes nothing.
    Abort(AbortReason),
    /// An invariant was broken.
    Fault(FrontendError),
}

impl From<AbortReason> for Stop {
    fn from(reason: AbortReason) -> Self {
        Stop::Abort(reason)
    }
}

impl From<FrontendError> for Stop {
    fn from(error: FrontendError) -> Self {
        Stop::Fault(error)
    }
}

/// A transaction restricted to a declared key set. Scheduling relies on the
/// declaration, so an undeclared access is refused with
/// [`FrontendError::UndeclaredKey`], which stops the whole batch.
pub struct ScopedTx<'a, V: ReadView + ?Sized> {
    tx: Tx<'a, V>,
    key_set: &'a KeySet,
}

impl<'a, V: ReadView + ?Sized> ScopedTx<'a, V> {
    /// A transaction over `view` that may touch only `key_set`.
    pub fn new(view: &'a V, key_set: &'a KeySet) -> Self {
        ScopedTx {
            tx: Tx::new(view),
            key_set,
        }
    }

    fn check(&self, map: &str, key: &str) -> Result<(), FrontendError> {
        if !self.key_set.contains(map, key) {
            return Err(FrontendError::UndeclaredKey {
                map: map.to_owned(),
                key: key.to_owned(),
            });
        }
        Ok(())
    }

    /// Reads `key` in `map`.
    pub fn get(&mut self, map: &str, key: &str) -> Result<Option<&[u8]>, FrontendError> {
        self.check(map, key)?;
        Ok(self.tx.get(map, key))
    }

    /// Writes `key` in `map`.
    pub fn put(&mut self, map: &str, key: &str, value: Vec<u8>) -> Result<(), FrontendError> {
        self.check(map, key)?;
        self.tx.put(map, key, value);
        Ok(())
    }

    /// Deletes `key` in `map`.
    pub fn delete(&mut self, map: &str, key: &str) -> Result<(), FrontendError> {
        self.check(map, key)?;
        self.tx.delete(map, key);
        Ok(())
    }

    /// The write set (the read set is not part of the output: scheduling uses the
    /// declared key set instead).
    pub fn into_write_set(self) -> WriteSet {
        self.tx.finish().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_kv::Store;

    #[test]
    fn undeclared_keys_are_refused() {
        let store = Store::new();
        let key_set = KeySet::new(vec![("m".to_owned(), "declared".to_owned())]);
        let mut tx = ScopedTx::new(&store, &key_set);
        assert_eq!(tx.get("m", "declared"), Ok(None));
        tx.put("m", "declared", b"v".to_vec()).unwrap();
        let refused = FrontendError::UndeclaredKey {
            map: "m".to_owned(),
            key: "other".to_owned(),
        };
        assert_eq!(tx.get("m", "other"), Err(refused.clone()));
        assert_eq!(tx.put("m", "other", Vec::new()), Err(refused.clone()));
        assert_eq!(tx.delete("m", "other"), Err(refused));
        assert_eq!(tx.into_write_set().len(), 1);
    }
}
