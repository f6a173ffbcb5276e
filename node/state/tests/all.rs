//! The state store against a model: reads, history, proofs, pruning,
//! version rules, the block overlay, and recovery after SIGKILL.

#[path = "support/crash_blocks.rs"]
mod crash_blocks;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use crash_blocks::{Rng, block, model};
use stele_state::tree::{key_hash, root_of, value_hash};
use stele_state::{
    HISTORY_LOW_STEP, NODE_AGE_MAX, NODE_SWEEP_VERSIONS, Overlay, Proof, ProofError, Retention,
    StateConfig, StateDb, StateError, WriteSet,
};

fn config(dir: &tempfile::TempDir, retention: Retention) -> StateConfig {
    let mut config = StateConfig::new(dir.path().join("state"));
    config.retention = retention;
    config.sync_commits = false;
    config
}

fn writes(pairs: &[(&str, Option<&str>)]) -> WriteSet {
    pairs
        .iter()
        .map(|(key, value)| {
            (
                key.as_bytes().to_vec(),
                value.map(|value| value.as_bytes().to_vec()),
            )
        })
        .collect()
}

fn model_root(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> [u8; 32] {
    let entries: Vec<_> = state
        .iter()
        .map(|(key, value)| (key_hash(key), value_hash(value)))
        .collect();
    root_of(&entries)
}

#[test]
fn every_third_block_is_large_enough_to_update_on_threads() {
    for version in [3, 6, 30] {
        assert!(block(version).len() >= stele_state::tree::PARALLEL_UPDATES_MIN);
    }
    assert!(block(1).len() < stele_state::tree::PARALLEL_UPDATES_MIN);
}

#[test]
fn reads_history_and_roots_follow_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDb::open(config(&dir, Retention::Window(100))).unwrap();
    assert_eq!(state.latest_version(), None);
    let mut roots = Vec::new();
    for version in 1..=30 {
        let root = state.commit(version, &block(version)).unwrap();
        assert_eq!(root, model_root(&model(version)), "version {version}");
        roots.push(root);
    }
    let latest = model(30);
    assert_eq!(
        state.entries().unwrap(),
        latest.clone().into_iter().collect::<Vec<_>>()
    );
    assert!(state.verify_root().unwrap());
    for version in [1, 7, 29, 30] {
        let past = model(version);
        assert_eq!(state.root_at(version).unwrap(), roots[version as usize - 1]);
        for n in (0..crash_blocks::KEY_SPACE).step_by(37) {
            let key = format!("key-{n:05}").into_bytes();
            assert_eq!(
                state.get_at(&key, version).unwrap(),
                past.get(&key).cloned(),
                "{n} at {version}"
            );
        }
    }
    for (key, value) in latest.iter().take(50) {
        assert_eq!(state.get(key).unwrap().as_ref(), Some(value));
    }
}

#[test]
fn latest_reads_follow_every_commit_whatever_the_value_cache() {
    // Off, so small that entries are evicted all the time, and the default.
    for cache_bytes in [0, 4096, StateConfig::new("unused").value_cache_bytes] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir, Retention::Window(100));
        config.value_cache_bytes = cache_bytes;
        let state = StateDb::open(config).unwrap();
        for version in 1..=30 {
            state.commit(version, &block(version)).unwrap();
            let expected = model(version);
            // Read every key twice: the second read is the cached one.
            for _ in 0..2 {
                for n in (0..crash_blocks::KEY_SPACE).step_by(7) {
                    let key = format!("key-{n:05}").into_bytes();
                    assert_eq!(
                        state.get(&key).unwrap(),
                        expected.get(&key).cloned(),
                        "key {n} at version {version}, value cache of {cache_bytes} bytes"
                    );
                }
            }
        }
    }
}

#[test]
fn proofs_verify_for_present_absent_and_removed_keys_and_forgeries_fail() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDb::open(config(&dir, Retention::Window(100))).unwrap();
    for version in 1..=10 {
        state.commit(version, &block(version)).unwrap();
    }
    let mut largest = 0;
    for version in [3, 10] {
        let root = state.root_at(version).unwrap();
        let past = model(version);
        for n in 0..200 {
            let key = format!("key-{n:05}").into_bytes();
            let (value, proof) = state.prove(&key, version).unwrap();
            assert_eq!(value, past.get(&key).cloned());
            proof.verify(&root, &key, value.as_deref()).unwrap();
            let bytes = proof.to_bytes();
            largest = largest.max(bytes.len());
            assert_eq!(Proof::from_bytes(&bytes).unwrap(), proof);
            // Forgeries: the opposite claim, another value, another root.
            match &value {
                Some(value) => {
                    assert_eq!(
                        proof.verify(&root, &key, None),
                        Err(ProofError::WrongTerminal)
                    );
                    let mut other = value.clone();
                    other[0] ^= 1;
                    assert_eq!(
                        proof.verify(&root, &key, Some(&other)),
                        Err(ProofError::WrongTerminal)
                    );
                }
                None => assert_eq!(
                    proof.verify(&root, &key, Some(b"x")),
                    Err(ProofError::WrongTerminal)
                ),
            }
            let mut wrong_root = root;
            wrong_root[5] ^= 1;
            assert_eq!(
                proof.verify(&wrong_root, &key, value.as_deref()),
                Err(ProofError::RootMismatch)
            );
            if let Some(position) = proof
                .siblings
                .iter()
                .position(|hash| *hash != stele_state::EMPTY)
            {
                let mut forged = proof.clone();
                forged.siblings[position][0] ^= 1;
                assert_eq!(
                    forged.verify(&root, &key, value.as_deref()),
                    Err(ProofError::RootMismatch)
                );
            }
        }
    }
    assert!(largest < 1_500, "proofs stay small: {largest} bytes");
    // Keys never written are absent with a valid exclusion proof.
    let (value, proof) = state.prove(b"never written", 10).unwrap();
    assert_eq!(value, None);
    proof.verify(&state.root(), b"never written", None).unwrap();
    assert!(Proof::from_bytes(&[0xff, 0xff]).is_err());
}

#[test]
fn nodes_read_back_from_their_delta_chains_at_every_retained_version() {
    // A node cache of one entry: nearly every node is read from RocksDB,
    // assembled from its whole entry and the deltas over it, at the latest
    // version and at every retained one, while pruning runs.
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir, Retention::Window(12));
    config.node_cache_entries = 1;
    let state = StateDb::open(config.clone()).unwrap();
    let mut roots = BTreeMap::new();
    for version in 1..=40 {
        let root = state.commit(version, &block(version)).unwrap();
        assert_eq!(root, model_root(&model(version)), "version {version}");
        roots.insert(version, root);
    }
    assert_eq!(state.oldest_version(), 28);
    let keys: Vec<Vec<u8>> = (0..crash_blocks::KEY_SPACE)
        .step_by(13)
        .map(|n| format!("key-{n:05}").into_bytes())
        .collect();
    let check = |state: &StateDb,
                 roots: &BTreeMap<u64, [u8; 32]>,
                 versions: std::ops::RangeInclusive<u64>| {
        for version in versions.clone() {
            assert_eq!(state.root_at(version).unwrap(), roots[&version]);
        }
        assert_versions_read_back(state, versions, model, &keys);
    };
    check(&state, &roots, 28..=40);
    drop(state);
    // Reopened, with the default cache: the chains read the same, and new
    // versions build on nodes assembled from them.
    config.node_cache_entries = StateConfig::new("unused").node_cache_entries;
    let state = StateDb::open(config).unwrap();
    check(&state, &roots, 28..=40);
    for version in 41..=45 {
        let root = state.commit(version, &block(version)).unwrap();
        assert_eq!(root, model_root(&model(version)), "version {version}");
        roots.insert(version, root);
    }
    check(&state, &roots, 33..=45);
    assert!(state.verify_root().unwrap());
}

#[test]
fn versions_must_increase_and_old_ones_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDb::open(config(&dir, Retention::Window(5))).unwrap();
    assert!(matches!(
        state.get_at(b"k", 1),
        Err(StateError::VersionUnknown {
            version: 1,
            latest: None
        })
    ));
    for version in 1..=20 {
        state.commit(version, &block(version)).unwrap();
    }
    let error = state.commit(20, &WriteSet::new()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "version 20 does not follow the latest committed version 20"
    );
    assert_eq!(state.oldest_version(), 15);
    let error = state.get_at(b"key-00001", 14).unwrap_err();
    assert_eq!(
        error.to_string(),
        "version 14 is pruned; the oldest readable version is 15"
    );
    assert!(matches!(
        state.prove(b"key-00001", 21),
        Err(StateError::VersionUnknown { version: 21, .. })
    ));
    let past = model(15);
    for n in 0..crash_blocks::KEY_SPACE {
        let key = format!("key-{n:05}").into_bytes();
        assert_eq!(
            state.get_at(&key, 15).unwrap(),
            past.get(&key).cloned(),
            "retained history is intact"
        );
    }
    let (value, proof) = state.prove(b"key-00003", 15).unwrap();
    proof
        .verify(&state.root_at(15).unwrap(), b"key-00003", value.as_deref())
        .unwrap();
}

#[test]
fn the_database_stops_growing_under_steady_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let window = 10;
    let state = StateDb::open(config(&dir, Retention::Window(window))).unwrap();
    let overwrite = |version: u64| -> WriteSet {
        (0..500u32)
            .map(|n| {
                (
                    format!("k{n}").into_bytes(),
                    Some(format!("v{version}-{n}").into_bytes()),
                )
            })
            .collect()
    };
    let step = HISTORY_LOW_STEP;
    // Nodes go by age once a full sweep has passed and the oldest
    // retained version is past `NODE_AGE_MAX`.
    let settled = window + NODE_AGE_MAX + 2 * NODE_SWEEP_VERSIONS;
    let first = settled.div_ceil(step) * step;
    let last = first + 3 * step;
    let mut totals = Vec::new();
    let mut nodes_early = 0;
    for version in 1..=last {
        state.commit(version, &overwrite(version)).unwrap();
        if version == 2 * window {
            state.compact().unwrap();
            nodes_early = state.entry_counts().unwrap()["nodes"];
        }
        // Counted once RocksDB has dropped what pruning released, at the
        // same point of each step (see `HISTORY_LOW_STEP`).
        if version % step == 0 && version >= first {
            state.compact().unwrap();
            totals.push(state.entry_counts().unwrap());
        }
    }
    // Once settled, every commit lets go of as much as it adds.
    assert_eq!(totals.len(), 4);
    for pair in totals.windows(2) {
        assert_eq!(pair[0], pair[1], "{totals:?}");
    }
    let counts = state.entry_counts().unwrap();
    assert_eq!(state.entries().unwrap().len(), 500);
    // Versions from where the values' history was last cut (one step
    // below the oldest one), then the newest one below it, which reads at
    // the cut still need.
    let oldest = last - window;
    let cut = oldest - oldest % step;
    assert_eq!(counts["values"], 500 * (last - cut + 2), "{counts:?}");
    assert!(counts["values"] <= 500 * (window + step + 1));
    // Every version rewrites the whole (small) tree here, so the nodes of
    // `2 * window` versions were counted early on; those of the window and
    // `NODE_AGE_MAX` below it stay.
    assert_eq!(
        counts["nodes"] * (2 * window),
        nodes_early * (window + NODE_AGE_MAX),
        "{counts:?}, {nodes_early} nodes at version {}",
        2 * window
    );
    assert_eq!(counts["roots"], window + 1);
    // Archive mode keeps everything.
    let archive_dir = tempfile::tempdir().unwrap();
    let archive = StateDb::open(config(&archive_dir, Retention::Archive)).unwrap();
    for version in 1..=30 {
        archive.commit(version, &overwrite(version)).unwrap();
    }
    archive.compact().unwrap();
    let counts = archive.entry_counts().unwrap();
    assert_eq!(counts["values"], 500 * 30);
    assert_eq!(counts["roots"], 30);
    assert_eq!(
        archive.get_at(b"k7", 1).unwrap().as_deref(),
        Some(&b"v1-7"[..])
    );
}

#[test]
fn removed_keys_churn_without_leaking_history() {
    let dir = tempfile::tempdir().unwrap();
    let window = 3;
    let state = StateDb::open(config(&dir, Retention::Window(window))).unwrap();
    for version in 1..=200 {
        let value = (version % 2 == 1).then_some("present");
        state.commit(version, &writes(&[("churn", value)])).unwrap();
        assert_eq!(state.get(b"churn").unwrap().is_some(), version % 2 == 1);
    }
    state.compact().unwrap();
    // Values and removals alike: the window, what waits for the next cut,
    // and the newest one below the cut.
    let kept = state.entry_counts().unwrap()["values"];
    assert!(
        kept <= window + HISTORY_LOW_STEP + 1,
        "{kept} versions kept"
    );
    assert_eq!(
        state.get_at(b"churn", 199).unwrap().as_deref(),
        Some(&b"present"[..])
    );
    assert_eq!(state.get_at(b"churn", 198).unwrap(), None);
    assert_eq!(
        state.get_at(b"churn", 197).unwrap().as_deref(),
        Some(&b"present"[..])
    );
}

#[test]
fn the_overlay_reads_through_and_commits_as_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDb::open(config(&dir, Retention::Window(10))).unwrap();
    state
        .commit(
            1,
            &writes(&[
                ("a/1", Some("one")),
                ("a/2", Some("two")),
                ("b/1", Some("other")),
            ]),
        )
        .unwrap();
    let mut overlay = Overlay::new(&state);
    overlay.apply(writes(&[("a/2", None), ("a/3", Some("three"))]));
    assert_eq!(overlay.get(b"a/2").unwrap(), None);
    assert_eq!(overlay.get(b"b/1").unwrap().as_deref(), Some(&b"other"[..]));
    let mut seen = Vec::new();
    let mut start = b"a/".to_vec();
    while let Some((key, _)) = overlay.next(&start, b"a/").unwrap() {
        start = key.clone();
        start.push(0);
        seen.push(String::from_utf8(key).unwrap());
    }
    assert_eq!(seen, ["a/1", "a/3"]);
    let root = overlay.commit(2).unwrap();
    assert_eq!(state.root(), root);
    assert_eq!(state.get(b"a/3").unwrap().as_deref(), Some(&b"three"[..]));
    assert_eq!(
        state.get_at(b"a/2", 1).unwrap().as_deref(),
        Some(&b"two"[..])
    );
}

#[test]
fn reopening_recovers_the_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = {
        let state = StateDb::open(config(&dir, Retention::Window(10))).unwrap();
        for version in 1..=5 {
            state.commit(version, &block(version)).unwrap();
        }
        state.root()
    };
    let state = StateDb::open(config(&dir, Retention::Window(10))).unwrap();
    assert_eq!((state.latest_version(), state.root()), (Some(5), root));
    assert_eq!(state.root_at(3).unwrap(), model_root(&model(3)));
    state.commit(6, &block(6)).unwrap();
    assert_eq!(state.root(), model_root(&model(6)));
}

/// Commits are durable in the commit log until RocksDB flushes them; the
/// log then lets go of its closed segments, so it stays bounded, and what
/// it still holds replays at open.
#[test]
fn the_commit_log_lets_go_of_what_rocksdb_has_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir, Retention::Window(10));
    // Smaller than any block's batch: a segment a commit.
    config.log_segment_bytes = 4 * 1024;
    let segments = || {
        std::fs::read_dir(dir.path().join("state/commit-log"))
            .unwrap()
            .count()
    };
    let state = StateDb::open(config.clone()).unwrap();
    for version in 1..=3 {
        state.commit(version, &block(version)).unwrap();
    }
    // Nothing flushed yet (the memtables are far from full).
    assert_eq!(segments(), 3);
    let before = state.log_bytes();
    // `compact` flushes every column family; the next commit finds the
    // flushed version and removes the closed segments up to it.
    state.compact().unwrap();
    state.commit(4, &block(4)).unwrap();
    assert_eq!(segments(), 1, "only the open segment stays");
    assert!(state.log_bytes() < before, "{} bytes", state.log_bytes());
    // Without `compact`, enough closed segments make a commit ask for a
    // flush, and a later one removes them.
    let mut version = 4;
    let mut most = 1;
    while segments() >= most && version < 500 {
        version += 1;
        state.commit(version, &block(version)).unwrap();
        most = most.max(segments());
    }
    assert!(
        segments() < most,
        "{most} segments, never fewer, at {version}"
    );
    drop(state);
    let state = StateDb::open(config).unwrap();
    assert_eq!(
        (state.latest_version(), state.root()),
        (Some(version), model_root(&model(version)))
    );
}

/// Every key's value and proof at every version in `versions`, against
/// the model.
fn assert_versions_read_back(
    state: &StateDb,
    versions: impl IntoIterator<Item = u64>,
    model_at: impl Fn(u64) -> BTreeMap<Vec<u8>, Vec<u8>>,
    keys: &[Vec<u8>],
) {
    for version in versions {
        let past = model_at(version);
        let root = state.root_at(version).unwrap();
        assert_eq!(root, model_root(&past), "root at {version}");
        for key in keys {
            let (value, proof) = state.prove(key, version).unwrap();
            assert_eq!(value, past.get(key).cloned(), "{key:?} at {version}");
            proof.verify(&root, key, value.as_deref()).unwrap();
        }
    }
}

#[test]
fn nodes_no_write_reaches_for_long_survive_pruning_by_age() {
    // Most of the tree is written once and then left alone, while a few
    // keys change at every version: only the sweeps keep the untouched
    // nodes young. Pruning by age would drop them if a sweep missed one;
    // with a node cache of one entry, reads go to RocksDB after compaction
    // and would fail.
    let dir = tempfile::tempdir().unwrap();
    let window = 8;
    let mut config = config(&dir, Retention::Window(window));
    config.node_cache_entries = 1;
    let state = StateDb::open(config).unwrap();
    let keys: Vec<Vec<u8>> = (0..3_000u32)
        .map(|n| format!("cold-{n}").into_bytes())
        .collect();
    let load: WriteSet = keys
        .iter()
        .map(|key| (key.clone(), Some(key.repeat(2))))
        .collect();
    state.commit(1, &load).unwrap();
    let hot = |version: u64| -> WriteSet {
        (0..4u32)
            .map(|n| {
                let key = format!("hot-{n}").into_bytes();
                (key, Some(format!("{version}").into_bytes()))
            })
            .collect()
    };
    let last = 1 + window + NODE_AGE_MAX + 3 * NODE_SWEEP_VERSIONS;
    for version in 2..=last {
        state.commit(version, &hot(version)).unwrap();
    }
    let model_at = |version: u64| {
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = load
            .iter()
            .map(|(key, value)| (key.clone(), value.clone().unwrap()))
            .collect();
        for (key, value) in hot(version) {
            model.insert(key, value.unwrap());
        }
        model
    };
    let before = {
        state.compact().unwrap();
        state.entry_counts().unwrap()["nodes"]
    };
    let mut probe: Vec<Vec<u8>> = keys.iter().step_by(7).cloned().collect();
    probe.push(b"hot-1".to_vec());
    probe.push(b"never-written".to_vec());
    assert_versions_read_back(&state, last - window..=last, model_at, &probe);
    assert!(state.verify_root().unwrap());
    // The versions since the load wrote far more nodes than the tree has,
    // and pruning dropped all but the young ones.
    for version in last + 1..=last + NODE_AGE_MAX {
        state.commit(version, &hot(version)).unwrap();
    }
    state.compact().unwrap();
    let after = state.entry_counts().unwrap()["nodes"];
    assert!(after <= before + before / 4, "{before} then {after} nodes");
}

#[test]
fn a_jump_in_versions_rewrites_what_it_ages_and_pruning_keeps_the_rest() {
    // Versions are block heights and may skip: a jump of more than
    // `NODE_AGE_MAX` ages every node at once, so the commit after it
    // sweeps the whole tree.
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir, Retention::Window(4));
    config.node_cache_entries = 1;
    let state = StateDb::open(config).unwrap();
    for version in 1..=3 {
        state.commit(version, &block(version)).unwrap();
    }
    let jump = 3 + 2 * NODE_AGE_MAX + NODE_SWEEP_VERSIONS;
    state
        .commit(jump, &writes(&[("key-00001", Some("after"))]))
        .unwrap();
    // The window moves past the jump, but not so far that the slices of
    // the versions after it would have swept the whole tree by themselves.
    for version in jump + 1..=jump + 8 {
        state.commit(version, &WriteSet::new()).unwrap();
    }
    state.compact().unwrap();
    let latest = state.latest_version().unwrap();
    let mut model = model(3);
    model.insert(b"key-00001".to_vec(), b"after".to_vec());
    let keys: Vec<Vec<u8>> = (0..crash_blocks::KEY_SPACE)
        .step_by(11)
        .map(|n| format!("key-{n:05}").into_bytes())
        .collect();
    assert_versions_read_back(&state, latest - 4..=latest, |_| model.clone(), &keys);
    assert!(state.verify_root().unwrap());
}

#[test]
fn an_archive_reopened_with_a_window_prunes_only_once_its_nodes_are_young() {
    // An archive keeps nodes of any age. Reopened with a window, it may
    // drop old nodes by age only after a full sweep under the window.
    let dir = tempfile::tempdir().unwrap();
    let mut archive = config(&dir, Retention::Archive);
    archive.node_cache_entries = 1;
    let archived = 2 * NODE_AGE_MAX;
    {
        let state = StateDb::open(archive.clone()).unwrap();
        for version in 1..=archived {
            // Only the first versions touch most keys.
            let writes = if version <= 3 {
                block(version)
            } else {
                writes(&[("key-00002", Some("late"))])
            };
            state.commit(version, &writes).unwrap();
        }
    }
    let mut windowed = archive;
    windowed.retention = Retention::Window(4);
    let state = StateDb::open(windowed).unwrap();
    let keys: Vec<Vec<u8>> = (0..crash_blocks::KEY_SPACE)
        .step_by(11)
        .chain([2])
        .map(|n| format!("key-{n:05}").into_bytes())
        .collect();
    let model_at = |_| {
        let mut model = model(3);
        model.insert(b"key-00002".to_vec(), b"late".to_vec());
        model
    };
    for version in archived + 1..=archived + 2 * NODE_SWEEP_VERSIONS {
        state.commit(version, &WriteSet::new()).unwrap();
        if version % 16 == 0 {
            state.compact().unwrap();
            let latest = state.latest_version().unwrap();
            assert_versions_read_back(&state, [latest - 4, latest], model_at, &keys);
        }
    }
}

fn assert_format_refused(dir: &tempfile::TempDir, found: u32) {
    match StateDb::open(config(dir, Retention::Window(10))) {
        Err(error @ StateError::Format { .. }) => assert_eq!(
            error.to_string(),
            format!(
                "the state database is in format {found}, this build reads format {}; \
                 start from a new data directory",
                stele_state::STATE_FORMAT
            )
        ),
        other => panic!("expected a format error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_database_in_another_format_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = {
        let state = StateDb::open(config(&dir, Retention::Window(10))).unwrap();
        state.commit(1, &block(1)).unwrap()
    };
    let path = dir.path().join("state");
    // `values` opens only with a comparator of the same name (and
    // timestamp size): the name is part of the format.
    let values_options = || {
        let mut values = rocksdb::Options::default();
        values.set_comparator_with_ts(
            "stele.key-then-newest-version.v1",
            8,
            Box::new(|a: &[u8], b: &[u8]| {
                let (a, a_ts) = a.split_at(a.len() - 8);
                let (b, b_ts) = b.split_at(b.len() - 8);
                a.cmp(b).then_with(|| b_ts.cmp(a_ts))
            }),
            Box::new(|a: &[u8], b: &[u8]| a.cmp(b)),
            Box::new(|a: &[u8], a_ts: bool, b: &[u8], b_ts: bool| {
                a[..a.len() - 8 * a_ts as usize].cmp(&b[..b.len() - 8 * b_ts as usize])
            }),
        );
        values
    };
    let plain = rocksdb::Options::default;
    let open_raw = || {
        let cfs = [
            ("values", values_options()),
            ("nodes", plain()),
            ("roots", plain()),
            ("meta", plain()),
        ];
        rocksdb::DB::open_cf_with_opts(&plain(), &path, cfs).unwrap()
    };
    let set_format = |format: u32| {
        let db = open_raw();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"format", format.to_be_bytes()).unwrap();
    };
    // A database from a newer build is refused with both formats named.
    let newer = stele_state::STATE_FORMAT + 1;
    set_format(newer);
    assert_format_refused(&dir, newer);
    // Refusing wrote nothing: with the marker back, the data is all there.
    set_format(stele_state::STATE_FORMAT);
    let state = StateDb::open(config(&dir, Retention::Window(10))).unwrap();
    assert_eq!((state.latest_version(), state.root()), (Some(1), root));
    assert_eq!(
        state.get_at(b"key-00001", 1).unwrap(),
        model(1).get(&b"key-00001"[..]).cloned()
    );
    drop(state);

    // A database in format 5 or 6, whose entries format 7 reads as they
    // are, opens with its data and is marked format 7.
    assert_eq!(stele_state::STATE_FORMAT, 7);
    for older in [5, 6] {
        set_format(older);
        let state = StateDb::open(config(&dir, Retention::Window(10))).unwrap();
        assert_eq!((state.latest_version(), state.root()), (Some(1), root));
        drop(state);
        let db = open_raw();
        let marker = db.get_cf(db.cf_handle("meta").unwrap(), b"format").unwrap();
        assert_eq!(
            marker,
            Some(stele_state::STATE_FORMAT.to_be_bytes().to_vec())
        );
        drop(db);
    }

    // A database in the layout of format 4, which listed superseded nodes
    // in `stale`: refused, and left as it was.
    let four_dir = tempfile::tempdir().unwrap();
    let four_path = four_dir.path().join("state");
    let four_cfs = || {
        [
            ("values", values_options()),
            ("nodes", plain()),
            ("roots", plain()),
            ("stale", plain()),
            ("meta", plain()),
        ]
    };
    {
        let mut options = plain();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf_with_opts(&options, &four_path, four_cfs()).unwrap();
        let (stale, meta) = (
            db.cf_handle("stale").unwrap(),
            db.cf_handle("meta").unwrap(),
        );
        db.put_cf(stale, 7u64.to_be_bytes(), b"list").unwrap();
        db.put_cf(meta, b"format", 4u32.to_be_bytes()).unwrap();
    }
    assert_format_refused(&four_dir, 4);
    let db = rocksdb::DB::open_cf_with_opts(&plain(), &four_path, four_cfs()).unwrap();
    let stale = db.cf_handle("stale").unwrap();
    assert_eq!(
        db.get_cf(stale, 7u64.to_be_bytes()).unwrap().as_deref(),
        Some(&b"list"[..])
    );
    drop(db);

    // Databases in the layout of formats 1 to 3 (latest values apart from
    // their history): from before the marker (1), with every node stored
    // whole (2), with nodes as deltas (3). Each is refused, naming its
    // format, and left as it was.
    let old_dir = tempfile::tempdir().unwrap();
    let old_path = old_dir.path().join("state");
    let old_cfs = ["flat", "history", "nodes", "roots", "stale", "meta"];
    for (format, found) in [(None, 1), (Some(2u32), 2), (Some(3), 3)] {
        {
            let mut options = rocksdb::Options::default();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            let db = rocksdb::DB::open_cf(&options, &old_path, old_cfs).unwrap();
            let (flat, meta) = (db.cf_handle("flat").unwrap(), db.cf_handle("meta").unwrap());
            db.put_cf(flat, b"key", b"value").unwrap();
            match format {
                Some(format) => db.put_cf(meta, b"format", format.to_be_bytes()).unwrap(),
                None => db.delete_cf(meta, b"format").unwrap(),
            }
        }
        assert_format_refused(&old_dir, found);
        let mut names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &old_path).unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "default", "flat", "history", "meta", "nodes", "roots", "stale"
            ]
        );
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &old_path, old_cfs).unwrap();
        let flat = db.cf_handle("flat").unwrap();
        assert_eq!(
            db.get_cf(flat, b"key").unwrap().as_deref(),
            Some(&b"value"[..])
        );
    }
}

/// Hostile item 22: SIGKILL at random points while committing. Every
/// restart recovers exactly the last committed version, with the same
/// root and contents. `STELE_CRASH_ITERATIONS` raises the count (see
/// `scripts/state-crash-soak.sh`).
#[test]
fn sigkill_during_commits_recovers_the_last_committed_version() {
    let iterations: u64 = std::env::var("STELE_CRASH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut rng = Rng(0x5eed);
    let mut expected = BTreeMap::new();
    let mut expected_version = 0;
    for iteration in 0..iterations {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stele-state-crash"))
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the child starts");
        // The reader stays open until the child is dead, so the child never
        // sees a broken pipe: it stops only by SIGKILL.
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let acks = 1 + (rng.next() % 3) as usize;
        let mut record = |line: std::io::Result<String>| {
            let line = line.expect("a line");
            let (version, root) = line.split_once(' ').expect("version and root");
            let version: u64 = version.parse().expect("a version");
            if let Some(previous) = acknowledged.insert(version, root.to_string()) {
                assert_eq!(
                    previous, root,
                    "version {version} committed twice with different roots"
                );
            }
        };
        for line in stdout.by_ref().lines().take(acks) {
            record(line);
        }
        // Land the kill somewhere inside the next commits.
        std::thread::sleep(std::time::Duration::from_micros(rng.next() % 4_000));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "killed by SIGKILL"
        );
        // Lines printed before the kill are acknowledged commits too.
        for line in stdout.lines() {
            record(line);
        }
        // Every fifth restart also finds a torn record after the commit
        // log's last one (its header cut short): cut off, nothing lost.
        if iteration % 5 == 0 {
            let log = path.join("commit-log");
            let newest = std::fs::read_dir(&log)
                .expect("the commit log")
                .map(|entry| entry.expect("an entry").path())
                .max()
                .expect("a segment");
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&newest)
                .expect("the newest segment");
            std::io::Write::write_all(&mut file, &rng.next().to_be_bytes()[..5])
                .expect("garbage appended");
        }

        let mut config = StateConfig::new(&path);
        config.retention = Retention::Window(20);
        let state = StateDb::open(config).expect("the store reopens after SIGKILL");
        let latest = state.latest_version().expect("something was committed");
        let last_acknowledged = *acknowledged.keys().last().expect("acknowledged commits");
        assert!(
            latest == last_acknowledged || latest == last_acknowledged + 1,
            "iteration {iteration}: recovered {latest}, last acknowledged {last_acknowledged} \
             (at most one commit can be durable but not yet acknowledged)"
        );
        let root: String = state
            .root()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        if let Some(acknowledged_root) = acknowledged.get(&latest) {
            assert_eq!(
                &root, acknowledged_root,
                "iteration {iteration}: root of {latest}"
            );
        }
        acknowledged.insert(latest, root);
        while expected_version < latest {
            expected_version += 1;
            for (key, value) in block(expected_version) {
                match value {
                    Some(value) => expected.insert(key, value),
                    None => expected.remove(&key),
                };
            }
        }
        assert_eq!(
            state.entries().unwrap(),
            expected.clone().into_iter().collect::<Vec<_>>(),
            "iteration {iteration}"
        );
        assert!(
            state.verify_root().unwrap(),
            "iteration {iteration}: tree and flat store agree"
        );
    }
}
