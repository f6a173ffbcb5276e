//! Executing transactions: the runtime over the block's overlay, then fees
//! and nonces. Everything here is deterministic: it feeds the state root.

use stele_host_api::Address;
use stele_runtime::overlay::Overlay as TxOverlay;
use stele_runtime::storage::{decode_balance, encode_balance, keys as runtime_keys};
use stele_runtime::{Call, Context, Deploy, Outcome, Runtime, Storage, StorageError, Upgrade};
use stele_state::Overlay;
use stele_types::{Action, BlockHeader, Receipt, ReceiptStatus, SignedTransaction, TxHash};

use crate::genesis::ChainSpec;
use crate::{ChainError, keys};

/// Gas every transaction pays before its actions run.
pub const TX_BASE_GAS: u64 = 20_000;
/// Gas per byte of the encoded transaction.
pub const TX_BYTE_GAS: u64 = 20;
/// Highest gas limit of one transaction (a 1 MiB deployment costs about
/// 2.1 × 10^9).
pub const TX_GAS_LIMIT_MAX: u64 = 10_000_000_000;

/// Gas a transaction of `encoded_bytes` pays before its actions run.
pub fn intrinsic_gas(encoded_bytes: usize) -> u64 {
    TX_BASE_GAS + TX_BYTE_GAS * encoded_bytes as u64
}

/// The address of the contract deployed by action `action` of the
/// transaction of `signer` with `nonce`.
pub fn contract_address(signer: &Address, nonce: u64, action: u32) -> Address {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"stele-contract-address-v1");
    hasher.update(&signer.0);
    hasher.update(&nonce.to_le_bytes());
    hasher.update(&action.to_le_bytes());
    Address(*hasher.finalize().as_bytes())
}

fn storage_error(error: stele_state::StateError) -> StorageError {
    StorageError(error.to_string())
}

/// The block overlay as the runtime's storage.
pub(crate) struct BlockView<'a, 'b>(pub &'b Overlay<'a>);

impl Storage for BlockView<'_, '_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key).map_err(storage_error)
    }

    fn next(
        &self,
        start: &[u8],
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError> {
        self.0.next(start, prefix).map_err(storage_error)
    }
}

/// A transaction's writes so far over its block.
struct TxView<'a> {
    base: &'a dyn Storage,
    writes: &'a TxOverlay,
}

impl Storage for TxView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.writes.get(self.base, key)
    }

    fn next(
        &self,
        start: &[u8],
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError> {
        Ok(self.writes.next(self.base, start, prefix)?.entry)
    }
}

/// Reads a nonce (0 when absent).
pub(crate) fn read_nonce(storage: &dyn Storage, account: &Address) -> Result<u64, StorageError> {
    match storage.get(&keys::nonce(account))? {
        None => Ok(0),
        Some(bytes) => Ok(u64::from_le_bytes(bytes.as_slice().try_into().map_err(
            |_| StorageError(format!("nonce of {account} has {} bytes", bytes.len())),
        )?)),
    }
}

/// Reads a balance (0 when absent).
pub(crate) fn read_balance(storage: &dyn Storage, account: &Address) -> Result<u128, StorageError> {
    match storage.get(&runtime_keys::balance(account))? {
        None => Ok(0),
        Some(bytes) => decode_balance(&bytes),
    }
}

/// Executes transactions against a block overlay.
pub(crate) struct Executor<'r> {
    pub runtime: &'r Runtime,
    pub spec: &'r ChainSpec,
}

fn invalid(tx_hash: TxHash, header: &BlockHeader, index: u32, reason: String) -> Receipt {
    Receipt {
        tx_hash,
        height: header.height,
        index,
        status: ReceiptStatus::Invalid { reason },
        gas_used: 0,
        fee: 0,
        return_data: Vec::new(),
        events: Vec::new(),
        deployed: Vec::new(),
    }
}

impl Executor<'_> {
    /// Executes one transaction, whose hash is `tx_hash`.
    /// `signature_checked` says whether this node already verified its
    /// signature. An `Err` is a host fault: the block
    /// must not commit.
    pub fn execute(
        &self,
        overlay: &mut Overlay<'_>,
        header: &BlockHeader,
        index: u32,
        tx: &SignedTransaction,
        tx_hash: TxHash,
        signature_checked: bool,
    ) -> Result<Receipt, ChainError> {
        let fault = |error: StorageError| ChainError::HostFault {
            tx: hex_string(&tx_hash),
            fault: stele_runtime::HostFault {
                message: error.to_string(),
                gas_used: 0,
            },
        };
        if let Err(error) = tx.check_cheap(&self.spec.chain_id) {
            return Ok(invalid(tx_hash, header, index, error.to_string()));
        }
        if !signature_checked && let Err(error) = tx.verify_signature() {
            return Ok(invalid(tx_hash, header, index, error.to_string()));
        }
        let body = &tx.tx;
        let signer = body.signer;
        let encoded = borsh::object_length(tx).expect("a transaction always encodes");
        let intrinsic = intrinsic_gas(encoded);
        let nonce = read_nonce(&BlockView(overlay), &signer).map_err(fault)?;
        if body.nonce != nonce {
            let reason = format!(
                "nonce is {}, the account's next nonce is {nonce}",
                body.nonce
            );
            return Ok(invalid(tx_hash, header, index, reason));
        }
        if body.gas_price < self.spec.gas_price_min {
            let reason = format!(
                "gas price {} is below this chain's minimum {}",
                body.gas_price, self.spec.gas_price_min
            );
            return Ok(invalid(tx_hash, header, index, reason));
        }
        if body.gas_limit < intrinsic || body.gas_limit > TX_GAS_LIMIT_MAX {
            let reason = format!(
                "gas limit {} is outside [{intrinsic}, TX_GAS_LIMIT_MAX = {TX_GAS_LIMIT_MAX}]",
                body.gas_limit
            );
            return Ok(invalid(tx_hash, header, index, reason));
        }
        let max_fee = u128::from(body.gas_limit)
            .checked_mul(body.gas_price)
            .unwrap_or(u128::MAX);
        // Without fees (a zero gas price) the balance plays no part.
        let balance = match max_fee {
            0 => 0,
            _ => read_balance(&BlockView(overlay), &signer).map_err(fault)?,
        };
        if balance < max_fee {
            let reason = format!("balance {balance} cannot pay the maximum fee {max_fee}");
            return Ok(invalid(tx_hash, header, index, reason));
        }
        // The maximum fee leaves the account first, so the actions cannot
        // spend it; the unused part comes back after them.
        overlay.apply([(
            keys::nonce(&signer),
            Some((nonce + 1).to_le_bytes().to_vec()),
        )]);
        if max_fee > 0 {
            overlay.apply([(
                runtime_keys::balance(&signer),
                Some(encode_balance(balance - max_fee)),
            )]);
        }

        let ctx = Context {
            block_height: header.height,
            block_time_ms: header.time_ms,
            origin: signer,
            tx_hash,
        };
        let mut writes = TxOverlay::default();
        let mut gas_used = intrinsic;
        let mut events = Vec::new();
        let mut return_data = Vec::new();
        let mut deployed = Vec::new();
        let mut status = ReceiptStatus::Success;
        for (action_index, action) in body.actions.iter().enumerate() {
            let gas_left = body.gas_limit - gas_used;
            let base = BlockView(overlay);
            let view = TxView {
                base: &base,
                writes: &writes,
            };
            let result = self.action(&view, &ctx, tx, action_index as u32, action, gas_left);
            let (outcome, new_contract) = match result {
                Ok(done) => done,
                Err(refusal) => {
                    status = ReceiptStatus::Failed {
                        action: action_index as u32,
                        kind: "refused".into(),
                        message: refusal,
                    };
                    break;
                }
            };
            let outcome = outcome.map_err(|fault| ChainError::HostFault {
                tx: hex_string(&tx_hash),
                fault,
            })?;
            gas_used += outcome.gas_used;
            if let Some(trap) = outcome.trap {
                status = ReceiptStatus::Failed {
                    action: action_index as u32,
                    kind: trap.kind.name().into(),
                    message: trap.message,
                };
                break;
            }
            for (key, value) in outcome.writes {
                writes.set(key, value);
            }
            if let Some(contract) = new_contract {
                writes.set(keys::admin(&contract), Some(signer.0.to_vec()));
                deployed.push(contract);
            }
            events.extend(outcome.events);
            return_data = outcome.return_data;
        }
        if status == ReceiptStatus::Success {
            overlay.apply(writes.into_writes());
        } else {
            events.clear();
            return_data.clear();
            deployed.clear();
        }
        let fee = u128::from(gas_used) * body.gas_price;
        let refund = max_fee - fee;
        if refund > 0 {
            let signer_balance = read_balance(&BlockView(overlay), &signer).map_err(fault)?;
            overlay.apply([(
                runtime_keys::balance(&signer),
                Some(encode_balance(signer_balance.saturating_add(refund))),
            )]);
        }
        if fee > 0 {
            let proposer = header.proposer;
            let proposer_balance = read_balance(&BlockView(overlay), &proposer).map_err(fault)?;
            overlay.apply([(
                runtime_keys::balance(&proposer),
                Some(encode_balance(proposer_balance.saturating_add(fee))),
            )]);
        }
        Ok(Receipt {
            tx_hash,
            height: header.height,
            index,
            status,
            gas_used,
            fee,
            return_data,
            events,
            deployed,
        })
    }

    /// Runs one action; `Err` is a refusal by the chain (permissions).
    #[allow(clippy::type_complexity)]
    fn action(
        &self,
        view: &dyn Storage,
        ctx: &Context,
        tx: &SignedTransaction,
        action_index: u32,
        action: &Action,
        gas_limit: u64,
    ) -> Result<(Result<Outcome, stele_runtime::HostFault>, Option<Address>), String> {
        let signer = tx.tx.signer;
        let runtime = self.runtime;
        Ok(match action {
            Action::Deploy { code, init_args } => {
                if !self.spec.may_deploy(&signer) {
                    return Err("the signer is not on this chain's deploy allow-list".into());
                }
                let address = contract_address(&signer, tx.tx.nonce, action_index);
                let deploy = Deploy {
                    deployer: signer,
                    address,
                    code: code.clone(),
                    init_input: init_args.clone(),
                    gas_limit,
                };
                (runtime.deploy(view, ctx, &deploy), Some(address))
            }
            Action::Call {
                contract,
                method,
                args,
            } => {
                let call = Call {
                    caller: signer,
                    contract: *contract,
                    method: method.clone(),
                    input: args.clone(),
                    gas_limit,
                };
                (runtime.call(view, ctx, &call), None)
            }
            Action::Transfer { to, amount } => (
                runtime.transfer(view, ctx, &signer, to, *amount, gas_limit),
                None,
            ),
            Action::Upgrade {
                contract,
                code,
                migrate_args,
            } => {
                if !self.spec.may_deploy(&signer) {
                    return Err("the signer is not on this chain's deploy allow-list".into());
                }
                let admin = view
                    .get(&keys::admin(contract))
                    .map_err(|error| error.to_string())?;
                if admin.as_deref() != Some(&signer.0[..]) {
                    return Err(format!(
                        "only the account that deployed {contract} may upgrade it"
                    ));
                }
                let upgrade = Upgrade {
                    caller: signer,
                    contract: *contract,
                    code: code.clone(),
                    migrate_input: migrate_args.clone(),
                    gas_limit,
                };
                (runtime.upgrade(view, ctx, &upgrade), None)
            }
        })
    }
}

/// Lower-case hex.
pub(crate) fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
