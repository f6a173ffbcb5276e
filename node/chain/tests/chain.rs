//! The chain on a real RocksDB: execution, fees, nonces, recovery after a
//! crash between ordering and execution, the root check, upgrades, mempool.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use stele_chain::mempool::{Mempool, MempoolConfig};
use stele_chain::{Chain, ChainConfig, ChainError, Genesis, GenesisAccount, codes};
use stele_consensus::{Application, Executed};
use stele_host_api::Address;
use stele_types::{
    Action, Block, BlockHeader, ReceiptStatus, SignedTransaction, Transaction, TxHash,
    format_address, transactions_root,
};

const PROPOSER: Address = Address([0xaa; 32]);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn address(key: &SigningKey) -> Address {
    Address(key.verifying_key().to_bytes())
}

fn genesis(gas_price_min: u128, allow: Option<Vec<Address>>) -> Genesis {
    Genesis {
        chain_id: "test-chain".into(),
        genesis_time_ms: 1_000,
        gas_price_min: gas_price_min.to_string(),
        accounts: vec![
            GenesisAccount {
                address: format_address(&address(&key(1))),
                balance: "1000000000000".into(),
            },
            GenesisAccount {
                address: format_address(&address(&key(2))),
                balance: "1000000000000".into(),
            },
        ],
        deploy_allow_list: allow.map(|list| list.iter().map(format_address).collect()),
        consensus: None,
    }
}

fn open(dir: &std::path::Path, genesis: &Genesis) -> Arc<Chain> {
    Chain::open(ChainConfig::new(dir), genesis.parse().unwrap()).unwrap()
}

fn tx(signer: &SigningKey, nonce: u64, gas_price: u128, actions: Vec<Action>) -> SignedTransaction {
    Transaction {
        chain_id: "test-chain".into(),
        signer: address(signer),
        nonce,
        gas_limit: 50_000_000,
        gas_price,
        actions,
    }
    .sign(signer)
}

fn next_block(chain: &Chain, transactions: Vec<SignedTransaction>) -> Block {
    let tip = chain.tip();
    Block {
        header: BlockHeader {
            height: tip.height + 1,
            parent_hash: tip.hash,
            time_ms: tip.time_ms + 100,
            proposer: PROPOSER,
            transactions_root: transactions_root(&transactions),
            transaction_count: transactions.len() as u32,
            state_root: tip.state_root,
        },
        transactions,
    }
}

fn transfer(to: Address, amount: u128) -> Action {
    Action::Transfer { to, amount }
}

#[test]
fn fees_nonces_and_failures_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &genesis(2, None));
    let (alice, bob) = (key(1), key(2));
    let start = chain.balance(&address(&alice)).unwrap();
    let executed = chain
        .apply_block(next_block(
            &chain,
            vec![
                tx(&alice, 0, 2, vec![transfer(address(&bob), 500)]),
                // Reused nonce: invalid, costs nothing.
                tx(&alice, 0, 2, vec![transfer(address(&bob), 7)]),
                // Second action fails: the first is undone, the fee is paid.
                tx(
                    &alice,
                    1,
                    2,
                    vec![
                        transfer(address(&bob), 1),
                        transfer(address(&bob), u128::MAX),
                    ],
                ),
                // Below the minimum gas price.
                tx(&bob, 0, 1, vec![transfer(address(&alice), 1)]),
            ],
        ))
        .unwrap();
    let receipts = &executed.receipts;
    assert_eq!(receipts[0].status, ReceiptStatus::Success);
    assert!(
        matches!(&receipts[1].status, ReceiptStatus::Invalid { reason } if reason.contains("nonce"))
    );
    assert_eq!(receipts[1].fee, 0);
    assert!(matches!(
        &receipts[2].status,
        ReceiptStatus::Failed { action: 1, kind, .. } if kind == "insufficient balance"
    ));
    assert!(
        matches!(&receipts[3].status, ReceiptStatus::Invalid { reason } if reason.contains("gas price"))
    );
    let fees = receipts[0].fee + receipts[2].fee;
    assert_eq!(receipts[0].fee, u128::from(receipts[0].gas_used) * 2);
    assert!(fees > 0);
    assert_eq!(chain.balance(&address(&alice)).unwrap(), start - 500 - fees);
    assert_eq!(chain.balance(&PROPOSER).unwrap(), fees);
    assert_eq!(
        chain.balance(&address(&bob)).unwrap(),
        1_000_000_000_000 + 500
    );
    assert_eq!(chain.nonce(&address(&alice)).unwrap(), 2);
    assert_eq!(chain.nonce(&address(&bob)).unwrap(), 0);
    // Stored and indexed.
    let location = chain.store().locate(&receipts[2].tx_hash).unwrap().unwrap();
    assert_eq!(
        chain.store().receipt(location).unwrap().as_ref(),
        Some(&receipts[2])
    );
}

#[test]
fn a_block_stored_but_not_executed_executes_on_reopen_to_the_same_root() {
    let genesis = genesis(0, None);
    let (alice, bob) = (key(1), key(2));
    let blocks: Vec<Vec<SignedTransaction>> = (0..3)
        .map(|n| {
            vec![tx(
                &alice,
                n,
                0,
                vec![transfer(address(&bob), 10 + u128::from(n))],
            )]
        })
        .collect();
    // Reference: everything executed in one go.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = open(reference_dir.path(), &genesis);
    for transactions in &blocks {
        reference
            .apply_block(next_block(&reference, transactions.clone()))
            .unwrap();
    }
    // Crash after ordering block 3 but before executing it.
    let dir = tempfile::tempdir().unwrap();
    {
        let chain = open(dir.path(), &genesis);
        for transactions in &blocks[..2] {
            chain
                .apply_block(next_block(&chain, transactions.clone()))
                .unwrap();
        }
        chain
            .store()
            .put_block(&next_block(&chain, blocks[2].clone()), b"mark-3")
            .unwrap();
    }
    let reopened = open(dir.path(), &genesis);
    assert_eq!(reopened.tip(), reference.tip());
    assert_eq!(reopened.nonce(&address(&alice)).unwrap(), 3);
    // The block's ordering mark is the tip's: an engine learns where it was.
    assert_eq!(reopened.executed_mark().unwrap(), Some(b"mark-3".to_vec()));
    // Another genesis refuses this data.
    let mut other = genesis.clone();
    other.chain_id = "other".into();
    drop(reopened);
    let refused = Chain::open(ChainConfig::new(dir.path()), other.parse().unwrap());
    assert!(
        matches!(refused, Err(ChainError::Genesis(message)) if message.contains("another genesis"))
    );
}

#[test]
fn a_state_root_mismatch_halts_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &genesis(0, None));
    let mut block = next_block(&chain, vec![]);
    block.header.state_root = [7; 32];
    let error = chain.apply_block(block).unwrap_err();
    assert!(
        matches!(&error, ChainError::Halted(reason) if reason.contains("state root mismatch")),
        "{error}"
    );
    assert!(chain.halted().is_some());
    // Every later block and transaction is refused.
    assert!(matches!(
        chain.apply_block(next_block(&chain, vec![])),
        Err(ChainError::Halted(_))
    ));
    let refused = chain.admit(tx(&key(1), 0, 0, vec![transfer(Address([3; 32]), 1)]));
    assert_eq!(refused.unwrap_err().code, codes::NODE_HALTED);
}

const V1: &str = r#"(module
  (import "stele" "return_set" (func $ret (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "v1")
  (func (export "version") (call $ret (i32.const 0) (i32.const 2))))"#;
const V2: &str = r#"(module
  (import "stele" "return_set" (func $ret (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "v2")
  (func (export "version") (call $ret (i32.const 0) (i32.const 2))))"#;

#[test]
fn only_the_deployer_upgrades_and_the_allow_list_gates_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let chain = open(
        dir.path(),
        &genesis(0, Some(vec![address(&alice), address(&bob)])),
    );
    let deploy = |signer: &SigningKey, nonce| {
        tx(
            signer,
            nonce,
            0,
            vec![Action::Deploy {
                code: wat::parse_str(V1).unwrap(),
                init_args: None,
            }],
        )
    };
    let executed = chain
        .apply_block(next_block(
            &chain,
            vec![deploy(&alice, 0), deploy(&carol, 0)],
        ))
        .unwrap();
    assert_eq!(executed.receipts[0].status, ReceiptStatus::Success);
    assert!(
        matches!(&executed.receipts[1].status, ReceiptStatus::Failed { message, .. } if message.contains("allow-list"))
    );
    let contract = executed.receipts[0].deployed[0];
    assert_eq!(
        contract,
        stele_chain::contract_address(&address(&alice), 0, 0)
    );
    let upgrade = |signer: &SigningKey, nonce| {
        tx(
            signer,
            nonce,
            0,
            vec![
                Action::Upgrade {
                    contract,
                    code: wat::parse_str(V2).unwrap(),
                    migrate_args: None,
                },
                Action::Call {
                    contract,
                    method: "version".into(),
                    args: vec![],
                },
            ],
        )
    };
    let executed = chain
        .apply_block(next_block(
            &chain,
            vec![upgrade(&bob, 0), upgrade(&alice, 1)],
        ))
        .unwrap();
    assert!(
        matches!(&executed.receipts[0].status, ReceiptStatus::Failed { message, .. } if message.contains("only the account that deployed"))
    );
    assert_eq!(executed.receipts[1].status, ReceiptStatus::Success);
    assert_eq!(executed.receipts[1].return_data, b"v2");
}

/// Admits `tx` (100 bytes, committed nonce 0) to `pool` after `verify`.
fn admit_to(
    pool: &Mempool,
    tx: SignedTransaction,
    verify: impl FnOnce(&SignedTransaction) -> Result<(), stele_consensus::SubmitError>,
) -> Result<TxHash, stele_consensus::SubmitError> {
    let hash = tx.hash();
    pool.admit(tx, hash, 100, || Ok(0), verify)
}

#[test]
fn the_mempool_is_bounded_and_proposes_in_nonce_order() {
    let pool = Mempool::new(MempoolConfig {
        transactions_max: 10,
        bytes_max: 1 << 20,
        per_account_max: 4,
    });
    let alice = key(1);
    let ok = |_: &SignedTransaction| Ok(());
    let transfer_from_alice =
        |nonce: u64, to: u8| tx(&alice, nonce, 0, vec![transfer(Address([to; 32]), 1)]);
    for nonce in [2, 0, 1, 3] {
        admit_to(&pool, transfer_from_alice(nonce, 3), ok).unwrap();
    }
    let full = admit_to(&pool, transfer_from_alice(4, 3), ok);
    assert_eq!(full.unwrap_err().code, codes::TX_NONCE_AHEAD);
    let duplicate = admit_to(&pool, transfer_from_alice(1, 3), ok);
    assert_eq!(duplicate.unwrap_err().code, codes::TX_DUPLICATE);
    // A failing signature check admits nothing.
    let bad = admit_to(&pool, tx(&key(2), 0, 0, vec![]), |_| {
        Err(stele_consensus::SubmitError {
            code: codes::TX_BAD_SIGNATURE,
            message: "bad".into(),
        })
    });
    assert_eq!(bad.unwrap_err().code, codes::TX_BAD_SIGNATURE);
    assert_eq!(pool.stats().transactions, 4);
    let proposal = pool.propose(3, usize::MAX);
    let proposed: Vec<u64> = proposal.transactions.iter().map(|tx| tx.tx.nonce).collect();
    assert_eq!(proposed, vec![0, 1, 2]);
    // The proposal carries each transaction's hash, in order.
    let hashes: Vec<TxHash> = proposal
        .transactions
        .iter()
        .map(SignedTransaction::hash)
        .collect();
    assert_eq!(proposal.hashes, hashes);
    let used = admit_to(&pool, transfer_from_alice(2, 4), ok);
    assert_eq!(used.unwrap_err().code, codes::TX_NONCE_USED);
    pool.executed([(address(&alice), 3)]);
    assert_eq!(pool.propose(10, usize::MAX).transactions.len(), 1);
    pool.executed([(address(&alice), 4)]);
    assert_eq!(pool.stats().transactions, 0);
    assert_eq!(pool.stats().accounts, 0);
}

/// A block executes while a transaction is being admitted: the nonce read
/// before the signature check is stale by the time it is inserted, and the
/// account it would join has been dropped. The transaction must still be
/// proposed.
#[test]
fn a_block_executing_during_admission_does_not_strand_the_transaction() {
    let pool = Mempool::new(MempoolConfig::default());
    let alice = key(1);
    let state_nonce = std::sync::atomic::AtomicU64::new(0);
    let committed = || Ok(state_nonce.load(std::sync::atomic::Ordering::SeqCst));
    let first = tx(&alice, 0, 0, vec![transfer(Address([3; 32]), 1)]);
    pool.admit(first.clone(), first.hash(), 100, committed, |_| Ok(()))
        .unwrap();
    assert_eq!(pool.propose(10, usize::MAX).transactions, vec![first]);
    let second = tx(&alice, 1, 0, vec![transfer(Address([3; 32]), 1)]);
    pool.admit(second.clone(), second.hash(), 100, committed, |_| {
        // The block with nonce 0 commits and executes now.
        state_nonce.store(1, std::sync::atomic::Ordering::SeqCst);
        pool.executed([(address(&alice), 1)]);
        Ok(())
    })
    .unwrap();
    assert_eq!(pool.propose(10, usize::MAX).transactions, vec![second]);
}

#[test]
fn execute_applies_the_next_block_and_skips_stale_and_repeated_ones() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &genesis(0, None));
    let (alice, bob) = (key(1), key(2));
    let first = next_block(
        &chain,
        vec![tx(&alice, 0, 0, vec![transfer(address(&bob), 1)])],
    );
    let rival = next_block(
        &chain,
        vec![tx(&bob, 0, 0, vec![transfer(address(&alice), 1)])],
    );
    let applied = chain.execute(first.clone(), b"log-1").unwrap();
    assert!(matches!(applied, Executed::Applied(tip) if tip.height == 1));
    assert_eq!(chain.executed_mark().unwrap(), Some(b"log-1".to_vec()));
    // The same block again: already executed, nothing changes.
    assert_eq!(
        chain.execute(first.clone(), b"log-1").unwrap(),
        Executed::AlreadyExecuted(chain.tip())
    );
    // Another block for height 1 (a leader that lost its term): stale.
    assert_eq!(
        chain.execute(rival, b"log-2").unwrap(),
        Executed::Stale(chain.tip())
    );
    // A block on a parent that is not the tip: stale.
    let mut orphan = next_block(&chain, vec![]);
    orphan.header.parent_hash = [9; 32];
    assert_eq!(
        chain.execute(orphan, b"log-3").unwrap(),
        Executed::Stale(chain.tip())
    );
    assert_eq!(chain.tip().height, 1);
    assert_eq!(chain.nonce(&address(&bob)).unwrap(), 0);
    // A gap means this node missed a block: it halts.
    let mut ahead = next_block(&chain, vec![]);
    ahead.header.height = 3;
    let halted = chain.execute(ahead, b"log-4").unwrap_err();
    assert!(halted.reason.contains("missed blocks"), "{halted}");
    assert!(chain.halted().is_some());
}

#[test]
fn requeued_transactions_are_proposed_again_unless_their_nonce_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &genesis(0, None));
    let (alice, bob) = (key(1), key(2));
    for nonce in 0..3 {
        chain
            .admit(tx(&alice, nonce, 0, vec![transfer(address(&bob), 1)]))
            .unwrap();
    }
    let taken = chain.propose(2, usize::MAX);
    assert_eq!(taken.transactions.len(), 2);
    // The proposal never committed: its transactions come back, first.
    chain.requeue(taken.clone());
    let again = chain.propose(10, usize::MAX);
    let nonces: Vec<u64> = again.transactions.iter().map(|tx| tx.tx.nonce).collect();
    assert_eq!(nonces, vec![0, 1, 2]);
    // This time the block executes; giving the proposal back after that
    // (a timeout that raced the commit) returns nothing.
    chain
        .execute(next_block(&chain, again.transactions.clone()), b"")
        .unwrap();
    chain.requeue(again);
    assert_eq!(chain.pending(), 0);
    assert_eq!(chain.nonce(&address(&alice)).unwrap(), 3);
}

#[test]
fn a_snapshot_installs_on_a_lagging_node_to_the_same_root_and_bad_ones_are_refused() {
    let genesis = genesis(0, None);
    let (alice, bob) = (key(1), key(2));
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path(), &genesis);
    let lagging_dir = tempfile::tempdir().unwrap();
    let lagging = open(lagging_dir.path(), &genesis);
    for nonce in 0..4u64 {
        let block = next_block(
            &source,
            vec![tx(&alice, nonce, 0, vec![transfer(address(&bob), 5)])],
        );
        if nonce == 0 {
            lagging.execute(block.clone(), b"m").unwrap();
        }
        source
            .execute(block, format!("mark-{nonce}").as_bytes())
            .unwrap();
    }
    let mut bytes = Vec::new();
    let info = source.write_snapshot(4, &mut bytes).unwrap();
    assert_eq!(info.height, 4);
    assert_eq!(info.state_root, source.tip().state_root);
    assert_eq!(info.mark, Some(b"mark-3".to_vec()));

    // Corrupt copies are refused before anything changes.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 40;
    flipped[at] ^= 1;
    let refused = lagging
        .install_snapshot(&mut flipped.as_slice())
        .unwrap_err();
    assert!(refused.0.contains("checksum"), "{refused}");
    let truncated = &bytes[..bytes.len() - 10];
    assert!(lagging.install_snapshot(&mut &truncated[..]).is_err());
    assert_eq!(lagging.tip().height, 1);

    let installed = lagging.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(installed, info);
    assert_eq!(lagging.tip(), source.tip());
    assert_eq!(lagging.executed_mark().unwrap(), Some(b"mark-3".to_vec()));
    assert_eq!(lagging.nonce(&address(&alice)).unwrap(), 4);
    assert!(lagging.state().verify_root().unwrap());
    // Installing it again changes nothing; the chain goes on from it.
    lagging.install_snapshot(&mut bytes.as_slice()).unwrap();
    let next = next_block(
        &source,
        vec![tx(&alice, 4, 0, vec![transfer(address(&bob), 5)])],
    );
    source.execute(next.clone(), b"").unwrap();
    assert!(matches!(
        lagging.execute(next, b"").unwrap(),
        Executed::Applied(_)
    ));
    assert_eq!(lagging.tip(), source.tip());
    // Reopened, it is where it was.
    let tip = lagging.tip();
    drop(lagging);
    assert_eq!(open(lagging_dir.path(), &genesis).tip(), tip);

    // Another chain's snapshot is refused.
    let mut other = genesis.clone();
    other.chain_id = "other-chain".into();
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = open(stranger_dir.path(), &other);
    let refused = stranger
        .install_snapshot(&mut bytes.as_slice())
        .unwrap_err();
    assert!(refused.0.contains("another chain"), "{refused}");
}
