//! The node-to-node transport: TCP with a signed-challenge handshake.
//!
//! A connection starts with a handshake in three frames: the listener sends
//! [`Hello`] (its node id and a fresh random challenge); the dialer answers
//! [`Auth`] (its node id, its own challenge, and an ed25519 signature of
//! both challenges, both ids and the chain's genesis hash); the listener
//! checks that the dialer's id is listed (in genesis) and the signature
//! verifies strictly under that id's key, then answers [`Accept`] with its
//! own signature of the same transcript, which the dialer checks against
//! the key of the node it meant to reach. A signature is good for one
//! connection only: replaying a recorded `Auth` fails on the new challenge.
//! Anything else — an unlisted key, a bad signature, garbage, a frame over
//! its limit, silence past the handshake deadline — closes the connection,
//! and is logged (and kept in [`TcpServer::refusals`]).
//!
//! Then each frame (a big-endian `u32` length and a borsh body) is a
//! [`PeerRequest`] answered by one [`PeerResponse`]. Lengths are checked
//! before anything is allocated: handshake frames against
//! [`HANDSHAKE_FRAME_BYTES_MAX`], the rest against [`FRAME_BYTES_MAX`].
//! Connections are bounded in number ([`INBOUND_CONNECTIONS_MAX`], and
//! [`CONNECTIONS_PER_PEER_MAX`] per authenticated peer), and each serves one
//! request at a time, so a hostile peer holds at most one frame per
//! connection in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::network::{PeerHandler, Transport, TransportError};
use super::types::NodeId;
use super::wire::{PeerRequest, PeerResponse};
use crate::BoxFuture;

/// Most bytes of a handshake frame.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 256;

/// Most bytes of a request or answer frame (a block of up to
/// [`super::BLOCK_BYTES_MAX_IN_FRAME`] and its envelope).
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Most inbound connections at once (handshaking or authenticated).
pub const INBOUND_CONNECTIONS_MAX: usize = 64;

/// Most authenticated inbound connections from one peer.
pub const CONNECTIONS_PER_PEER_MAX: usize = 8;

/// Idle outbound connections kept per peer.
const IDLE_PER_PEER_MAX: usize = 4;

/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Refusals kept for [`TcpServer::refusals`].
const REFUSALS_KEPT: usize = 64;

const PEER_MAGIC: [u8; 8] = *b"stele-p1";
const CLIENT_DOMAIN: &[u8] = b"stele-peer-client-v1";
const SERVER_DOMAIN: &[u8] = b"stele-peer-server-v1";

/// The listener's greeting.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Hello {
    /// `stele-p1`.
    pub magic: [u8; 8],
    /// The chain's genesis hash.
    pub chain: [u8; 32],
    /// The listener's node id.
    pub server: NodeId,
    /// A fresh random challenge.
    pub challenge: [u8; 32],
}

/// The dialer's proof of its key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Auth {
    /// The dialer's node id.
    pub client: NodeId,
    /// The dialer's fresh challenge.
    pub challenge: [u8; 32],
    /// Its signature of the transcript.
    pub signature: [u8; 64],
}

/// The listener's proof of its key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Accept {
    /// Its signature of the transcript.
    pub signature: [u8; 64],
}

/// Who this node is and whom it accepts.
pub struct PeerKeys {
    /// The chain's genesis hash (signed, so a key of another chain does not
    /// open this one).
    pub chain: [u8; 32],
    /// This node's id.
    pub node_id: NodeId,
    /// This node's key.
    pub key: SigningKey,
    /// Every node listed in genesis, with its key.
    pub peers: BTreeMap<NodeId, VerifyingKey>,
}

/// The bytes both sides sign.
pub fn transcript(
    domain: &[u8],
    chain: &[u8; 32],
    server: NodeId,
    server_challenge: &[u8; 32],
    client: NodeId,
    client_challenge: &[u8; 32],
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(domain.len() + 32 + 8 + 32 + 8 + 32);
    bytes.extend_from_slice(domain);
    bytes.extend_from_slice(chain);
    bytes.extend_from_slice(&server.to_le_bytes());
    bytes.extend_from_slice(server_challenge);
    bytes.extend_from_slice(&client.to_le_bytes());
    bytes.extend_from_slice(client_challenge);
    bytes
}

/// The client half of the transcript (what a dialer signs).
pub fn client_transcript(hello: &Hello, client: NodeId, client_challenge: &[u8; 32]) -> Vec<u8> {
    transcript(
        CLIENT_DOMAIN,
        &hello.chain,
        hello.server,
        &hello.challenge,
        client,
        client_challenge,
    )
}

fn challenge() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes).map_err(|error| std::io::Error::other(error.to_string()))?;
    Ok(bytes)
}

/// Reads one frame of at most `max` bytes (checked before allocating).
pub async fn read_frame(stream: &mut TcpStream, max: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit of {max}"),
        ));
    }
    // Memory grows with the bytes that arrive, not with the length a peer
    // announces.
    let mut bytes = Vec::with_capacity(len.min(64 * 1024));
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the connection closed {} bytes into a frame of {len}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Writes one frame.
pub async fn write_frame(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let len =
        u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a frame over 4 GiB"))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(bytes).await?;
    stream.flush().await
}

fn decode<T: BorshDeserialize>(bytes: &[u8], what: &str) -> Result<T, String> {
    T::try_from_slice(bytes).map_err(|error| format!("{what} does not decode: {error}"))
}

/// The dialing side of the handshake; returns once both sides proved
/// their keys.
pub async fn client_handshake(
    stream: &mut TcpStream,
    keys: &PeerKeys,
    target: NodeId,
) -> Result<(), String> {
    let hello: Hello = decode(
        &read_frame(stream, HANDSHAKE_FRAME_BYTES_MAX)
            .await
            .map_err(|error| format!("reading the greeting: {error}"))?,
        "the greeting",
    )?;
    if hello.magic != PEER_MAGIC || hello.chain != keys.chain {
        return Err("the peer speaks another protocol or chain".into());
    }
    if hello.server != target {
        return Err(format!(
            "the peer says it is node {}, expected node {target}",
            hello.server
        ));
    }
    let server_key = keys
        .peers
        .get(&target)
        .ok_or_else(|| format!("node {target} is not listed in genesis"))?;
    let mine = challenge().map_err(|error| error.to_string())?;
    let signature = keys
        .key
        .sign(&client_transcript(&hello, keys.node_id, &mine))
        .to_bytes();
    let auth = Auth {
        client: keys.node_id,
        challenge: mine,
        signature,
    };
    write_frame(stream, &borsh::to_vec(&auth).map_err(|e| e.to_string())?)
        .await
        .map_err(|error| format!("sending the proof: {error}"))?;
    let accept: Accept = decode(
        &read_frame(stream, HANDSHAKE_FRAME_BYTES_MAX)
            .await
            .map_err(|error| format!("the peer refused this node: {error}"))?,
        "the acceptance",
    )?;
    let expected = transcript(
        SERVER_DOMAIN,
        &keys.chain,
        target,
        &hello.challenge,
        keys.node_id,
        &mine,
    );
    server_key
        .verify_strict(&expected, &Signature::from_bytes(&accept.signature))
        .map_err(|_| format!("node {target} did not prove its key"))?;
    Ok(())
}

/// The listening side of the handshake; returns the authenticated peer's id.
async fn server_handshake(stream: &mut TcpStream, keys: &PeerKeys) -> Result<NodeId, String> {
    let mine = challenge().map_err(|error| error.to_string())?;
    let hello = Hello {
        magic: PEER_MAGIC,
        chain: keys.chain,
        server: keys.node_id,
        challenge: mine,
    };
    write_frame(stream, &borsh::to_vec(&hello).map_err(|e| e.to_string())?)
        .await
        .map_err(|error| format!("sending the greeting: {error}"))?;
    let frame = read_frame(stream, HANDSHAKE_FRAME_BYTES_MAX)
        .await
        .map_err(|error| format!("reading the proof: {error}"))?;
    let auth: Auth = decode(&frame, "the proof")?;
    let client_key = keys
        .peers
        .get(&auth.client)
        .ok_or_else(|| format!("node {} is not listed in genesis", auth.client))?;
    if auth.client == keys.node_id {
        return Err("a peer claims this node's own id".into());
    }
    let signed = client_transcript(&hello, auth.client, &auth.challenge);
    client_key
        .verify_strict(&signed, &Signature::from_bytes(&auth.signature))
        .map_err(|_| {
            format!(
                "the proof of node {} does not verify (wrong key, or replayed)",
                auth.client
            )
        })?;
    let answer = transcript(
        SERVER_DOMAIN,
        &keys.chain,
        keys.node_id,
        &mine,
        auth.client,
        &auth.challenge,
    );
    let accept = Accept {
        signature: keys.key.sign(&answer).to_bytes(),
    };
    write_frame(stream, &borsh::to_vec(&accept).map_err(|e| e.to_string())?)
        .await
        .map_err(|error| format!("sending the acceptance: {error}"))?;
    Ok(auth.client)
}

/// The dialing side: connections to peers, authenticated, reused.
pub struct TcpTransport {
    keys: Arc<PeerKeys>,
    idle: Mutex<HashMap<NodeId, Vec<TcpStream>>>,
}

impl TcpTransport {
    /// A transport for the node `keys` describe.
    pub fn new(keys: Arc<PeerKeys>) -> Arc<TcpTransport> {
        Arc::new(TcpTransport {
            keys,
            idle: Mutex::new(HashMap::new()),
        })
    }

    fn take_idle(&self, target: NodeId) -> Option<TcpStream> {
        self.idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get_mut(&target)
            .and_then(Vec::pop)
    }

    fn put_idle(&self, target: NodeId, stream: TcpStream) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let streams = idle.entry(target).or_default();
        if streams.len() < IDLE_PER_PEER_MAX {
            streams.push(stream);
        }
    }

    async fn connect(&self, target: NodeId, addr: &str) -> Result<TcpStream, TransportError> {
        let unreachable = |reason: String| TransportError::Unreachable { target, reason };
        let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("connecting to {addr} timed out")))?
            .map_err(|error| unreachable(format!("connecting to {addr}: {error}")))?;
        let _ = stream.set_nodelay(true);
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            client_handshake(&mut stream, &self.keys, target),
        )
        .await
        .map_err(|_| unreachable("the handshake timed out".into()))?
        .map_err(unreachable)?;
        Ok(stream)
    }

    async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<Vec<u8>> {
        write_frame(stream, request).await?;
        read_frame(stream, FRAME_BYTES_MAX).await
    }
}

impl Transport for TcpTransport {
    fn call(
        &self,
        target: NodeId,
        addr: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<PeerResponse, TransportError>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let bytes = borsh::to_vec(&request).map_err(|error| TransportError::Unreachable {
                target,
                reason: error.to_string(),
            })?;
            if bytes.len() > FRAME_BYTES_MAX {
                return Err(TransportError::TooLarge {
                    bytes: bytes.len(),
                    limit: FRAME_BYTES_MAX,
                });
            }
            let work = async {
                // An idle connection may have been closed by the peer since:
                // one retry on a fresh one.
                if let Some(mut stream) = self.take_idle(target)
                    && let Ok(answer) = Self::exchange(&mut stream, &bytes).await
                {
                    return Ok((stream, answer));
                }
                let mut stream = self.connect(target, &addr).await?;
                let answer = Self::exchange(&mut stream, &bytes).await.map_err(|error| {
                    TransportError::Unreachable {
                        target,
                        reason: format!("the connection failed: {error}"),
                    }
                })?;
                Ok((stream, answer))
            };
            let (stream, answer) = tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| TransportError::Timeout { target, timeout })??;
            let response = PeerResponse::try_from_slice(&answer).map_err(|error| {
                TransportError::Unreachable {
                    target,
                    reason: format!("the answer does not decode: {error}"),
                }
            })?;
            self.put_idle(target, stream);
            Ok(response)
        })
    }
}

/// A listening peer port.
pub struct TcpServer {
    addr: SocketAddr,
    refusals: Arc<Mutex<VecDeque<String>>>,
    stop: watch::Sender<bool>,
}

struct PeerSlot {
    peer: NodeId,
    open: Arc<Mutex<HashMap<NodeId, usize>>>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
        }
    }
}

impl TcpServer {
    /// Serves `handler` to authenticated peers on `listener` (bound by the
    /// caller, so that port 0 can pick a free port) until dropped.
    pub fn start(
        listener: TcpListener,
        keys: Arc<PeerKeys>,
        handler: Arc<dyn PeerHandler>,
    ) -> std::io::Result<TcpServer> {
        let addr = listener.local_addr()?;
        let refusals = Arc::new(Mutex::new(VecDeque::new()));
        let (stop, stopped) = watch::channel(false);
        let server = TcpServer {
            addr,
            refusals: refusals.clone(),
            stop,
        };
        tokio::spawn(accept_loop(listener, keys, handler, refusals, stopped));
        Ok(server)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The latest refusals (oldest first), each naming the peer's address
    /// and the reason.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn refuse(refusals: &Mutex<VecDeque<String>>, from: SocketAddr, reason: String) {
    tracing::warn!(peer = %from, %reason, "refused a peer");
    let mut refusals = refusals.lock().unwrap_or_else(|poison| poison.into_inner());
    if refusals.len() == REFUSALS_KEPT {
        refusals.pop_front();
    }
    refusals.push_back(format!("{from}: {reason}"));
}

async fn accept_loop(
    listener: TcpListener,
    keys: Arc<PeerKeys>,
    handler: Arc<dyn PeerHandler>,
    refusals: Arc<Mutex<VecDeque<String>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX));
    let open = Arc::new(Mutex::new(HashMap::new()));
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, from)) = accepted else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(
                &refusals,
                from,
                format!("{INBOUND_CONNECTIONS_MAX} connections are open, the most allowed"),
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (keys, handler, refusals, open) = (
            keys.clone(),
            handler.clone(),
            refusals.clone(),
            open.clone(),
        );
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let peer =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, server_handshake(&mut stream, &keys))
                    .await
                {
                    Ok(Ok(peer)) => peer,
                    Ok(Err(reason)) => return refuse(&refusals, from, reason),
                    Err(_) => {
                        return refuse(
                            &refusals,
                            from,
                            format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
                        );
                    }
                };
            let _peer_slot = {
                let mut counts = open.lock().unwrap_or_else(|poison| poison.into_inner());
                let count = counts.entry(peer).or_insert(0);
                if *count >= CONNECTIONS_PER_PEER_MAX {
                    drop(counts);
                    return refuse(
                        &refusals,
                        from,
                        format!(
                            "node {peer} has {CONNECTIONS_PER_PEER_MAX} connections open, the most allowed"
                        ),
                    );
                }
                *count += 1;
                PeerSlot {
                    peer,
                    open: open.clone(),
                }
            };
            loop {
                let frame = tokio::select! {
                    _ = stopped.changed() => return,
                    frame = read_frame(&mut stream, FRAME_BYTES_MAX) => frame,
                };
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return,
                    Err(error) => {
                        return refuse(&refusals, from, format!("node {peer}: {error}"));
                    }
                };
                let request = match PeerRequest::try_from_slice(&frame) {
                    Ok(request) => request,
                    Err(error) => {
                        return refuse(
                            &refusals,
                            from,
                            format!("node {peer} sent a frame that does not decode: {error}"),
                        );
                    }
                };
                let answer = handler.handle(peer, request).await;
                let Ok(bytes) = borsh::to_vec(&answer) else {
                    return;
                };
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
            }
        });
    }
}
