//! The mempool: transactions admitted and waiting for a block.
//!
//! Bounded in count, bytes and per account; ordered by nonce within an
//! account. Admission runs the cheap checks under the lock (nonce window,
//! duplicates, room) before the signature is verified outside it, so a
//! flood of bad signatures or of one account's transactions costs CPU at
//! most and never memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use stele_consensus::{Proposal, SubmitError};
use stele_host_api::Address;
use stele_types::{SignedTransaction, TxHash};

use crate::codes;

/// Bounds of the mempool.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    /// Most transactions held. Default: 100,000.
    pub transactions_max: usize,
    /// Most encoded bytes held. Default: 256 MiB.
    pub bytes_max: usize,
    /// Most transactions held per account, which is also how far ahead of
    /// the account's nonce a transaction may be. Default: 1,024.
    pub per_account_max: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            transactions_max: 100_000,
            bytes_max: 256 * 1024 * 1024,
            per_account_max: 1_024,
        }
    }
}

struct Pending {
    tx: SignedTransaction,
    hash: TxHash,
    bytes: usize,
}

#[derive(Default)]
struct Account {
    /// The next nonce to propose.
    next: u64,
    txs: BTreeMap<u64, Pending>,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<Address, Account>,
    /// Accounts in first-admitted order, for fair proposals.
    order: Vec<Address>,
    hashes: HashSet<TxHash>,
    count: usize,
    bytes: usize,
}

/// Counts, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MempoolStats {
    /// Transactions held.
    pub transactions: usize,
    /// Bytes held.
    pub bytes: usize,
    /// Accounts with transactions held.
    pub accounts: usize,
}

/// The pool.
pub struct Mempool {
    config: MempoolConfig,
    inner: Mutex<Inner>,
}

fn refuse(code: i32, message: String) -> SubmitError {
    SubmitError { code, message }
}

impl Mempool {
    /// An empty pool.
    pub fn new(config: MempoolConfig) -> Self {
        Mempool {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn check_room(
        &self,
        inner: &Inner,
        tx: &SignedTransaction,
        hash: &TxHash,
        bytes: usize,
        committed_nonce: u64,
    ) -> Result<(), SubmitError> {
        if inner.hashes.contains(hash) {
            return Err(refuse(
                codes::TX_DUPLICATE,
                "the transaction is already pending".into(),
            ));
        }
        let nonce = tx.tx.nonce;
        let next = inner
            .accounts
            .get(&tx.tx.signer)
            .map_or(committed_nonce, |account| account.next.max(committed_nonce));
        if nonce < next {
            return Err(refuse(
                codes::TX_NONCE_USED,
                format!("nonce {nonce} is already used; the account's next nonce is {next}"),
            ));
        }
        let ahead = self.config.per_account_max as u64;
        if nonce - next >= ahead {
            return Err(refuse(
                codes::TX_NONCE_AHEAD,
                format!(
                    "nonce {nonce} is too far ahead of the account's next nonce {next} \
                     (at most {ahead} ahead)"
                ),
            ));
        }
        if let Some(account) = inner.accounts.get(&tx.tx.signer) {
            if account.txs.contains_key(&nonce) {
                return Err(refuse(
                    codes::TX_DUPLICATE,
                    format!("a transaction with nonce {nonce} is already pending for this account"),
                ));
            }
            if account.txs.len() >= self.config.per_account_max {
                return Err(refuse(
                    codes::ACCOUNT_FULL,
                    format!(
                        "the account has {} pending transactions, the limit per account is {}",
                        account.txs.len(),
                        self.config.per_account_max
                    ),
                ));
            }
        }
        if inner.count >= self.config.transactions_max
            || inner.bytes + bytes > self.config.bytes_max
        {
            return Err(refuse(
                codes::MEMPOOL_FULL,
                format!(
                    "the mempool is full ({} transactions, {} bytes; limits {} and {})",
                    inner.count, inner.bytes, self.config.transactions_max, self.config.bytes_max
                ),
            ));
        }
        Ok(())
    }

    /// Admits a transaction whose cheap checks passed, with its `hash`:
    /// checks the nonce window, duplicates and room, then `verify` (the
    /// signature check, run without holding the lock), then inserts.
    ///
    /// `committed_nonce` reads the signer's nonce in the committed state.
    /// It is read again under the lock when the pool holds nothing of the
    /// signer: a block may have executed, and [`Mempool::executed`] dropped
    /// the account, since the first read, and a stale nonce would leave
    /// the transaction waiting forever for one that is already used.
    pub fn admit(
        &self,
        tx: SignedTransaction,
        hash: TxHash,
        bytes: usize,
        committed_nonce: impl Fn() -> Result<u64, SubmitError>,
        verify: impl FnOnce(&SignedTransaction) -> Result<(), SubmitError>,
    ) -> Result<TxHash, SubmitError> {
        debug_assert_eq!(hash, tx.hash(), "the hash is the transaction's");
        let first_read = committed_nonce()?;
        {
            let inner = self.inner.lock().expect("mempool lock");
            self.check_room(&inner, &tx, &hash, bytes, first_read)?;
        }
        verify(&tx)?;
        let mut inner = self.inner.lock().expect("mempool lock");
        let signer = tx.tx.signer;
        let committed_nonce = if inner.accounts.contains_key(&signer) {
            // The account's `next` is kept current by `executed`.
            first_read
        } else {
            // Under the lock: `executed` for any later block runs after
            // the insertion below and updates the account.
            committed_nonce()?
        };
        self.check_room(&inner, &tx, &hash, bytes, committed_nonce)?;
        let inner = &mut *inner;
        let account = inner.accounts.entry(signer).or_insert_with(|| Account {
            next: committed_nonce,
            txs: BTreeMap::new(),
        });
        if account.txs.is_empty() && !inner.order.contains(&signer) {
            inner.order.push(signer);
        }
        account.txs.insert(tx.tx.nonce, Pending { tx, hash, bytes });
        inner.hashes.insert(hash);
        inner.count += 1;
        inner.bytes += bytes;
        Ok(hash)
    }

    /// Takes transactions for a block: accounts in turn, each one's run of
    /// consecutive nonces from its next nonce.
    pub fn propose(&self, max_transactions: usize, max_bytes: usize) -> Proposal {
        let mut inner = self.inner.lock().expect("mempool lock");
        let inner = &mut *inner;
        let mut taken = Vec::new();
        let mut hashes = Vec::new();
        let mut taken_bytes = 0;
        let mut rounds_left = true;
        while rounds_left && taken.len() < max_transactions {
            rounds_left = false;
            for signer in &inner.order {
                let Some(account) = inner.accounts.get_mut(signer) else {
                    continue;
                };
                let Some(entry) = account.txs.first_entry() else {
                    continue;
                };
                if *entry.key() != account.next
                    || taken.len() == max_transactions
                    || taken_bytes + entry.get().bytes > max_bytes
                {
                    continue;
                }
                let pending = entry.remove();
                account.next += 1;
                inner.hashes.remove(&pending.hash);
                inner.count -= 1;
                inner.bytes -= pending.bytes;
                taken_bytes += pending.bytes;
                taken.push(pending.tx);
                hashes.push(pending.hash);
                rounds_left = true;
            }
        }
        inner.order.retain(|signer| {
            inner
                .accounts
                .get(signer)
                .is_some_and(|account| !account.txs.is_empty())
        });
        Proposal {
            transactions: taken,
            hashes,
        }
    }

    /// Takes back transactions that [`Mempool::propose`] gave out for a
    /// block that was never ordered, each with its hash and encoded size:
    /// those whose nonce is still ahead of the signer's `committed_nonce`
    /// return (whatever the bounds: they were held a moment ago), and each
    /// signer's next nonce to propose goes back to its lowest returned one.
    /// Returns the hashes of those dropped (already used or pending again).
    pub fn requeue(
        &self,
        transactions: Vec<(SignedTransaction, TxHash, usize)>,
        committed_nonce: impl Fn(&Address) -> u64,
    ) -> Vec<TxHash> {
        let mut inner = self.inner.lock().expect("mempool lock");
        let inner = &mut *inner;
        let mut dropped = Vec::new();
        for (tx, hash, bytes) in transactions {
            let signer = tx.tx.signer;
            let nonce = tx.tx.nonce;
            let committed = committed_nonce(&signer);
            if nonce < committed || inner.hashes.contains(&hash) {
                dropped.push(hash);
                continue;
            }
            let account = inner.accounts.entry(signer).or_insert_with(|| Account {
                next: committed,
                txs: BTreeMap::new(),
            });
            if account.txs.contains_key(&nonce) {
                dropped.push(hash);
                continue;
            }
            account.next = account.next.min(nonce).max(committed);
            if account.txs.is_empty() && !inner.order.contains(&signer) {
                inner.order.push(signer);
            }
            account.txs.insert(nonce, Pending { tx, hash, bytes });
            inner.hashes.insert(hash);
            inner.count += 1;
            inner.bytes += bytes;
        }
        dropped
    }

    /// The accounts with transactions held.
    pub fn signers(&self) -> Vec<Address> {
        let inner = self.inner.lock().expect("mempool lock");
        inner.accounts.keys().copied().collect()
    }

    /// After a block executed: each signer's committed nonce. Drops what
    /// can no longer execute and forgets idle accounts.
    pub fn executed(&self, committed: impl IntoIterator<Item = (Address, u64)>) {
        let mut inner = self.inner.lock().expect("mempool lock");
        let inner = &mut *inner;
        for (signer, nonce) in committed {
            let Some(account) = inner.accounts.get_mut(&signer) else {
                continue;
            };
            account.next = nonce;
            while let Some(entry) = account.txs.first_entry() {
                if *entry.key() >= nonce {
                    break;
                }
                let pending = entry.remove();
                inner.hashes.remove(&pending.hash);
                inner.count -= 1;
                inner.bytes -= pending.bytes;
            }
            if account.txs.is_empty() {
                inner.accounts.remove(&signer);
            }
        }
    }

    /// Whether a transaction is pending.
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.inner
            .lock()
            .expect("mempool lock")
            .hashes
            .contains(hash)
    }

    /// Counts.
    pub fn stats(&self) -> MempoolStats {
        let inner = self.inner.lock().expect("mempool lock");
        MempoolStats {
            transactions: inner.count,
            bytes: inner.bytes,
            accounts: inner.accounts.len(),
        }
    }
}
