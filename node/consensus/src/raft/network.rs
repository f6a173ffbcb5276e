//! openraft's network over a [`Transport`]: each Raft RPC becomes one
//! [`PeerRequest`] and its [`PeerResponse`]; a snapshot goes as a sequence
//! of chunks. The transport is TCP between processes ([`super::tcp`]) or an
//! in-memory network with faults in tests ([`super::memory`]).

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::Snapshot;

use super::types::{NodeId, NodeInfo, TypeConfig, Vote};
use super::wire::{
    PeerRequest, PeerResponse, WireAppendResponse, WireEntry, WireVote, log_id, wire_log_id,
};
use crate::BoxFuture;

/// Bytes of snapshot data per chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Why a request to a peer failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (connection refused or cut, handshake
    /// failed): back off before trying again.
    #[error("peer {target} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        target: NodeId,
        /// Why.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("peer {target} did not answer within {timeout:?}")]
    Timeout {
        /// The peer.
        target: NodeId,
        /// The deadline.
        timeout: Duration,
    },
    /// The request encodes to more bytes than a frame may hold.
    #[error("the request is {bytes} bytes, over the frame limit of {limit}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// Carries requests to peers.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` to `target` at `addr` and waits (at most `timeout`)
    /// for its answer.
    fn call(
        &self,
        target: NodeId,
        addr: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<PeerResponse, TransportError>>;
}

/// Serves requests from peers (the engine, on the receiving side).
pub trait PeerHandler: Send + Sync + 'static {
    /// Answers `request` from the authenticated peer `from`.
    fn handle(&self, from: NodeId, request: PeerRequest) -> BoxFuture<'_, PeerResponse>;
}

/// Creates openraft's per-target clients over a transport.
#[derive(Clone)]
pub struct NetworkFactory {
    transport: Arc<dyn Transport>,
}

impl NetworkFactory {
    /// Clients over `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        NetworkFactory { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Network {
        Network {
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// openraft's client for one target.
pub struct Network {
    target: NodeId,
    addr: String,
    transport: Arc<dyn Transport>,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>;

fn rpc_error<E: std::error::Error>(error: TransportError, entries: usize) -> RpcError<E> {
    match error {
        TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&error)),
        TransportError::TooLarge { .. } => RPCError::PayloadTooLarge(
            PayloadTooLarge::new_entries_hint((entries as u64 / 2).max(1)),
        ),
        TransportError::Timeout { .. } => RPCError::Network(NetworkError::new(&error)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerFailure(String);

fn unexpected<E: std::error::Error>(response: PeerResponse) -> RpcError<E> {
    let reason = match response {
        PeerResponse::Refused(reason) => reason,
        other => format!("unexpected answer {other:?}"),
    };
    RPCError::Network(NetworkError::new(&PeerFailure(reason)))
}

impl Network {
    async fn call(
        &self,
        request: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, TransportError> {
        self.transport
            .call(self.target, &self.addr, request, option.hard_ttl())
            .await
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let entries = rpc.entries.len();
        let request = PeerRequest::AppendEntries {
            vote: (&rpc.vote).into(),
            prev_log_id: wire_log_id(&rpc.prev_log_id),
            entries: rpc.entries.into_iter().map(WireEntry::from).collect(),
            leader_commit: wire_log_id(&rpc.leader_commit),
        };
        match self
            .call(request, &option)
            .await
            .map_err(|error| rpc_error(error, entries))?
        {
            PeerResponse::AppendEntries(response) => Ok(match response {
                WireAppendResponse::Success => AppendEntriesResponse::Success,
                WireAppendResponse::PartialSuccess(upto) => {
                    AppendEntriesResponse::PartialSuccess(log_id(upto))
                }
                WireAppendResponse::Conflict => AppendEntriesResponse::Conflict,
                WireAppendResponse::HigherVote(vote) => {
                    AppendEntriesResponse::HigherVote(vote.into())
                }
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<openraft::error::InstallSnapshotError>>
    {
        // With whole-file snapshots openraft sends them through
        // `full_snapshot`; the chunked form of this method is unused.
        Err(RPCError::Network(NetworkError::new(&PeerFailure(
            "chunked snapshots are sent through full_snapshot".into(),
        ))))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let request = PeerRequest::Vote {
            vote: (&rpc.vote).into(),
            last_log_id: wire_log_id(&rpc.last_log_id),
        };
        match self
            .call(request, &option)
            .await
            .map_err(|error| rpc_error(error, 0))?
        {
            PeerResponse::Vote {
                vote,
                vote_granted,
                last_log_id,
            } => Ok(VoteResponse {
                vote: vote.into(),
                vote_granted,
                last_log_id: log_id(last_log_id),
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let unreachable =
            |reason: String| StreamingError::Unreachable(Unreachable::new(&PeerFailure(reason)));
        let network =
            |reason: String| StreamingError::Network(NetworkError::new(&PeerFailure(reason)));
        let path = snapshot.snapshot.path.clone();
        let mut file = std::fs::File::open(&path)
            .map_err(|error| network(format!("{}: {error}", path.display())))?;
        let wire_vote = WireVote::from(&vote);
        let snapshot_id = snapshot.meta.snapshot_id.clone();
        let mut cancel = std::pin::pin!(cancel);
        let mut offset = 0u64;
        let mut buffer = vec![0; SNAPSHOT_CHUNK_BYTES];
        loop {
            // Fill a chunk (the file is local; reads are short).
            let mut filled = 0;
            while filled < buffer.len() {
                let read = file
                    .read(&mut buffer[filled..])
                    .map_err(|error| network(format!("reading the snapshot: {error}")))?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            let done = filled < buffer.len();
            let request = PeerRequest::SnapshotChunk {
                vote: wire_vote,
                snapshot_id: snapshot_id.clone(),
                offset,
                data: buffer[..filled].to_vec(),
                done,
            };
            let answer = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                answer = self.call(request, &option) => answer,
            };
            match answer {
                Ok(PeerResponse::Snapshot(None)) if !done => {}
                Ok(PeerResponse::Snapshot(Some(remote))) if done => {
                    return Ok(SnapshotResponse::new(remote.into()));
                }
                Ok(other) => return Err(network(format!("snapshot transfer: {other:?}"))),
                Err(error @ TransportError::Unreachable { .. }) => {
                    return Err(unreachable(error.to_string()));
                }
                Err(error) => return Err(network(error.to_string())),
            }
            offset += filled as u64;
        }
    }
}
