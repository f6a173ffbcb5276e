//! The write overlay of one transaction, with nested checkpoints (also
//! used by the node for a transaction's actions over its block).
//!
//! Every write a transaction makes lands here first. A cross-contract call
//! takes a checkpoint; if the callee fails, [`Overlay::rollback`] undoes
//! exactly the callee's writes, newest first, from a journal of previous
//! values. Reads see the overlay over the underlying [`Storage`].

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::storage::{Storage, StorageError, WriteSet};

/// Pending writes plus the journal that can undo them.
#[derive(Debug, Default)]
pub struct Overlay {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// `(key, previous overlay entry)`, in write order.
    journal: Vec<(Vec<u8>, Option<Option<Vec<u8>>>)>,
}

/// A position in the journal to roll back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint(usize);

/// Result of a merged iteration step.
pub struct NextEntry {
    /// The entry found, if any.
    pub entry: Option<(Vec<u8>, Vec<u8>)>,
    /// Removed entries passed over to find it (charged per entry).
    pub n_skipped: u64,
}

impl Overlay {
    /// The value of `key`: the overlay's, else `storage`'s.
    pub fn get(&self, storage: &dyn Storage, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => storage.get(key),
        }
    }

    /// Writes (`None` removes) `key`.
    pub fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let previous = self.writes.insert(key.clone(), value);
        self.journal.push((key, previous));
    }

    /// The current position, to roll back to.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint(self.journal.len())
    }

    /// Undoes every write made since `checkpoint`.
    pub fn rollback(&mut self, checkpoint: Checkpoint) {
        assert!(
            checkpoint.0 <= self.journal.len(),
            "checkpoint from the future"
        );
        while self.journal.len() > checkpoint.0 {
            let (key, previous) = self.journal.pop().expect("journal longer than checkpoint");
            match previous {
                Some(value) => self.writes.insert(key, value),
                None => self.writes.remove(&key),
            };
        }
    }

    /// The first live entry with key `>= start` that starts with `prefix`,
    /// merging the overlay over `storage`.
    pub fn next(
        &self,
        storage: &dyn Storage,
        start: &[u8],
        prefix: &[u8],
    ) -> Result<NextEntry, StorageError> {
        let mut cursor = start.max(prefix).to_vec();
        let mut n_skipped = 0;
        loop {
            let below = storage.next(&cursor, prefix)?;
            let above = self
                .writes
                .range::<[u8], _>((Bound::Included(cursor.as_slice()), Bound::Unbounded))
                .next()
                .filter(|(key, _)| key.starts_with(prefix));
            let take_overlay = match (&below, &above) {
                (None, None) => {
                    return Ok(NextEntry {
                        entry: None,
                        n_skipped,
                    });
                }
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((below_key, _)), Some((above_key, _))) => {
                    above_key.as_slice() <= below_key.as_slice()
                }
            };
            if !take_overlay {
                return Ok(NextEntry {
                    entry: below,
                    n_skipped,
                });
            }
            let (key, value) = above.expect("chosen overlay entry exists");
            match value {
                Some(value) => {
                    return Ok(NextEntry {
                        entry: Some((key.clone(), value.clone())),
                        n_skipped,
                    });
                }
                None => {
                    n_skipped += 1;
                    cursor = key.clone();
                    cursor.push(0);
                }
            }
        }
    }

    /// The pending writes.
    pub fn writes(&self) -> &WriteSet {
        &self.writes
    }

    /// The pending writes, consuming the overlay.
    pub fn into_writes(self) -> WriteSet {
        self.writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn rollback_restores_exactly_the_checkpoint() {
        let storage = MemoryStorage::new();
        let mut overlay = Overlay::default();
        overlay.set(b"a".to_vec(), Some(b"1".to_vec()));
        let checkpoint = overlay.checkpoint();
        overlay.set(b"a".to_vec(), Some(b"2".to_vec()));
        overlay.set(b"b".to_vec(), Some(b"3".to_vec()));
        overlay.set(b"a".to_vec(), None);
        overlay.rollback(checkpoint);
        assert_eq!(overlay.get(&storage, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(overlay.get(&storage, b"b").unwrap(), None);
        let writes = overlay.into_writes();
        assert_eq!(writes.len(), 1);
    }

    #[test]
    fn next_merges_overlay_over_storage_and_skips_removals() {
        let mut storage = MemoryStorage::new();
        for key in [&b"k1"[..], b"k2", b"k4"] {
            storage.insert(key.to_vec(), b"s".to_vec());
        }
        let mut overlay = Overlay::default();
        overlay.set(b"k2".to_vec(), None);
        overlay.set(b"k3".to_vec(), Some(b"o".to_vec()));
        overlay.set(b"k1".to_vec(), Some(b"o".to_vec()));
        let mut seen = Vec::new();
        let mut start = Vec::new();
        let mut skipped = 0;
        loop {
            let step = overlay.next(&storage, &start, b"k").unwrap();
            skipped += step.n_skipped;
            let Some((key, value)) = step.entry else {
                break;
            };
            start = key.clone();
            start.push(0);
            seen.push((key, value));
        }
        let expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"k1".to_vec(), b"o".to_vec()),
            (b"k3".to_vec(), b"o".to_vec()),
            (b"k4".to_vec(), b"s".to_vec()),
        ];
        assert_eq!(seen, expected);
        assert_eq!(skipped, 1);
    }
}
