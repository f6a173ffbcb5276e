//! An in-memory network between in-process nodes, with faults a test
//! controls: links cut (partitions, isolation), nodes down, and on every
//! message a seeded chance of being dropped (the request or its answer),
//! duplicated, or delayed (which reorders messages in flight).
//!
//! Every request and answer goes through the same borsh encoding as on TCP,
//! so the wire format is exercised too. For tests and simulations; a real
//! cluster uses [`super::tcp`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use borsh::BorshDeserialize;

use super::network::{PeerHandler, Transport, TransportError};
use super::types::NodeId;
use super::wire::{PeerRequest, PeerResponse};
use crate::BoxFuture;

/// What goes wrong with each message (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Chance in 1,000 that a message is lost (its request or its answer).
    pub drop_per_mille: u32,
    /// Chance in 1,000 that a request is delivered twice.
    pub duplicate_per_mille: u32,
    /// Each message waits a random time up to this long.
    pub delay_max: Duration,
}

#[derive(Default)]
struct State {
    handlers: HashMap<NodeId, Arc<dyn PeerHandler>>,
    /// Directed links that carry nothing.
    cut: HashSet<(NodeId, NodeId)>,
    faults: Faults,
    rng: u64,
    delivered: u64,
    dropped: u64,
}

impl State {
    /// splitmix64: a seeded sequence for the faults' draws.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.next() % 1000 < u64::from(per_mille)
    }

    fn delay(&mut self) -> Duration {
        let max = self.faults.delay_max.as_micros() as u64;
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.next() % (max + 1))
    }
}

/// The network: register each node's handler, take a transport per node.
#[derive(Clone)]
pub struct MemoryNetwork {
    state: Arc<Mutex<State>>,
}

impl MemoryNetwork {
    /// A network with no faults; `seed` drives the faults' draws.
    pub fn new(seed: u64) -> Self {
        MemoryNetwork {
            state: Arc::new(Mutex::new(State {
                rng: seed,
                ..State::default()
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The transport node `from` sends with.
    pub fn transport(&self, from: NodeId) -> Arc<dyn Transport> {
        Arc::new(MemoryTransport {
            from,
            network: self.clone(),
        })
    }

    /// Node `id` answers with `handler` (it is up).
    pub fn register(&self, id: NodeId, handler: Arc<dyn PeerHandler>) {
        self.state().handlers.insert(id, handler);
    }

    /// Node `id` is down: nothing reaches it.
    pub fn unregister(&self, id: NodeId) {
        self.state().handlers.remove(&id);
    }

    /// Sets the faults of every message from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// Cuts every link between nodes of different groups (both ways).
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut state = self.state();
        for (a, first) in groups.iter().enumerate() {
            for (b, second) in groups.iter().enumerate() {
                if a == b {
                    continue;
                }
                for from in first.iter() {
                    for to in second.iter() {
                        state.cut.insert((*from, *to));
                    }
                }
            }
        }
    }

    /// Cuts node `id` off from `others` (both ways).
    pub fn isolate(&self, id: NodeId, others: &[NodeId]) {
        let mut state = self.state();
        for other in others {
            state.cut.insert((id, *other));
            state.cut.insert((*other, id));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state().cut.clear();
    }

    /// Messages delivered and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state();
        (state.delivered, state.dropped)
    }
}

struct MemoryTransport {
    from: NodeId,
    network: MemoryNetwork,
}

/// What happens to one message, drawn under the lock.
struct Fate {
    handler: Arc<dyn PeerHandler>,
    delay: Duration,
    drop_request: bool,
    drop_answer: bool,
    duplicate: bool,
}

impl MemoryTransport {
    fn fate(&self, target: NodeId) -> Result<Fate, TransportError> {
        let mut state = self.network.state();
        let unreachable = |reason: &str| TransportError::Unreachable {
            target,
            reason: reason.into(),
        };
        if state.cut.contains(&(self.from, target)) {
            return Err(unreachable("the link is cut"));
        }
        let handler = state
            .handlers
            .get(&target)
            .cloned()
            .ok_or_else(|| unreachable("the node is down"))?;
        let faults = state.faults;
        let lost = state.chance(faults.drop_per_mille);
        let answer_lost = lost && state.next() % 2 == 0;
        let duplicate = state.chance(faults.duplicate_per_mille);
        let delay = state.delay();
        if lost {
            state.dropped += 1;
        } else {
            state.delivered += 1;
        }
        Ok(Fate {
            handler,
            delay,
            drop_request: lost && !answer_lost,
            drop_answer: answer_lost,
            duplicate,
        })
    }
}

fn copy<T: borsh::BorshSerialize + BorshDeserialize>(value: &T) -> T {
    let bytes = borsh::to_vec(value).expect("writing to a Vec cannot fail");
    T::try_from_slice(&bytes).expect("what was just encoded decodes")
}

impl Transport for MemoryTransport {
    fn call(
        &self,
        target: NodeId,
        _addr: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<PeerResponse, TransportError>> {
        Box::pin(async move {
            let fate = self.fate(target)?;
            let lost = TransportError::Timeout { target, timeout };
            tokio::time::sleep(fate.delay.min(timeout)).await;
            if fate.drop_request {
                return Err(lost);
            }
            let delivered = copy(&request);
            if fate.duplicate {
                let handler = fate.handler.clone();
                let again = copy(&request);
                let from = self.from;
                tokio::spawn(async move {
                    let _ = handler.handle(from, again).await;
                });
            }
            let answer = tokio::time::timeout(timeout, fate.handler.handle(self.from, delivered))
                .await
                .map_err(|_| lost.clone())?;
            // A link cut while the request was served loses the answer.
            let cut = self.network.state().cut.contains(&(target, self.from));
            if fate.drop_answer || cut {
                return Err(lost);
            }
            Ok(copy(&answer))
        })
    }
}
