//! The commit log: each commit's write batch, appended and synced beside
//! RocksDB's memtable insert of the same batch.
//!
//! RocksDB's own write-ahead log makes a commit wait for the log's sync and
//! then insert into the memtables, one after the other. The store writes
//! its commits with RocksDB's log off instead, and makes them durable here,
//! at the same time as the insert: a commit takes the longer of the two, not
//! their sum. RocksDB flushes every column family's memtables together
//! (`atomic_flush`), so what it holds after a crash is every commit up to
//! some version, complete; the open replays the records above it.
//!
//! The log is a directory of segments, each named by the version of its
//! first record (`{version:020}.log`). A record is
//! `version (8 bytes, big-endian) ‖ length (4) ‖ checksum (16) ‖ batch`,
//! the checksum the first 16 bytes of BLAKE3 over version, length and
//! batch. A segment is closed after [`SEGMENT_BYTES`] (by default); a
//! closed segment goes
//! once RocksDB has flushed every version in it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::db::StateError;

/// Bytes after which a segment is closed and the next commit starts
/// another, by default.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Bytes of a record's header.
const HEADER_BYTES: usize = 8 + 4 + 16;

/// The largest batch a record holds: a longer length field is corrupt.
pub const RECORD_BYTES_MAX: usize = u32::MAX as usize;

/// The checksum of a record.
fn checksum(version: u64, batch: &[u8]) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&version.to_be_bytes());
    hasher.update(&(batch.len() as u32).to_be_bytes());
    hasher.update(batch);
    let hash = hasher.finalize();
    hash.as_bytes()[..16].try_into().expect("16 bytes")
}

/// The segment file of the record of `first`.
fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// An I/O error on `path`, as a [`StateError`].
fn io_error(what: &str, path: &Path, error: std::io::Error) -> StateError {
    StateError::Log(format!("{what} {}: {error}", path.display()))
}

/// The commit log of one store (see the module's documentation).
#[derive(Debug)]
pub struct CommitLog {
    dir: PathBuf,
    sync: bool,
    segment_bytes: u64,
    /// First versions of the segments, ascending; the last one is the open
    /// one, if `file` is.
    segments: Vec<u64>,
    /// The last segment, open for appends, and its length.
    file: Option<(File, u64)>,
    /// The version of the last record.
    last: Option<u64>,
    /// Header and batch of the record being appended (kept, so that its
    /// memory is reused from commit to commit).
    buffer: Vec<u8>,
    /// An append failed part-way: the segment may end in a torn record,
    /// which only an open cuts off.
    failed: bool,
    /// The closed segments there were when [`CommitLog::wants_flush`] last
    /// said yes (0 once some went since).
    flush_asked_at: usize,
}

impl CommitLog {
    /// Opens the log in `dir` (creating it), its segments closed after
    /// `segment_bytes`, its appends synced if `sync`, handing `replay` every record
    /// above `flushed` (the latest version RocksDB holds), in order. A
    /// record cut short or failing its checksum at the end of the last
    /// segment is a commit that was never acknowledged: it is cut off. One
    /// anywhere else, or versions out of order, is corruption.
    pub fn open(
        dir: &Path,
        sync: bool,
        segment_bytes: u64,
        flushed: Option<u64>,
        mut replay: impl FnMut(u64, &[u8]) -> Result<(), StateError>,
    ) -> Result<CommitLog, StateError> {
        std::fs::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))?;
        let mut segments = Vec::new();
        let listing = std::fs::read_dir(dir).map_err(|error| io_error("listing", dir, error))?;
        for entry in listing {
            let entry = entry.map_err(|error| io_error("listing", dir, error))?;
            let name = entry.file_name();
            let first = name
                .to_str()
                .and_then(|name| name.strip_suffix(".log"))
                .filter(|stem| stem.len() == 20)
                .and_then(|stem| stem.parse::<u64>().ok());
            if let Some(first) = first {
                segments.push(first);
            }
        }
        segments.sort_unstable();
        let mut last: Option<u64> = None;
        let mut open_at = None;
        for (idx, &first) in segments.iter().enumerate() {
            let path = segment_path(dir, first);
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut file| file.read_to_end(&mut bytes))
                .map_err(|error| io_error("reading", &path, error))?;
            let is_last = idx + 1 == segments.len();
            let mut at = 0;
            while at < bytes.len() {
                let Some((version, batch)) = decode(&bytes[at..]) else {
                    if !is_last {
                        return Err(StateError::Corrupt(format!(
                            "commit log {}: a bad record at byte {at}, with later segments",
                            path.display()
                        )));
                    }
                    // A torn tail: the commit it held never returned.
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|error| io_error("opening", &path, error))?;
                    file.set_len(at as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(|error| io_error("cutting the torn tail of", &path, error))?;
                    bytes.truncate(at);
                    break;
                };
                if at == 0 && version != first {
                    return Err(StateError::Corrupt(format!(
                        "commit log {}: its first record is version {version}",
                        path.display()
                    )));
                }
                if last.is_some_and(|last| version <= last) {
                    return Err(StateError::Corrupt(format!(
                        "commit log {}: version {version} after {}",
                        path.display(),
                        last.unwrap_or_default()
                    )));
                }
                if flushed.is_none_or(|flushed| version > flushed) {
                    replay(version, batch)?;
                }
                last = Some(version);
                at += HEADER_BYTES + batch.len();
            }
            if is_last {
                open_at = Some(bytes.len() as u64);
            }
        }
        // An empty last segment (its first record torn) goes: the next
        // append starts one of the same name.
        if open_at == Some(0) {
            let first = segments.pop().expect("a last segment");
            let path = segment_path(dir, first);
            std::fs::remove_file(&path).map_err(|error| io_error("removing", &path, error))?;
            open_at = None;
        }
        let file = match (open_at, segments.last()) {
            (Some(len), Some(&first)) => {
                let path = segment_path(dir, first);
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|error| io_error("opening", &path, error))?;
                Some((file, len))
            }
            _ => None,
        };
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            sync,
            segment_bytes,
            segments,
            file,
            last,
            buffer: Vec::new(),
            failed: false,
            flush_asked_at: 0,
        })
    }

    /// Prepares the record of `version` holding `batch` (copied: the batch
    /// itself goes to RocksDB at the same time), for [`CommitLog::append`].
    pub fn prepare(&mut self, version: u64, batch: &[u8]) -> Result<(), StateError> {
        if batch.len() > RECORD_BYTES_MAX {
            return Err(StateError::Log(format!(
                "a commit of {} bytes; a record holds at most {RECORD_BYTES_MAX}",
                batch.len()
            )));
        }
        self.buffer.clear();
        self.buffer.extend_from_slice(&version.to_be_bytes());
        self.buffer
            .extend_from_slice(&(batch.len() as u32).to_be_bytes());
        self.buffer.extend_from_slice(&[0; 16]);
        self.buffer.extend_from_slice(batch);
        Ok(())
    }

    /// Appends the record [`CommitLog::prepare`] made for `version`, and
    /// syncs it unless the log was opened without syncs. After an error,
    /// every later append fails too: the store must be reopened.
    pub fn append(&mut self, version: u64) -> Result<(), StateError> {
        if self.failed {
            return Err(StateError::Log(
                "an earlier append failed; reopen the state database".into(),
            ));
        }
        if self.last.is_some_and(|last| version <= last) {
            return Err(StateError::Log(format!(
                "version {version} is not above the log's last, {:?}",
                self.last
            )));
        }
        self.failed = true;
        let sum = checksum(version, &self.buffer[HEADER_BYTES..]);
        self.buffer[12..HEADER_BYTES].copy_from_slice(&sum);
        if self
            .file
            .as_ref()
            .is_none_or(|(_, len)| *len >= self.segment_bytes)
        {
            self.start_segment(version)?;
        }
        let (file, len) = self.file.as_mut().expect("a segment is open");
        let path = segment_path(&self.dir, *self.segments.last().expect("a segment"));
        file.write_all(&self.buffer)
            .map_err(|error| io_error("appending to", &path, error))?;
        if self.sync {
            file.sync_data()
                .map_err(|error| io_error("syncing", &path, error))?;
        }
        *len += self.buffer.len() as u64;
        self.last = Some(version);
        self.failed = false;
        Ok(())
    }

    /// Starts the segment whose first record is `version`, its name made
    /// durable before any record in it is acknowledged.
    fn start_segment(&mut self, version: u64) -> Result<(), StateError> {
        let path = segment_path(&self.dir, version);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|error| io_error("creating", &path, error))?;
        if self.sync {
            File::open(&self.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| io_error("syncing", &self.dir, error))?;
        }
        self.segments.push(version);
        self.file = Some((file, 0));
        Ok(())
    }

    /// Closed segments waiting for RocksDB's flush.
    pub fn closed_segments(&self) -> usize {
        self.segments.len().saturating_sub(1)
    }

    /// Removes the closed segments whose every record is at or below
    /// `flushed` (which RocksDB has flushed).
    pub fn remove_flushed(&mut self, flushed: u64) -> Result<(), StateError> {
        // Segment `i` holds the versions below the first of segment `i + 1`.
        let done = self
            .segments
            .windows(2)
            .take_while(|pair| pair[1] <= flushed.saturating_add(1))
            .count();
        if done > 0 {
            self.flush_asked_at = 0;
        }
        for first in self.segments.drain(..done) {
            let path = segment_path(&self.dir, first);
            std::fs::remove_file(&path).map_err(|error| io_error("removing", &path, error))?;
        }
        Ok(())
    }

    /// Whether to ask RocksDB for a flush now: once each time the closed
    /// segments reach a multiple of `every` (so not at every commit while
    /// the flush runs).
    pub fn wants_flush(&mut self, every: usize) -> bool {
        let closed = self.closed_segments();
        let due = closed >= every && closed.is_multiple_of(every) && closed != self.flush_asked_at;
        if due {
            self.flush_asked_at = closed;
        }
        due
    }

    /// Bytes in the log's segments.
    pub fn bytes(&self) -> u64 {
        let closed: u64 = self.segments[..self.segments.len().saturating_sub(1)]
            .iter()
            .map(|&first| {
                std::fs::metadata(segment_path(&self.dir, first)).map_or(0, |meta| meta.len())
            })
            .sum();
        closed + self.file.as_ref().map_or(0, |(_, len)| *len)
    }
}

/// The record at the start of `bytes`: its version and batch, or `None` if
/// it is cut short or fails its checksum.
fn decode(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (header, rest) = bytes.split_first_chunk::<HEADER_BYTES>()?;
    let version = u64::from_be_bytes(header[..8].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    let batch = rest.get(..len)?;
    (header[12..] == checksum(version, batch)).then_some((version, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replayed(dir: &Path, flushed: Option<u64>) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
        let mut seen = Vec::new();
        CommitLog::open(dir, true, SEGMENT_BYTES, flushed, |version, batch| {
            seen.push((version, batch.to_vec()));
            Ok(())
        })?;
        Ok(seen)
    }

    fn append(log: &mut CommitLog, version: u64, batch: &[u8]) {
        log.prepare(version, batch).unwrap();
        log.append(version).unwrap();
    }

    #[test]
    fn records_replay_above_the_flushed_version_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut log =
            CommitLog::open(dir.path(), true, SEGMENT_BYTES, None, |_, _| unreachable!()).unwrap();
        for version in [1, 2, 5] {
            append(
                &mut log,
                version,
                &vec![version as u8; 100 * version as usize],
            );
        }
        // Not above the last.
        log.prepare(5, b"again").unwrap();
        assert!(log.append(5).is_err());
        drop(log);
        let all = replayed(dir.path(), None).unwrap();
        assert_eq!(
            all.iter().map(|(version, _)| *version).collect::<Vec<_>>(),
            [1, 2, 5]
        );
        assert_eq!(all[2].1, vec![5u8; 500]);
        assert_eq!(
            replayed(dir.path(), Some(2)).unwrap(),
            all[2..].to_vec(),
            "only what RocksDB lacks"
        );

        // Cut inside the last record: it goes, the rest stays, and appends
        // go on after it.
        let segment = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&segment).unwrap().len();
        let file = OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(len - 7).unwrap();
        drop(file);
        let mut log =
            CommitLog::open(dir.path(), true, SEGMENT_BYTES, None, |_, _| Ok(())).unwrap();
        append(&mut log, 6, b"six");
        drop(log);
        let versions: Vec<u64> = replayed(dir.path(), None)
            .unwrap()
            .into_iter()
            .map(|(version, _)| version)
            .collect();
        assert_eq!(versions, [1, 2, 6]);

        // A flipped byte in the last record fails its checksum: cut too.
        let len = std::fs::metadata(&segment).unwrap().len();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[len as usize - 1] ^= 1;
        std::fs::write(&segment, &bytes).unwrap();
        let versions: Vec<u64> = replayed(dir.path(), None)
            .unwrap()
            .into_iter()
            .map(|(version, _)| version)
            .collect();
        assert_eq!(versions, [1, 2]);
    }

    #[test]
    fn segments_roll_and_go_once_flushed_and_bad_records_before_the_end_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut log =
            CommitLog::open(dir.path(), false, 1000, None, |_, _| unreachable!()).unwrap();
        let big = vec![7u8; 500];
        for version in 1..=5 {
            append(&mut log, version, &big);
        }
        // Two records fill a segment: 1-2, 3-4, 5.
        assert_eq!(log.segments, [1, 3, 5]);
        assert_eq!(log.closed_segments(), 2);
        assert!(log.wants_flush(2));
        assert!(!log.wants_flush(2), "asked once");
        assert!(!log.wants_flush(3));
        log.remove_flushed(3).unwrap();
        assert_eq!(log.segments, [3, 5], "3 is not flushed with 4 in it");
        log.remove_flushed(4).unwrap();
        assert_eq!(log.segments, [5]);
        assert_eq!(log.closed_segments(), 0);
        log.remove_flushed(u64::MAX).unwrap();
        assert_eq!(log.segments, [5], "the open segment stays");
        append(&mut log, 6, b"six");
        append(&mut log, 7, b"seven");
        drop(log);
        assert!(!segment_path(dir.path(), 1).exists());

        // A bad record in a segment before the last is not a torn tail.
        std::fs::copy(segment_path(dir.path(), 5), segment_path(dir.path(), 8)).unwrap();
        let valid = std::fs::read(segment_path(dir.path(), 5)).unwrap();
        let mut bytes = valid.clone();
        bytes[HEADER_BYTES + 3] ^= 1;
        std::fs::write(segment_path(dir.path(), 5), &bytes).unwrap();
        let error = replayed(dir.path(), None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("a bad record at byte 0, with later segments"),
            "{error}"
        );
        // Nor is a segment whose name is not its first record's version.
        std::fs::write(segment_path(dir.path(), 5), &valid).unwrap();
        let error = replayed(dir.path(), None).unwrap_err();
        assert!(
            error.to_string().contains("its first record is version 5"),
            "{error}"
        );
    }
}
