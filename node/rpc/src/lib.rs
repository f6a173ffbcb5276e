//! The JSON-RPC API of a Stele node: a jsonrpsee server, HTTP and WebSocket
//! on one port, `namespace_camelCase` methods and subscriptions, an OpenRPC
//! document at `rpc.discover`, `GET /metrics`, limits on body size, batch
//! length, connections and subscriptions, stable error codes, and a typed
//! client (`SteleApiClient`, generated from the same trait).

#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod metrics;
pub mod openrpc;
pub mod server;
pub mod types;
pub mod values;

pub use admin::{AdminApiClient, AdminChange, start_admin};
pub use api::{SteleApiClient, SteleApiServer};
pub use server::{Rpc, RpcConfig, RpcServer, start};

/// Stable error codes. Transaction refusals use [`stele_chain::codes`]
/// (-32001 to -32013); these are the API's own.
pub mod codes {
    /// A parameter is malformed (JSON-RPC's own code).
    pub const INVALID_PARAMS: i32 = -32602;
    /// The node failed (JSON-RPC's own code).
    pub const INTERNAL: i32 = -32603;
    /// No such block, transaction, contract or height.
    pub const NOT_FOUND: i32 = -32020;
    /// Execution faulted (a host fault, never a contract's trap).
    pub const EXECUTION: i32 = -32021;
    /// Waiting timed out.
    pub const TIMEOUT: i32 = -32022;
    /// The height is outside the retained window.
    pub const PRUNED: i32 = -32023;
}
