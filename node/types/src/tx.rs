//! Transactions: what an account asks the chain to do, signed with
//! ed25519 and verified strictly.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use stele_host_api::Address;
use stele_host_api::limits::{CODE_BYTES_MAX, INPUT_BYTES_MAX, METHOD_NAME_BYTES_MAX};

use crate::limits::{ACTIONS_PER_TX_MAX, CHAIN_ID_BYTES_MAX};

/// A transaction hash: BLAKE3 of its signing bytes.
pub type TxHash = [u8; 32];

/// Domain separation of what a transaction signature covers.
pub const SIGNING_DOMAIN: &[u8] = b"stele-tx-v1";

/// One thing a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Action {
    /// Deploys code at an address derived from the signer and nonce, and
    /// runs its `init` with `init_args` when given.
    Deploy {
        /// Wasm code.
        code: Vec<u8>,
        /// Borsh arguments of `init`.
        init_args: Option<Vec<u8>>,
    },
    /// Calls a contract method.
    Call {
        /// The contract.
        contract: Address,
        /// Method name.
        method: String,
        /// Borsh arguments.
        args: Vec<u8>,
    },
    /// Moves native coin.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount.
        amount: u128,
    },
    /// Replaces a contract's code; only the account that deployed it may.
    /// Runs the new code's `migrate` with `migrate_args` when given.
    Upgrade {
        /// The contract.
        contract: Address,
        /// New wasm code.
        code: Vec<u8>,
        /// Borsh arguments of `migrate`.
        migrate_args: Option<Vec<u8>>,
    },
}

/// What the signer signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    /// The chain it is meant for; another chain refuses it.
    pub chain_id: String,
    /// The signer's ed25519 public key, which is its address.
    pub signer: Address,
    /// The signer's next nonce.
    pub nonce: u64,
    /// Most gas the transaction may use.
    pub gas_limit: u64,
    /// Price per gas in native coin (may be zero on a permissioned chain).
    pub gas_price: u128,
    /// What it does, in order; all or nothing.
    pub actions: Vec<Action>,
}

/// A transaction with its signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// ed25519 signature of [`Transaction::signing_bytes`].
    pub signature: [u8; 64],
}

/// Why a transaction is refused before execution.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Meant for another chain.
    #[error("wrong chain id `{found}`, this chain is `{expected}`")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The transaction's.
        found: String,
    },
    /// No actions.
    #[error("a transaction needs at least one action")]
    NoActions,
    /// A limit is broken.
    #[error("{what} is {value}, over the limit {limit_name} = {limit}")]
    Limit {
        /// What.
        what: &'static str,
        /// Its value.
        value: usize,
        /// The limit's name.
        limit_name: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The signer is not a valid ed25519 public key.
    #[error("the signer is not a valid ed25519 public key")]
    BadPublicKey,
    /// The signature does not verify (strictly).
    #[error("the signature does not verify")]
    BadSignature,
}

fn limit(
    what: &'static str,
    value: usize,
    limit_name: &'static str,
    limit: usize,
) -> Result<(), TxError> {
    if value > limit {
        return Err(TxError::Limit {
            what,
            value,
            limit_name,
            limit,
        });
    }
    Ok(())
}

impl Transaction {
    /// The bytes a signature covers: [`SIGNING_DOMAIN`] then the borsh encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SIGNING_DOMAIN.len() + 256);
        bytes.extend_from_slice(SIGNING_DOMAIN);
        self.serialize(&mut bytes)
            .expect("writing to a Vec cannot fail");
        bytes
    }

    /// The transaction's hash.
    pub fn hash(&self) -> TxHash {
        tx_hash_of(&self.signing_bytes())
    }

    /// Signs with `key`; the signer field must be `key`'s public key.
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        debug_assert_eq!(
            self.signer.0,
            key.verifying_key().to_bytes(),
            "signer is the key's public key"
        );
        let signature = key.sign(&self.signing_bytes()).to_bytes();
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// The hash of a transaction from its [`Transaction::signing_bytes`], for
/// callers that need both and encode once.
pub fn tx_hash_of(signing_bytes: &[u8]) -> TxHash {
    *blake3::hash(signing_bytes).as_bytes()
}

impl SignedTransaction {
    /// The transaction's hash.
    pub fn hash(&self) -> TxHash {
        self.tx.hash()
    }

    /// The checks that cost nothing: chain id, action count and sizes. Run
    /// them before [`SignedTransaction::verify_signature`].
    pub fn check_cheap(&self, chain_id: &str) -> Result<(), TxError> {
        let tx = &self.tx;
        limit(
            "chain id bytes",
            tx.chain_id.len(),
            "CHAIN_ID_BYTES_MAX",
            CHAIN_ID_BYTES_MAX,
        )?;
        if tx.chain_id != chain_id {
            return Err(TxError::WrongChain {
                expected: chain_id.into(),
                found: tx.chain_id.clone(),
            });
        }
        if tx.actions.is_empty() {
            return Err(TxError::NoActions);
        }
        limit(
            "actions",
            tx.actions.len(),
            "ACTIONS_PER_TX_MAX",
            ACTIONS_PER_TX_MAX,
        )?;
        for action in &tx.actions {
            match action {
                Action::Deploy {
                    code,
                    init_args: args,
                }
                | Action::Upgrade {
                    code,
                    migrate_args: args,
                    ..
                } => {
                    limit("code bytes", code.len(), "CODE_BYTES_MAX", CODE_BYTES_MAX)?;
                    let args = args.as_ref().map_or(0, Vec::len);
                    limit(
                        "init or migrate argument bytes",
                        args,
                        "INPUT_BYTES_MAX",
                        INPUT_BYTES_MAX,
                    )?;
                }
                Action::Call { method, args, .. } => {
                    limit(
                        "method name bytes",
                        method.len(),
                        "METHOD_NAME_BYTES_MAX",
                        METHOD_NAME_BYTES_MAX,
                    )?;
                    limit(
                        "argument bytes",
                        args.len(),
                        "INPUT_BYTES_MAX",
                        INPUT_BYTES_MAX,
                    )?;
                }
                Action::Transfer { .. } => {}
            }
        }
        Ok(())
    }

    /// Strict ed25519 verification: canonical `S`, no small-order keys.
    pub fn verify_signature(&self) -> Result<(), TxError> {
        let key = self.verifying_key()?;
        self.verify_signature_with(&key, &self.tx.signing_bytes())
    }

    /// The signer's public key, decoded. Decoding is about a third of the
    /// cost of a verification: callers that see an account often keep it
    /// and use [`SignedTransaction::verify_signature_with`].
    pub fn verifying_key(&self) -> Result<VerifyingKey, TxError> {
        VerifyingKey::from_bytes(&self.tx.signer.0).map_err(|_| TxError::BadPublicKey)
    }

    /// [`SignedTransaction::verify_signature`] with the signer's decoded
    /// `key` and this transaction's `signing_bytes` already at hand. A key
    /// that is not the signer's is refused.
    pub fn verify_signature_with(
        &self,
        key: &VerifyingKey,
        signing_bytes: &[u8],
    ) -> Result<(), TxError> {
        if key.as_bytes() != &self.tx.signer.0 {
            return Err(TxError::BadPublicKey);
        }
        debug_assert!(
            signing_bytes == self.tx.signing_bytes(),
            "signing bytes are this transaction's"
        );
        key.verify_strict(signing_bytes, &Signature::from_bytes(&self.signature))
            .map_err(|_| TxError::BadSignature)
    }
}
