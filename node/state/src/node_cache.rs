//! Tree nodes in memory.
//!
//! Two parts:
//! * the **live** nodes — those the latest root reaches — in plain hash
//!   maps, sixteen shards by the first nibble of the path (the root in the
//!   first), up to a bound. An update takes each node it replaces out
//!   ([`NodeCache::take`]) and the commit puts the new ones in, so the maps
//!   hold the live tree and nothing else, with no recency list to keep:
//!   a lookup is one probe with the key stored inline, and the threads of a
//!   tree update, which split the root's subtrees between them, lock
//!   different shards;
//! * an **LRU** of other nodes read from disk: nodes of past versions
//!   (proofs, reads), and live nodes not yet cached (after a restart, or
//!   past the bound) until an update takes them.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

/// A hash map with a fast hasher (node keys are not attacker-chosen: paths
/// are prefixes of BLAKE3 hashes).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

use crate::tree::{NewNode, Node, NodeKey};

/// Shards of the live nodes: one per first nibble of a path.
const SHARDS: usize = 16;

/// Nodes read from disk kept per live node allowed: one in sixteen.
const READ_SHARE: usize = 16;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

pub(crate) struct NodeCache {
    live: [Mutex<HashMap<NodeKey, Arc<Node>>>; SHARDS],
    live_len: AtomicUsize,
    live_max: usize,
    read: Mutex<LruCache<NodeKey, Arc<Node>>>,
}

impl NodeCache {
    /// Up to `live_max` live nodes (at least 1), and a sixteenth as many
    /// others read from disk (at least 1).
    pub(crate) fn new(live_max: usize) -> NodeCache {
        let live_max = live_max.max(1);
        let read = NonZeroUsize::new((live_max / READ_SHARE).max(1)).expect("at least 1");
        NodeCache {
            live: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            live_len: AtomicUsize::new(0),
            live_max,
            read: Mutex::new(LruCache::new(read)),
        }
    }

    fn shard(&self, key: &NodeKey) -> MutexGuard<'_, HashMap<NodeKey, Arc<Node>>> {
        lock(&self.live[key.first_nibble().unwrap_or(0) as usize])
    }

    /// The node at `key`, if cached.
    pub(crate) fn get(&self, key: &NodeKey) -> Option<Arc<Node>> {
        if let Some(node) = self.shard(key).get(key) {
            return Some(node.clone());
        }
        lock(&self.read).get(key).cloned()
    }

    /// Keeps a node read from disk.
    pub(crate) fn insert_read(&self, key: NodeKey, node: Arc<Node>) {
        lock(&self.read).put(key, node);
    }

    /// Takes the node at `key` out, if cached: an update replaces it.
    pub(crate) fn take(&self, key: &NodeKey) -> Option<Arc<Node>> {
        if let Some(node) = self.shard(key).remove(key) {
            self.live_len.fetch_sub(1, Ordering::Relaxed);
            return Some(node);
        }
        lock(&self.read).pop(key)
    }

    /// After a commit: drops the `stale` nodes (a read may have loaded one
    /// since the update took it) and keeps the new live ones, while the
    /// bound allows.
    pub(crate) fn commit(&self, stale: &[NodeKey], new: Vec<NewNode>) {
        {
            let mut read = lock(&self.read);
            for key in stale {
                read.pop(key);
            }
        }
        let mut shards: [Vec<NewNode>; SHARDS] = std::array::from_fn(|_| Vec::new());
        for node in new {
            shards[node.key.first_nibble().unwrap_or(0) as usize].push(node);
        }
        for (shard, nodes) in self.live.iter().zip(shards) {
            if nodes.is_empty() {
                continue;
            }
            let mut shard = lock(shard);
            for new in nodes {
                let room = self.live_len.load(Ordering::Relaxed) < self.live_max;
                if room && shard.insert(new.key, new.node).is_none() {
                    self.live_len.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Forgets everything (after a failed commit, whose new nodes and
    /// in-place changes must not outlive it).
    pub(crate) fn clear(&self) {
        for shard in &self.live {
            let mut shard = lock(shard);
            self.live_len.fetch_sub(shard.len(), Ordering::Relaxed);
            shard.clear();
        }
        lock(&self.read).clear();
    }

    /// Live nodes held, and others.
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (
            self.live_len.load(Ordering::Relaxed),
            lock(&self.read).len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_node(version: u64, path: &[u8]) -> NewNode {
        NewNode {
            key: NodeKey::new(version, path),
            node: Arc::new(Node::default()),
            bytes: Vec::new(),
        }
    }

    #[test]
    fn live_nodes_stay_within_the_bound_and_leave_when_taken() {
        let cache = NodeCache::new(3);
        cache.commit(
            &[],
            vec![
                new_node(1, &[]),
                new_node(1, &[0]),
                new_node(1, &[5, 1]),
                new_node(1, &[9]),
            ],
        );
        assert_eq!(cache.len(), (3, 0), "the fourth is past the bound");
        assert!(cache.get(&NodeKey::new(1, &[5, 1])).is_some());
        assert!(cache.get(&NodeKey::new(1, &[9])).is_none());
        assert!(cache.take(&NodeKey::new(1, &[0])).is_some());
        assert!(cache.take(&NodeKey::new(1, &[0])).is_none());
        assert_eq!(cache.len(), (2, 0));
        // Nodes read from disk go to the LRU, which stale keys leave.
        cache.insert_read(NodeKey::new(1, &[9]), Arc::new(Node::default()));
        assert!(cache.get(&NodeKey::new(1, &[9])).is_some());
        cache.commit(&[NodeKey::new(1, &[9])], vec![new_node(2, &[0])]);
        assert!(cache.get(&NodeKey::new(1, &[9])).is_none());
        assert_eq!(cache.len(), (3, 0));
        cache.clear();
        assert_eq!(cache.len(), (0, 0));
        assert!(cache.get(&NodeKey::new(1, &[])).is_none());
    }
}
