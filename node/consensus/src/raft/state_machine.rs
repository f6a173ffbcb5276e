//! The state machine is the chain: applying a committed entry executes its
//! block through [`Application::execute`], with the entry's log id as the
//! block's ordering mark.
//!
//! The applied position is therefore kept in two places that cannot
//! disagree: the chain stores each block's log id with the block, in the
//! same synced batch, and `meta` (in the engine's RocksDB) keeps the last
//! applied entry and the membership. Membership entries are written to
//! `meta` synced before the next entry applies; other non-block entries
//! (blanks) need no durability, since applying one again changes nothing.
//! After a crash the applied position is the later of the two, so a block
//! is never executed twice and never skipped.
//!
//! Snapshots are files in `<raft dir>/snapshots`, one per build, named by
//! their last log id:
//!
//! ```text
//! magic   16 bytes "stele-raft-snap1"
//! meta    u32 length + borsh WireSnapshotMeta
//! chain   the chain's snapshot (Application::write_snapshot)
//! ```
//!
//! The newest two are kept (a transfer of the older may still be reading
//! it); an installed snapshot becomes this node's current one.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use borsh::BorshDeserialize;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftLogId, StorageIOError};

use super::log_store::{META_APPLIED, META_MEMBERSHIP, RaftDb};
use super::types::{
    Entry, LogId, Request, Response, SnapshotFile, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use super::wire::{SNAPSHOT_ID_BYTES_MAX, WireLogId, WireSnapshotMeta, WireStoredMembership};
use crate::{Application, Executed};

/// The first bytes of a Raft snapshot file.
pub const RAFT_SNAPSHOT_MAGIC: &[u8; 16] = b"stele-raft-snap1";

/// Most bytes of a snapshot file's meta section (a membership of a few
/// dozen nodes takes a few KiB).
pub const SNAPSHOT_META_BYTES_MAX: usize = 64 * 1024;

/// Snapshot files kept.
const SNAPSHOTS_KEPT: usize = 2;

fn sm_error(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(openraft::AnyError::error(error.to_string())).into()
}

fn snapshot_error(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(None, openraft::AnyError::error(error.to_string())).into()
}

/// Reads the header of a snapshot file, leaving `reader` at the chain's
/// snapshot.
pub fn read_snapshot_header(reader: &mut dyn Read) -> Result<SnapshotMeta, String> {
    let mut magic = [0; 16];
    reader
        .read_exact(&mut magic)
        .map_err(|error| format!("reading a snapshot: {error}"))?;
    if &magic != RAFT_SNAPSHOT_MAGIC {
        return Err("not a Raft snapshot file (bad magic bytes)".into());
    }
    let mut len = [0; 4];
    reader
        .read_exact(&mut len)
        .map_err(|error| format!("reading a snapshot: {error}"))?;
    let len = u32::from_le_bytes(len) as usize;
    if len > SNAPSHOT_META_BYTES_MAX {
        return Err(format!(
            "a snapshot's meta of {len} bytes is over the limit of {SNAPSHOT_META_BYTES_MAX}"
        ));
    }
    let mut bytes = vec![0; len];
    reader
        .read_exact(&mut bytes)
        .map_err(|error| format!("reading a snapshot: {error}"))?;
    let meta = WireSnapshotMeta::try_from_slice(&bytes)
        .map_err(|error| format!("a snapshot's meta does not decode: {error}"))?;
    if meta.snapshot_id.len() > SNAPSHOT_ID_BYTES_MAX {
        return Err("a snapshot id is too long".into());
    }
    Ok(meta.into())
}

fn write_snapshot_header(out: &mut dyn Write, meta: &SnapshotMeta) -> std::io::Result<()> {
    let bytes = borsh::to_vec(&WireSnapshotMeta::from(meta))?;
    out.write_all(RAFT_SNAPSHOT_MAGIC)?;
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(&bytes)
}

fn snapshot_name(last: Option<&LogId>, seq: u64) -> String {
    let (term, index) = last.map_or((0, 0), |id| (id.leader_id.term, id.index));
    format!("{index:020}-{term:020}-{seq:06}.snap")
}

/// The snapshot files in `dir`, oldest first (their names sort by index).
fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
        .collect();
    files.sort();
    files
}

fn prune_snapshots(dir: &Path) {
    let files = snapshot_files(dir);
    let excess = files.len().saturating_sub(SNAPSHOTS_KEPT);
    for old in &files[..excess] {
        let _ = std::fs::remove_file(old);
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The chain as openraft's state machine.
pub struct StateMachine {
    app: Arc<dyn Application>,
    db: RaftDb,
    snapshots: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    /// Makes every snapshot file name unique.
    seq: Arc<AtomicU64>,
}

impl StateMachine {
    /// The state machine over `app`, its position in `db`, its snapshots in
    /// `snapshots` (created).
    pub fn open(
        app: Arc<dyn Application>,
        db: RaftDb,
        snapshots: PathBuf,
    ) -> Result<StateMachine, String> {
        std::fs::create_dir_all(&snapshots)
            .map_err(|error| format!("cannot create {}: {error}", snapshots.display()))?;
        // Temporary files of builds and transfers a crash interrupted.
        for entry in std::fs::read_dir(&snapshots)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|ext| ext == "tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let applied: Option<WireLogId> = match db.meta(META_APPLIED).map_err(|e| e.to_string())? {
            None => None,
            Some(bytes) => Option::<WireLogId>::try_from_slice(&bytes)
                .map_err(|error| format!("corrupt applied position: {error}"))?,
        };
        let membership = match db.meta(META_MEMBERSHIP).map_err(|e| e.to_string())? {
            None => StoredMembership::default(),
            Some(bytes) => WireStoredMembership::try_from_slice(&bytes)
                .map_err(|error| format!("corrupt membership: {error}"))?
                .into(),
        };
        // The chain's mark says which block it executed last: it may be
        // ahead of `meta` (the crash came before `meta` was written).
        let marked =
            match app.executed_mark().map_err(|halted| halted.to_string())? {
                None => None,
                Some(mark) => Some(WireLogId::try_from_slice(&mark).map_err(|error| {
                    format!("the chain's ordering mark is not a log id: {error}")
                })?),
            };
        let applied = match (applied, marked) {
            (Some(applied), Some(marked)) if marked.index > applied.index => Some(marked),
            (None, marked) => marked,
            (applied, _) => applied,
        };
        Ok(StateMachine {
            app,
            db,
            snapshots,
            applied: applied.map(Into::into),
            membership,
            seq: Arc::new(AtomicU64::new(0)),
        })
    }

    fn persist(&self, sync: bool) -> Result<(), StorageError> {
        let applied =
            borsh::to_vec(&self.applied.as_ref().map(WireLogId::from)).map_err(sm_error)?;
        let membership =
            borsh::to_vec(&WireStoredMembership::from(&self.membership)).map_err(sm_error)?;
        self.db.put_meta(
            &[(META_APPLIED, applied), (META_MEMBERSHIP, membership)],
            sync,
        )
    }
}

/// Builds a snapshot of the chain as of the moment it was asked for.
pub struct SnapshotBuilder {
    app: Arc<dyn Application>,
    snapshots: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    height: u64,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let name = snapshot_name(self.applied.as_ref(), self.seq);
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: name.trim_end_matches(".snap").to_string(),
        };
        let path = self.snapshots.join(&name);
        let temporary = path.with_extension("tmp");
        let app = self.app.clone();
        let height = self.height;
        let header_meta = meta.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let file = File::create(&temporary)
                .map_err(|error| format!("creating {}: {error}", temporary.display()))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            write_snapshot_header(&mut out, &header_meta).map_err(|error| error.to_string())?;
            app.write_snapshot(height, &mut out)
                .map_err(|error| error.to_string())?;
            let file = out.into_inner().map_err(|error| error.to_string())?;
            file.sync_all().map_err(|error| error.to_string())?;
            std::fs::rename(&temporary, &path).map_err(|error| error.to_string())?;
            Ok(())
        })
        .await
        .map_err(snapshot_error)?;
        written.map_err(snapshot_error)?;
        sync_dir(&self.snapshots);
        prune_snapshots(&self.snapshots);
        tracing::info!(height, snapshot = %meta.snapshot_id, "built a snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile {
                path: self.snapshots.join(name),
            }),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            let response = match entry.payload {
                EntryPayload::Blank => Response::Nothing,
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(log_id), membership);
                    self.applied = Some(log_id);
                    self.persist(true)?;
                    Response::Nothing
                }
                EntryPayload::Normal(Request::Block(block)) => {
                    let mark = borsh::to_vec(&WireLogId::from(&log_id)).map_err(sm_error)?;
                    let app = self.app.clone();
                    let executed = tokio::task::spawn_blocking(move || app.execute(block, &mark))
                        .await
                        .map_err(sm_error)?;
                    match executed {
                        Ok(Executed::Applied(tip) | Executed::AlreadyExecuted(tip)) => {
                            Response::Executed { height: tip.height }
                        }
                        Ok(Executed::Stale(_)) => Response::Stale,
                        // The node halted: openraft stops this node.
                        Err(halted) => return Err(sm_error(halted)),
                    }
                }
            };
            self.applied = Some(log_id);
            responses.push(response);
        }
        self.persist(false)?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            app: self.app.clone(),
            snapshots: self.snapshots.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
            height: self.app.tip().height,
            seq: self.seq.fetch_add(1, AtomicOrdering::Relaxed),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        Ok(Box::new(SnapshotFile {
            path: self.snapshots.join(format!("receiving-{seq}.tmp")),
        }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        let app = self.app.clone();
        let path = snapshot.path.clone();
        let expected = meta.clone();
        let installed = tokio::task::spawn_blocking(move || -> Result<u64, String> {
            let file = File::open(&path).map_err(|error| format!("{}: {error}", path.display()))?;
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let found = read_snapshot_header(&mut reader)?;
            if found != expected {
                return Err(format!(
                    "the snapshot file holds {found}, expected {expected}"
                ));
            }
            let info = app
                .install_snapshot(&mut reader)
                .map_err(|error| error.to_string())?;
            Ok(info.height)
        })
        .await
        .map_err(snapshot_error)?
        .map_err(|error| {
            tracing::error!(%error, "refused a snapshot");
            snapshot_error(error)
        })?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.persist(true)?;
        // It becomes this node's current snapshot.
        let name = snapshot_name(
            meta.last_log_id.as_ref(),
            self.seq.fetch_add(1, AtomicOrdering::Relaxed),
        );
        let target = self.snapshots.join(name);
        if snapshot.path != target {
            std::fs::rename(&snapshot.path, &target).map_err(snapshot_error)?;
        }
        sync_dir(&self.snapshots);
        prune_snapshots(&self.snapshots);
        tracing::info!(height = installed, snapshot = %meta.snapshot_id, "installed a snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(path) = snapshot_files(&self.snapshots).pop() else {
            return Ok(None);
        };
        let meta = File::open(&path)
            .map_err(|error| error.to_string())
            .and_then(|file| read_snapshot_header(&mut BufReader::new(file)));
        match meta {
            Ok(meta) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(SnapshotFile { path }),
            })),
            Err(error) => {
                // A damaged file is no snapshot: openraft builds a new one.
                tracing::warn!(path = %path.display(), %error, "ignoring a damaged snapshot file");
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }
}
