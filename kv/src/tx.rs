//! [`Tx`]: one transaction over a [`ReadView`].

use crate::{ReadSet, ReadView, WriteSet};

/// One transaction: reads go to its own writes first, then to the view (so it reads
/// its own writes); writes are buffered in its write set until the caller applies
/// them at the transaction's version.
#[derive(Debug)]
pub struct Tx<'view, V: ReadView + ?Sized> {
    view: &'view V,
    read_set: ReadSet,
    write_set: WriteSet,
}

impl<'view, V: ReadView + ?Sized> Tx<'view, V> {
    /// A transaction that sees `view` and has written nothing yet.
    pub fn new(view: &'view V) -> Self {
        Tx {
            view,
            read_set: ReadSet::new(),
            write_set: WriteSet::new(),
        }
    }

    /// The value of `key` in `map` as this transaction sees it; records the read.
    pub fn get(&mut self, map: &str, key: &str) -> Option<&[u8]> {
        self.read_set.insert(map, key);
        match self.write_set.get(map, key) {
            Some(own) => own,
            None => self.view.read(map, key),
        }
    }

    /// Writes `value` to `key` in `map`.
    pub fn put(&mut self, map: &str, key: &str, value: Vec<u8>) {
        self.write_set.put(map, key, value);
    }

    /// Deletes `key` in `map` (a no-op on the state if it is absent, but still part
    /// of the write set, so the digest records the intent).
    pub fn delete(&mut self, map: &str, key: &str) {
        self.write_set.delete(map, key);
    }

    /// The writes so far.
    pub fn write_set(&self) -> &WriteSet {
        &self.write_set
    }

    /// Ends the transaction, returning what it read and wrote.
    pub fn finish(self) -> (ReadSet, WriteSet) {
        (self.read_set, self.write_set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn reads_its_own_writes_and_records_reads() {
        let mut store = Store::new();
        let mut initial = WriteSet::new();
        initial.put("m", "k", b"stored".to_vec());
        store.apply(1, &initial).unwrap();

        let mut tx = Tx::new(&store);
        assert_eq!(tx.get("m", "k"), Some(&b"stored"[..]));
        tx.put("m", "k", b"mine".to_vec());
        assert_eq!(tx.get("m", "k"), Some(&b"mine"[..]));
        tx.delete("m", "k");
        assert_eq!(tx.get("m", "k"), None);
        let (read_set, write_set) = tx.finish();
        assert!(read_set.contains("m", "k"));
        assert_eq!(read_set.len(), 1);
        assert_eq!(write_set.get("m", "k"), Some(None));
        // The store is untouched until the caller applies the write set.
        assert_eq!(store.get("m", "k"), Some(&b"stored"[..]));
    }
}
