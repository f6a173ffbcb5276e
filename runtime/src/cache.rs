//! The two compiled-code caches.
//!
//! * [`ModuleCache`] keeps ready-to-instantiate modules in memory, keyed by
//!   code hash, least recently used evicted first. Each key is compiled at
//!   most once at a time: concurrent callers of a missing key wait for the
//!   first one.
//! * [`DiskCache`] keeps precompiled artifacts on disk, keyed by code hash
//!   plus the engine fingerprint (wasmtime version and flags, gas schedule,
//!   instrumentation version). Each file carries a header with its key and
//!   a BLAKE3 hash of its payload; a file that is short, foreign, stale or
//!   corrupt is ignored and rewritten, never trusted.

use std::fs;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;
use stele_host_api::CodeHash;

/// Counters of cache behaviour, for tests, metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls served from the in-memory cache.
    pub memory_hits: u64,
    /// Modules loaded from a valid disk artifact.
    pub disk_hits: u64,
    /// Disk artifacts refused (short, corrupt, stale or not loadable).
    pub disk_rejects: u64,
    /// Modules compiled from wasm.
    pub compiles: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub memory_hits: AtomicU64,
    pub disk_hits: AtomicU64,
    pub disk_rejects: AtomicU64,
    pub compiles: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> CacheStats {
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            disk_rejects: self.disk_rejects.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
        }
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Slot<T> {
    value: OnceLock<Arc<T>>,
    init: Mutex<()>,
}

/// A bounded in-memory cache of prepared modules.
pub(crate) struct ModuleCache<T> {
    entries: Mutex<LruCache<CodeHash, Arc<Slot<T>>>>,
}

impl<T> ModuleCache<T> {
    pub fn new(capacity: NonZeroUsize) -> Self {
        ModuleCache {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The entry for `key`, loading it with `load` if absent. `hit` is set
    /// when the entry was already there.
    pub fn get_or_load<E>(
        &self,
        key: CodeHash,
        hit: &mut bool,
        load: impl FnOnce() -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, E> {
        let slot = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            entries
                .get_or_insert(key, || {
                    Arc::new(Slot {
                        value: OnceLock::new(),
                        init: Mutex::new(()),
                    })
                })
                .clone()
        };
        if let Some(value) = slot.value.get() {
            *hit = true;
            return Ok(value.clone());
        }
        let _guard = slot
            .init
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(value) = slot.value.get() {
            *hit = true;
            return Ok(value.clone());
        }
        let value = load()?;
        let _ = slot.value.set(value.clone());
        Ok(value)
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clear();
    }
}

const MAGIC: &[u8; 8] = b"STELECW1";
const HEADER_BYTES: usize = 8 + 32 + 32 + 8;

/// Precompiled artifacts on disk.
pub(crate) struct DiskCache {
    dir: PathBuf,
    fingerprint: [u8; 32],
}

impl DiskCache {
    pub fn open(dir: &Path, fingerprint: [u8; 32]) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            fingerprint,
        })
    }

    /// The artifact key: code hash and engine fingerprint together.
    fn key(&self, code_hash: &CodeHash) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&code_hash.0);
        hasher.update(&self.fingerprint);
        *hasher.finalize().as_bytes()
    }

    /// Path of the artifact for `code_hash`.
    pub fn path(&self, code_hash: &CodeHash) -> PathBuf {
        self.dir.join(format!(
            "{}.cwasm",
            blake3::Hash::from(self.key(code_hash)).to_hex()
        ))
    }

    /// The verified payload for `code_hash`, or `None` when there is no
    /// usable artifact. `rejected` is set when a file existed but was refused.
    pub fn load(&self, code_hash: &CodeHash, rejected: &mut bool) -> Option<Vec<u8>> {
        let bytes = fs::read(self.path(code_hash)).ok()?;
        let payload = self.verify(code_hash, &bytes);
        if payload.is_none() {
            *rejected = true;
            tracing::warn!(%code_hash, "ignoring a corrupt or stale compiled-code cache entry");
        }
        payload.map(<[u8]>::to_vec)
    }

    fn verify<'b>(&self, code_hash: &CodeHash, bytes: &'b [u8]) -> Option<&'b [u8]> {
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return None;
        }
        let (key, rest) = bytes[8..].split_at(32);
        let (payload_hash, rest) = rest.split_at(32);
        let (len, payload) = rest.split_at(8);
        let len = u64::from_le_bytes(len.try_into().ok()?);
        let valid = key == self.key(code_hash)
            && len == payload.len() as u64
            && blake3::hash(payload).as_bytes() == payload_hash;
        valid.then_some(payload)
    }

    /// Writes an artifact atomically (temporary file, then rename). Errors
    /// are logged and otherwise ignored: the cache is an optimisation.
    pub fn store(&self, code_hash: &CodeHash, payload: &[u8]) {
        let path = self.path(code_hash);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&self.key(code_hash))?;
            file.write_all(blake3::hash(payload).as_bytes())?;
            file.write_all(&(payload.len() as u64).to_le_bytes())?;
            file.write_all(payload)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        if let Err(error) = write() {
            let _ = fs::remove_file(&tmp);
            tracing::warn!(%code_hash, %error, "could not write a compiled-code cache entry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_cache_refuses_tampered_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), [1; 32]).unwrap();
        let hash = CodeHash([9; 32]);
        let mut rejected = false;
        assert_eq!(cache.load(&hash, &mut rejected), None);
        assert!(!rejected);

        cache.store(&hash, b"payload");
        assert_eq!(
            cache.load(&hash, &mut rejected).as_deref(),
            Some(&b"payload"[..])
        );

        let mut bytes = fs::read(cache.path(&hash)).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(cache.path(&hash), &bytes).unwrap();
        assert_eq!(cache.load(&hash, &mut rejected), None);
        assert!(rejected);

        // Same directory, another fingerprint: a different file name, and a
        // file copied across keys is refused by its header.
        let other = DiskCache::open(dir.path(), [2; 32]).unwrap();
        cache.store(&hash, b"payload");
        fs::copy(cache.path(&hash), other.path(&hash)).unwrap();
        let mut rejected = false;
        assert_eq!(other.load(&hash, &mut rejected), None);
        assert!(rejected);
    }

    #[test]
    fn module_cache_loads_once_and_evicts_least_recent() {
        let cache = ModuleCache::<u32>::new(NonZeroUsize::new(2).unwrap());
        let mut loads = 0;
        for _ in 0..3 {
            let mut hit = false;
            let value = cache
                .get_or_load::<()>(CodeHash([1; 32]), &mut hit, || {
                    loads += 1;
                    Ok(Arc::new(7))
                })
                .unwrap();
            assert_eq!(*value, 7);
        }
        assert_eq!(loads, 1);
        let mut hit = false;
        let failed = cache.get_or_load(CodeHash([2; 32]), &mut hit, || Err("boom"));
        assert_eq!(failed.unwrap_err(), "boom");
        cache
            .get_or_load::<()>(CodeHash([3; 32]), &mut hit, || Ok(Arc::new(3)))
            .unwrap();
        cache
            .get_or_load::<()>(CodeHash([2; 32]), &mut hit, || Ok(Arc::new(2)))
            .unwrap();
        // Key 1 was the least recently used of three: it was evicted.
        let mut hit = false;
        cache
            .get_or_load::<()>(CodeHash([1; 32]), &mut hit, || Ok(Arc::new(1)))
            .unwrap();
        assert!(!hit);
    }
}
