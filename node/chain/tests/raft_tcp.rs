//! A three-node Raft cluster of real chains over the authenticated TCP
//! transport on 127.0.0.1, and hostile peers against it: an unlisted key,
//! a listed id with the wrong key, a garbage frame, an oversized frame, a
//! replayed handshake. Each is refused and logged; the cluster goes on
//! committing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use borsh::BorshDeserialize;
use ed25519_dalek::{Signer, SigningKey};
use stele_chain::{Chain, ChainConfig, Genesis, GenesisAccount};
use stele_consensus::raft::tcp::{
    Auth, HANDSHAKE_FRAME_BYTES_MAX, Hello, PeerKeys, TcpServer, TcpTransport, client_transcript,
    read_frame, write_frame,
};
use stele_consensus::raft::types::NodeInfo;
use stele_consensus::raft::{RaftConfig, RaftEngine};
use stele_consensus::{Application, Ordering};
use stele_host_api::Address;
use stele_types::{Action, Transaction, format_address};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHAIN_ID: &str = "raft-tcp-test";

fn node_key(id: u64) -> SigningKey {
    SigningKey::from_bytes(&[100 + id as u8; 32])
}

fn user() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

struct Member {
    chain: Arc<Chain>,
    engine: RaftEngine,
    server: TcpServer,
}

async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn keys_of(id: u64, chain: [u8; 32], key: SigningKey) -> Arc<PeerKeys> {
    Arc::new(PeerKeys {
        chain,
        node_id: id,
        key,
        peers: (1..=3)
            .map(|peer| (peer, node_key(peer).verifying_key()))
            .collect(),
    })
}

async fn cluster(root: &std::path::Path) -> (Vec<Member>, [u8; 32]) {
    let spec = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: 1_000,
        gas_price_min: "1".into(),
        accounts: vec![GenesisAccount {
            address: format_address(&Address(user().verifying_key().to_bytes())),
            balance: "1000000000000000".into(),
        }],
        deploy_allow_list: None,
        consensus: None,
    }
    .parse()
    .unwrap();
    let mut listeners = Vec::new();
    for _ in 1..=3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let members: BTreeMap<u64, NodeInfo> = listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| {
            let addr = listener.local_addr().unwrap().to_string();
            (index as u64 + 1, NodeInfo { addr })
        })
        .collect();
    let mut nodes = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let id = index as u64 + 1;
        let dir = root.join(format!("node-{id}"));
        let chain = Chain::open(ChainConfig::new(dir.join("chain")), spec.clone()).unwrap();
        let mut config = RaftConfig::new(id, dir.join("raft"));
        config.initial_members = members.clone();
        config.listed = BTreeSet::from([1, 2, 3]);
        config.block_interval = Duration::from_millis(20);
        let keys = keys_of(id, spec.genesis_hash, node_key(id));
        let engine = RaftEngine::start(config, chain.clone(), TcpTransport::new(keys.clone()))
            .await
            .unwrap();
        let server = TcpServer::start(listener, keys, engine.handler()).unwrap();
        nodes.push(Member {
            chain,
            engine,
            server,
        });
    }
    (nodes, spec.genesis_hash)
}

/// Sends `count` transfers through node `via` and waits until every node
/// has executed them.
async fn commits(nodes: &[Member], via: usize, first_nonce: u64, count: u64) {
    let key = user();
    for nonce in first_nonce..first_nonce + count {
        let tx = Transaction {
            chain_id: CHAIN_ID.into(),
            signer: Address(key.verifying_key().to_bytes()),
            nonce,
            gas_limit: 1_000_000,
            gas_price: 1,
            actions: vec![Action::Transfer {
                to: Address([9; 32]),
                amount: 1,
            }],
        }
        .sign(&key);
        let deadline = Instant::now() + Duration::from_secs(15);
        // Before the first election a submit may find no leader: retried.
        while let Err(error) = nodes[via].engine.submit(tx.clone()).await {
            assert!(Instant::now() < deadline, "submit kept failing: {error:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let account = Address(key.verifying_key().to_bytes());
    for (index, node) in nodes.iter().enumerate() {
        wait_for(
            &format!(
                "node {} to execute nonce {}",
                index + 1,
                first_nonce + count - 1
            ),
            Duration::from_secs(20),
            || node.chain.nonce(&account).unwrap() >= first_nonce + count,
        )
        .await;
    }
}

/// Connects to `addr` and reads the greeting.
async fn greeted(addr: std::net::SocketAddr) -> (TcpStream, Hello) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let frame = read_frame(&mut stream, HANDSHAKE_FRAME_BYTES_MAX)
        .await
        .unwrap();
    (stream, Hello::try_from_slice(&frame).unwrap())
}

/// Whether the peer closed the connection (it answers nothing more).
async fn closed(mut stream: TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn refused_with(server: &TcpServer, words: &str) {
    wait_for(
        &format!("a refusal saying `{words}`"),
        Duration::from_secs(10),
        || {
            server
                .refusals()
                .iter()
                .any(|refusal| refusal.contains(words))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_refused_and_the_cluster_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let (nodes, chain) = cluster(root.path()).await;
    commits(&nodes, 0, 0, 5).await;
    let target = &nodes[0].server;
    let addr = target.addr();

    // An unlisted key, through the real dialer.
    let stranger = TcpTransport::new(Arc::new(PeerKeys {
        chain,
        node_id: 7,
        key: SigningKey::from_bytes(&[77; 32]),
        peers: BTreeMap::from([(1, node_key(1).verifying_key())]),
    }));
    use stele_consensus::raft::network::Transport;
    use stele_consensus::raft::wire::PeerRequest;
    let answer = stranger
        .call(
            1,
            &addr.to_string(),
            PeerRequest::Submit {
                transactions: vec![],
            },
            Duration::from_secs(5),
        )
        .await;
    assert!(answer.is_err(), "an unlisted node was served: {answer:?}");
    refused_with(target, "node 7 is not listed in genesis").await;

    // A listed id, signed with another key.
    let impostor = TcpTransport::new(keys_of(2, chain, SigningKey::from_bytes(&[78; 32])));
    let answer = impostor
        .call(
            1,
            &addr.to_string(),
            PeerRequest::Submit {
                transactions: vec![],
            },
            Duration::from_secs(5),
        )
        .await;
    assert!(answer.is_err(), "an impostor was served: {answer:?}");
    refused_with(target, "the proof of node 2 does not verify").await;

    // Garbage instead of the proof.
    let (mut stream, _) = greeted(addr).await;
    write_frame(&mut stream, &[0xff; 40]).await.unwrap();
    assert!(closed(stream).await);
    refused_with(target, "the proof does not decode").await;

    // A frame announced far over the handshake limit: refused before
    // anything is allocated or read.
    let (mut stream, _) = greeted(addr).await;
    stream.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    assert!(closed(stream).await);
    refused_with(target, "over the limit of 256").await;

    // A genuine proof, then the same proof replayed on a new connection.
    let key = node_key(2);
    let (mut stream, hello) = greeted(addr).await;
    let mine = [5u8; 32];
    let auth = Auth {
        client: 2,
        challenge: mine,
        signature: key.sign(&client_transcript(&hello, 2, &mine)).to_bytes(),
    };
    write_frame(&mut stream, &borsh::to_vec(&auth).unwrap())
        .await
        .unwrap();
    let accepted = read_frame(&mut stream, HANDSHAKE_FRAME_BYTES_MAX).await;
    assert!(accepted.is_ok(), "the genuine proof was refused");
    // An authenticated frame over the frame limit is refused too.
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(closed(stream).await);
    refused_with(
        target,
        "node 2: a frame of 4294967295 bytes is over the limit",
    )
    .await;
    let (mut stream, _) = greeted(addr).await;
    write_frame(&mut stream, &borsh::to_vec(&auth).unwrap())
        .await
        .unwrap();
    assert!(closed(stream).await);
    refused_with(target, "does not verify (wrong key, or replayed)").await;

    // Silence past the handshake deadline is covered by HANDSHAKE_TIMEOUT;
    // the cluster, meanwhile, is unaffected.
    commits(&nodes, 1, 5, 5).await;
    commits(&nodes, 2, 10, 5).await;
    let tips: Vec<_> = nodes.iter().map(|node| node.chain.tip()).collect();
    for node in &nodes {
        assert!(node.chain.halted().is_none());
    }
    let height = tips.iter().map(|tip| tip.height).min().unwrap();
    let hashes: BTreeSet<_> = nodes
        .iter()
        .map(|node| {
            node.chain
                .store()
                .block(height)
                .unwrap()
                .unwrap()
                .header
                .hash()
        })
        .collect();
    assert_eq!(hashes.len(), 1, "the nodes differ at height {height}");
    for node in &nodes {
        node.engine.shutdown().await;
    }
}
