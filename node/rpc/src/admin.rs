//! The operator's API: cluster membership. Served on its own port (bound
//! to 127.0.0.1 by default), never on the public RPC port, and every call
//! must carry the node's admin token (a random secret in
//! `<data dir>/admin.token`, readable by the operator only).

use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::core::{RpcResult, async_trait};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::server::{Server, ServerConfig};
use jsonrpsee::types::ErrorObjectOwned;
use serde::{Deserialize, Serialize};
use stele_consensus::{ClusterAdmin, MembershipChange, Ordering};

use crate::server::RpcServer;
use crate::types::ConsensusStatus;

/// Error codes of the admin API.
pub mod codes {
    /// The token is missing or wrong.
    pub const UNAUTHORIZED: i32 = -32040;
    /// The change was refused (not listed, not a learner, no leader…).
    pub const REFUSED: i32 = -32041;
}

/// Shortest admin token accepted, in bytes.
pub const ADMIN_TOKEN_BYTES_MIN: usize = 32;

/// A membership change, as the CLI sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AdminChange {
    /// Adds a learner that replicates without voting.
    Add {
        /// Its id (listed in genesis).
        node_id: u64,
        /// Its peer address.
        addr: String,
    },
    /// Makes a learner a voting member.
    Promote {
        /// Its id.
        node_id: u64,
    },
    /// Removes a member or learner.
    Remove {
        /// Its id.
        node_id: u64,
    },
}

/// Operator-only methods.
#[rpc(server, client)]
pub trait AdminApi {
    /// Changes the cluster's membership (forwarded to the leader); answers
    /// with this node's view afterwards.
    #[method(name = "admin_changeMembership")]
    async fn admin_change_membership(
        &self,
        token: String,
        change: AdminChange,
    ) -> RpcResult<ConsensusStatus>;

    /// This node's view of the cluster (as `consensus_status`).
    #[method(name = "admin_status")]
    async fn admin_status(&self, token: String) -> RpcResult<ConsensusStatus>;
}

struct Admin {
    token: String,
    ordering: Arc<dyn Ordering>,
    cluster: Arc<dyn ClusterAdmin>,
}

/// Compares without stopping at the first difference.
fn same(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

impl Admin {
    fn authorize(&self, token: &str) -> RpcResult<()> {
        if same(token.as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(ErrorObjectOwned::owned(
                codes::UNAUTHORIZED,
                "the admin token is wrong (it is in the node's data directory, admin.token)",
                None::<()>,
            ))
        }
    }
}

#[async_trait]
impl AdminApiServer for Admin {
    async fn admin_change_membership(
        &self,
        token: String,
        change: AdminChange,
    ) -> RpcResult<ConsensusStatus> {
        self.authorize(&token)?;
        let change = match change {
            AdminChange::Add { node_id, addr } => MembershipChange::AddLearner { node_id, addr },
            AdminChange::Promote { node_id } => MembershipChange::Promote { node_id },
            AdminChange::Remove { node_id } => MembershipChange::Remove { node_id },
        };
        self.cluster
            .change_membership(change)
            .await
            .map_err(|message| ErrorObjectOwned::owned(codes::REFUSED, message, None::<()>))?;
        Ok(self.ordering.status().into())
    }

    async fn admin_status(&self, token: String) -> RpcResult<ConsensusStatus> {
        self.authorize(&token)?;
        Ok(self.ordering.status().into())
    }
}

/// Starts the admin server on `addr` with `token`.
pub async fn start_admin(
    ordering: Arc<dyn Ordering>,
    cluster: Arc<dyn ClusterAdmin>,
    token: String,
    addr: SocketAddr,
) -> std::io::Result<RpcServer> {
    if token.len() < ADMIN_TOKEN_BYTES_MIN {
        return Err(std::io::Error::other(format!(
            "the admin token is {} bytes, at least ADMIN_TOKEN_BYTES_MIN = {ADMIN_TOKEN_BYTES_MIN}",
            token.len()
        )));
    }
    let server = Server::builder()
        .set_config(
            ServerConfig::builder()
                .max_request_body_size(64 * 1024)
                .max_connections(16)
                .http_only()
                .build(),
        )
        .build(addr)
        .await?;
    let addr = server.local_addr()?;
    let module = Admin {
        token,
        ordering,
        cluster,
    }
    .into_rpc();
    let handle = server.start(module);
    Ok(RpcServer { handle, addr })
}
