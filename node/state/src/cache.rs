//! A cache of latest values in front of the `values` column family.
//!
//! Reads that hit it cost a hash lookup instead of a RocksDB get (memtable,
//! bloom filters, block search). Reads fill it; commits write through to
//! the keys it holds, so a value a block read and wrote is there for the
//! next block. It holds absent keys too.
//!
//! A miss reads the database outside the lock, which races with a commit:
//! the reader might fetch the old value and cache it after the commit wrote
//! the new one. Every commit therefore bumps a generation under the lock,
//! and a value read under an older generation is not cached.

use std::sync::{Mutex, MutexGuard, TryLockError};

use lru::LruCache;

use crate::db::WriteSet;

/// Bytes counted per entry on top of its key and value (map slot, list
/// links, allocations).
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// A byte-bounded LRU of latest values.
pub(crate) struct ValueCache {
    inner: Mutex<Inner>,
    bytes_max: usize,
}

struct Inner {
    /// Bumped by every commit.
    generation: u64,
    entries: LruCache<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
}

fn entry_bytes(key: &[u8], value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD_BYTES
}

impl ValueCache {
    /// A cache of at most `bytes_max` bytes (0: caches nothing).
    pub(crate) fn new(bytes_max: usize) -> Self {
        ValueCache {
            inner: Mutex::new(Inner {
                generation: 0,
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            bytes_max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The lock if no other thread holds it.
    fn try_lock(&self) -> Option<MutexGuard<'_, Inner>> {
        match self.inner.try_lock() {
            Ok(inner) => Some(inner),
            Err(TryLockError::Poisoned(poison)) => Some(poison.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Whether an entry of `bytes` may be cached: one bigger than a
    /// sixteenth of the cache would push out many small hot ones.
    fn fits(&self, bytes: usize) -> bool {
        bytes <= self.bytes_max / 16
    }

    /// The cached latest value of `key` (`Ok(None)`: cached as absent),
    /// or on a miss the generation to pass to [`ValueCache::fill`]
    /// (`None`: do not fill).
    ///
    /// Readers never wait for the lock: when another thread holds it the
    /// read goes to the database. On a machine with more busy threads than
    /// cores, waiting could mean waiting for a holder that is not running.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Option<u64>> {
        let Some(mut inner) = self.try_lock() else {
            return Err(None);
        };
        match inner.entries.get(key) {
            Some(value) => Ok(value.clone()),
            None => Err(Some(inner.generation)),
        }
    }

    /// Caches `value`, read from the database for `key` while the cache
    /// was at `generation`, unless a commit happened since (or the lock is
    /// busy: filling is optional).
    pub(crate) fn fill(&self, key: &[u8], value: Option<&[u8]>, generation: u64) {
        let Some(mut inner) = self.try_lock() else {
            return;
        };
        if inner.generation == generation {
            self.put(&mut inner, key, value);
        }
    }

    /// Writes a committed write set through to the entries the cache
    /// holds, then bumps the generation. Keys it does not hold are not
    /// added: a block of many cold writes would push out the hot reads.
    pub(crate) fn commit(&self, writes: &WriteSet) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if !inner.entries.is_empty() {
            for (key, value) in writes {
                let Some(cached) = inner.entries.peek_mut(key.as_slice()) else {
                    continue;
                };
                let old_bytes = entry_bytes(key, cached.as_deref());
                let new_bytes = entry_bytes(key, value.as_deref());
                if !self.fits(new_bytes) {
                    inner.entries.pop(key.as_slice());
                    inner.bytes -= old_bytes;
                    continue;
                }
                cached.clone_from(value);
                inner.bytes = inner.bytes - old_bytes + new_bytes;
            }
            self.evict(inner);
        }
        inner.generation += 1;
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.bytes > self.bytes_max {
            match inner.entries.pop_lru() {
                Some((key, value)) => inner.bytes -= entry_bytes(&key, value.as_deref()),
                None => break,
            }
        }
    }

    fn put(&self, inner: &mut Inner, key: &[u8], value: Option<&[u8]>) {
        let bytes = entry_bytes(key, value);
        if let Some(old) = inner.entries.pop(key) {
            inner.bytes -= entry_bytes(key, old.as_deref());
        }
        if !self.fits(bytes) {
            return;
        }
        inner.entries.put(key.to_vec(), value.map(<[u8]>::to_vec));
        inner.bytes += bytes;
        self.evict(inner);
    }

    /// Entries and bytes held (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(entries: &[(&[u8], Option<&[u8]>)]) -> WriteSet {
        entries
            .iter()
            .map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn a_read_that_raced_a_commit_is_not_cached() {
        let cache = ValueCache::new(1 << 20);
        let generation = cache.get(b"k").unwrap_err().unwrap();
        // The reader fetched the old value; a commit then wrote a new one.
        cache.commit(&writes(&[(b"k", Some(b"new"))]));
        cache.fill(b"k", Some(b"old"), generation);
        assert!(cache.get(b"k").is_err(), "the stale read is not cached");
        // A read with no commit in between is cached, absent keys too.
        let generation = cache.get(b"k").unwrap_err().unwrap();
        cache.fill(b"k", Some(b"new"), generation);
        cache.fill(b"gone", None, generation);
        assert_eq!(cache.get(b"k"), Ok(Some(b"new".to_vec())));
        assert_eq!(cache.get(b"gone"), Ok(None));
        // Commits write through to what is cached, removals included, and
        // do not add what is not.
        cache.commit(&writes(&[
            (b"k", None),
            (b"gone", Some(b"back")),
            (b"cold", Some(b"v")),
        ]));
        assert_eq!(cache.get(b"k"), Ok(None));
        assert_eq!(cache.get(b"gone"), Ok(Some(b"back".to_vec())));
        assert!(cache.get(b"cold").is_err());
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let budget = 64 * (ENTRY_OVERHEAD_BYTES + 8 + 100);
        let cache = ValueCache::new(budget);
        for n in 0u64..1_000 {
            let generation = cache.get(&n.to_be_bytes()).unwrap_err().unwrap();
            cache.fill(&n.to_be_bytes(), Some(&[7u8; 100]), generation);
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= budget, "{bytes} bytes held, budget {budget}");
        assert_eq!(entries, 64);
        // The most recent entries are the ones kept.
        assert_eq!(cache.get(&999u64.to_be_bytes()), Ok(Some(vec![7u8; 100])));
        assert!(cache.get(&0u64.to_be_bytes()).is_err());
        // A commit that grows cached values evicts to stay in budget.
        let grown: Vec<(Vec<u8>, Option<Vec<u8>>)> = (936u64..1_000)
            .map(|n| (n.to_be_bytes().to_vec(), Some(vec![8u8; 200])))
            .collect();
        cache.commit(&grown.into_iter().collect());
        let (_, bytes) = cache.usage();
        assert!(bytes <= budget, "{bytes} bytes held, budget {budget}");
        // Too big an entry is not cached, and drops what it replaces.
        let generation = cache.get(b"big").unwrap_err().unwrap();
        cache.fill(b"big", Some(&vec![1u8; budget]), generation);
        assert!(cache.get(b"big").is_err());
        cache.commit(&writes(&[(
            &999u64.to_be_bytes(),
            Some(&vec![1u8; budget]),
        )]));
        assert!(cache.get(&999u64.to_be_bytes()).is_err());
        // A cache of zero bytes caches nothing.
        let off = ValueCache::new(0);
        let generation = off.get(b"k").unwrap_err().unwrap();
        off.fill(b"k", Some(b"v"), generation);
        assert!(off.get(b"k").is_err());
    }
}
