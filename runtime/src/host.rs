//! The host functions of the ABI, defined on a wasmtime `Linker`.
//!
//! Every function follows the same order: check lengths against their
//! limits (trap), charge gas for the work about to be done (trap when short),
//! then touch guest memory — with every range checked before anything is
//! read, written or allocated — and state. Guest bugs trap with a
//! deterministic message; storage failures become host faults.

use stele_host_api::limits::{
    ABORT_MESSAGE_BYTES_MAX, ADDRESS_BYTES, AMOUNT_BYTES, CALL_DEPTH_MAX, CODE_BYTES_MAX,
    ED25519_PUBLIC_KEY_BYTES, ED25519_SIGNATURE_BYTES, EVENT_DATA_BYTES_MAX, EVENT_TOPICS_MAX,
    EVENTS_PER_TX_MAX, HASH_INPUT_BYTES_MAX, INPUT_BYTES_MAX, LOG_BYTES_MAX, LOGS_PER_TX_MAX,
    METHOD_NAME_BYTES_MAX, RETURN_BYTES_MAX, STORAGE_KEY_BYTES_MAX, STORAGE_VALUE_BYTES_MAX,
    TOPIC_BYTES,
};
use stele_host_api::{Address, Event, abi, status};
use wasmtime::{Caller, Linker, Val};

use crate::exec::{
    Entry, Fault, HostState, Invocation, Stop, gas_left, invoke, out_of_gas, set_gas_left,
};
use crate::outcome::{Trap, TrapKind};
use crate::schedule::GasSchedule;
use crate::storage::{StorageError, decode_balance, encode_balance, keys};

type HostResult<T> = wasmtime::Result<T>;
type Ctx<'a> = Caller<'a, HostState>;

fn trap(kind: TrapKind, message: String) -> wasmtime::Error {
    wasmtime::Error::new(Trap::new(kind, message))
}

fn fault(error: StorageError) -> wasmtime::Error {
    wasmtime::Error::new(Fault(error.to_string()))
}

fn stop(stop: Stop) -> wasmtime::Error {
    match stop {
        Stop::Trap(trap) => wasmtime::Error::new(trap),
        Stop::Fault(message) => wasmtime::Error::new(Fault(message)),
    }
}

/// Reads a length argument and checks it against its limit. Negative
/// values read as huge unsigned ones, so they fail the check too.
fn length(value: i32, limit: usize, what: &str, limit_name: &str) -> HostResult<usize> {
    let value = value as u32 as usize;
    if value > limit {
        return Err(trap(
            TrapKind::HostLimit,
            format!("{what} is {value} bytes, over the limit {limit_name} = {limit}"),
        ));
    }
    Ok(value)
}

fn schedule<'a>(ctx: &'a Ctx<'_>) -> &'a GasSchedule {
    &ctx.data().tx().runtime.schedule
}

/// Charges what `cost` computes from the schedule.
fn charge(ctx: &mut Ctx<'_>, cost: impl FnOnce(&GasSchedule) -> u64) -> HostResult<()> {
    let gas = cost(schedule(ctx));
    charge_gas(ctx, gas)
}

/// Charges `gas`, plus any memory growth not yet paid for.
fn charge_gas(ctx: &mut Ctx<'_>, gas: u64) -> HostResult<()> {
    let pending = std::mem::take(&mut ctx.data_mut().limiter.pending_gas);
    let total = gas.saturating_add(pending);
    let left = gas_left(&mut *ctx);
    if total > left {
        set_gas_left(&mut *ctx, 0)?;
        return Err(wasmtime::Error::new(out_of_gas()));
    }
    set_gas_left(&mut *ctx, left - total)
}

fn memory_range(ctx: &Ctx<'_>, ptr: i32, len: usize) -> HostResult<std::ops::Range<usize>> {
    let memory = ctx.data().memory.expect("memory is set before any call");
    let size = memory.data_size(ctx);
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(trap(
            TrapKind::MemoryOutOfBounds,
            format!("host call: bytes [{start}, {start}+{len}) are outside memory of {size} bytes"),
        )),
    }
}

/// Appends `len` guest bytes at `ptr` to `out`.
fn read_into(ctx: &Ctx<'_>, ptr: i32, len: usize, out: &mut Vec<u8>) -> HostResult<()> {
    let range = memory_range(ctx, ptr, len)?;
    let memory = ctx.data().memory.expect("memory is set before any call");
    out.extend_from_slice(&memory.data(ctx)[range]);
    Ok(())
}

fn read_bytes(ctx: &Ctx<'_>, ptr: i32, len: usize) -> HostResult<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len);
    read_into(ctx, ptr, len, &mut bytes)?;
    Ok(bytes)
}

fn read_array<const N: usize>(ctx: &Ctx<'_>, ptr: i32) -> HostResult<[u8; N]> {
    let range = memory_range(ctx, ptr, N)?;
    let memory = ctx.data().memory.expect("memory is set before any call");
    Ok(memory.data(ctx)[range]
        .try_into()
        .expect("range has N bytes"))
}

fn write_bytes(ctx: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> HostResult<()> {
    let range = memory_range(ctx, ptr, bytes.len())?;
    let memory = ctx.data().memory.expect("memory is set before any call");
    memory.data_mut(ctx)[range].copy_from_slice(bytes);
    Ok(())
}

/// Writes `bytes` to `dst` when they fit in `cap`; returns their length.
fn write_if_fits(ctx: &mut Ctx<'_>, dst: i32, cap: i32, bytes: &[u8]) -> HostResult<i32> {
    if bytes.len() <= cap as u32 as usize {
        write_bytes(ctx, dst, bytes)?;
    }
    Ok(bytes.len() as i32)
}

/// The storage key of the running contract's `key` at `ptr`.
fn contract_key(ctx: &Ctx<'_>, ptr: i32, len: usize) -> HostResult<Vec<u8>> {
    let mut key = keys::contract_storage(&ctx.data().frame.contract, &[]);
    key.reserve(len);
    read_into(ctx, ptr, len, &mut key)?;
    Ok(key)
}

fn key_length(len: i32) -> HostResult<usize> {
    length(
        len,
        STORAGE_KEY_BYTES_MAX,
        "storage key",
        "STORAGE_KEY_BYTES_MAX",
    )
}

fn read_balance(ctx: &Ctx<'_>, address: &Address) -> HostResult<u128> {
    match ctx
        .data()
        .tx()
        .read(&keys::balance(address))
        .map_err(fault)?
    {
        Some(bytes) => decode_balance(&bytes).map_err(fault),
        None => Ok(0),
    }
}

/// Defines every function of [`abi::IMPORTS`] on `linker`.
pub(crate) fn define(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let m = abi::MODULE;

    linker.func_wrap(
        m,
        abi::INPUT_LEN.name,
        |mut ctx: Ctx<'_>| -> HostResult<i32> {
            charge(&mut ctx, |s| s.host_call_base)?;
            Ok(ctx.data().frame.input.len() as i32)
        },
    )?;

    linker.func_wrap(
        m,
        abi::INPUT_READ.name,
        |mut ctx: Ctx<'_>, dst: i32| -> HostResult<()> {
            let s = schedule(&ctx);
            let cost = s.host_call_base + s.copy(ctx.data().frame.input.len());
            charge_gas(&mut ctx, cost)?;
            let input = std::mem::take(&mut ctx.data_mut().frame.input);
            let written = write_bytes(&mut ctx, dst, &input);
            ctx.data_mut().frame.input = input;
            written
        },
    )?;

    linker.func_wrap(
        m,
        abi::RETURN_SET.name,
        |mut ctx: Ctx<'_>, ptr: i32, len: i32| -> HostResult<()> {
            let len = length(len, RETURN_BYTES_MAX, "return data", "RETURN_BYTES_MAX")?;
            charge(&mut ctx, |s| s.host_call_base + s.copy(len))?;
            let data = read_bytes(&ctx, ptr, len)?;
            ctx.data_mut().frame.return_data = data;
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        abi::ABORT.name,
        |mut ctx: Ctx<'_>, ptr: i32, len: i32| -> HostResult<()> {
            let len = length(
                len,
                ABORT_MESSAGE_BYTES_MAX,
                "abort message",
                "ABORT_MESSAGE_BYTES_MAX",
            )?;
            charge(&mut ctx, |s| s.host_call_base + s.copy(len))?;
            let message = read_bytes(&ctx, ptr, len)?;
            Err(trap(
                TrapKind::ContractAbort,
                String::from_utf8_lossy(&message).into_owned(),
            ))
        },
    )?;

    linker.func_wrap(
        m,
        abi::LOG.name,
        |mut ctx: Ctx<'_>, ptr: i32, len: i32| -> HostResult<()> {
            let len = length(len, LOG_BYTES_MAX, "log line", "LOG_BYTES_MAX")?;
            charge(&mut ctx, |s| s.host_call_base + s.log_base + s.copy(len))?;
            let line = read_bytes(&ctx, ptr, len)?;
            let logs = &mut ctx.data_mut().tx_mut().logs;
            if logs.len() >= LOGS_PER_TX_MAX {
                let message = format!("more than LOGS_PER_TX_MAX = {LOGS_PER_TX_MAX} log lines");
                return Err(trap(TrapKind::HostLimit, message));
            }
            logs.push(String::from_utf8_lossy(&line).into_owned());
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        abi::STORAGE_READ.name,
        |mut ctx: Ctx<'_>, key_ptr: i32, key_len: i32, dst: i32, cap: i32| -> HostResult<i32> {
            let key_len = key_length(key_len)?;
            let s = schedule(&ctx);
            let (per_byte, base) = (
                s.storage_read_per_byte,
                s.host_call_base + s.storage_read_base,
            );
            charge_gas(&mut ctx, base + per_byte * key_len as u64)?;
            let key = contract_key(&ctx, key_ptr, key_len)?;
            let Some(value) = ctx.data().tx().read(&key).map_err(fault)? else {
                return Ok(status::NOT_FOUND);
            };
            charge_gas(&mut ctx, per_byte * value.len() as u64)?;
            write_if_fits(&mut ctx, dst, cap, &value)
        },
    )?;

    linker.func_wrap(
        m,
        abi::STORAGE_WRITE.name,
        |mut ctx: Ctx<'_>,
         key_ptr: i32,
         key_len: i32,
         value_ptr: i32,
         value_len: i32|
         -> HostResult<()> {
            let key_len = key_length(key_len)?;
            let value_len = length(
                value_len,
                STORAGE_VALUE_BYTES_MAX,
                "storage value",
                "STORAGE_VALUE_BYTES_MAX",
            )?;
            let s = schedule(&ctx);
            let cost = s.host_call_base
                + s.storage_write_base
                + s.storage_write_per_byte * (key_len + value_len) as u64;
            charge_gas(&mut ctx, cost)?;
            let key = contract_key(&ctx, key_ptr, key_len)?;
            let value = read_bytes(&ctx, value_ptr, value_len)?;
            ctx.data_mut().tx_mut().overlay.set(key, Some(value));
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        abi::STORAGE_REMOVE.name,
        |mut ctx: Ctx<'_>, key_ptr: i32, key_len: i32| -> HostResult<i32> {
            let key_len = key_length(key_len)?;
            charge(&mut ctx, |s| {
                s.host_call_base + s.storage_remove_base + s.copy(key_len)
            })?;
            let key = contract_key(&ctx, key_ptr, key_len)?;
            let existed = ctx.data().tx().read(&key).map_err(fault)?.is_some();
            if existed {
                ctx.data_mut().tx_mut().overlay.set(key, None);
            }
            Ok(if existed { status::TRUE } else { status::FALSE })
        },
    )?;

    linker.func_wrap(
        m,
        abi::STORAGE_HAS.name,
        |mut ctx: Ctx<'_>, key_ptr: i32, key_len: i32| -> HostResult<i32> {
            let key_len = key_length(key_len)?;
            charge(&mut ctx, |s| {
                s.host_call_base + s.storage_read_base + s.storage_read_per_byte * key_len as u64
            })?;
            let key = contract_key(&ctx, key_ptr, key_len)?;
            let present = ctx.data().tx().read(&key).map_err(fault)?.is_some();
            Ok(if present { status::TRUE } else { status::FALSE })
        },
    )?;

    linker.func_wrap(
        m,
        abi::STORAGE_NEXT.name,
        |mut ctx: Ctx<'_>,
         prefix_ptr: i32,
         prefix_len: i32,
         start_ptr: i32,
         start_len: i32,
         dst: i32,
         cap: i32|
         -> HostResult<i32> {
            let prefix_len = key_length(prefix_len)?;
            let start_len = key_length(start_len)?;
            let s = schedule(&ctx);
            let (per_byte, skip) = (s.storage_read_per_byte, s.storage_next_skip);
            let base =
                s.host_call_base + s.storage_next_base + per_byte * (prefix_len + start_len) as u64;
            charge_gas(&mut ctx, base)?;
            let prefix = contract_key(&ctx, prefix_ptr, prefix_len)?;
            let start = contract_key(&ctx, start_ptr, start_len)?;
            let tx = ctx.data().tx();
            let next = tx
                .overlay
                .next(tx.storage.get(), &start, &prefix)
                .map_err(fault)?;
            charge_gas(&mut ctx, skip.saturating_mul(next.n_skipped))?;
            let Some((key, value)) = next.entry else {
                return Ok(status::NOT_FOUND);
            };
            let key = &key[keys::CONTRACT_STORAGE_HEADER_BYTES..];
            charge_gas(&mut ctx, per_byte * (key.len() + value.len()) as u64)?;
            let mut record = Vec::with_capacity(4 + key.len() + value.len());
            record.extend_from_slice(&(key.len() as u32).to_le_bytes());
            record.extend_from_slice(key);
            record.extend_from_slice(&value);
            write_if_fits(&mut ctx, dst, cap, &record)
        },
    )?;

    fn define_address(
        linker: &mut Linker<HostState>,
        name: &'static str,
        get: fn(&HostState) -> [u8; ADDRESS_BYTES],
    ) -> wasmtime::Result<()> {
        linker.func_wrap(
            abi::MODULE,
            name,
            move |mut ctx: Ctx<'_>, dst: i32| -> HostResult<()> {
                charge(&mut ctx, |s| s.host_call_base + s.copy(ADDRESS_BYTES))?;
                let bytes = get(ctx.data());
                write_bytes(&mut ctx, dst, &bytes)
            },
        )?;
        Ok(())
    }
    define_address(linker, abi::CALLER.name, |state| state.frame.caller.0)?;
    define_address(linker, abi::SELF_ADDRESS.name, |state| {
        state.frame.contract.0
    })?;
    define_address(linker, abi::ORIGIN.name, |state| state.tx().ctx.origin.0)?;
    define_address(linker, abi::TX_HASH.name, |state| state.tx().ctx.tx_hash)?;

    linker.func_wrap(
        m,
        abi::BLOCK_HEIGHT.name,
        |mut ctx: Ctx<'_>| -> HostResult<i64> {
            charge(&mut ctx, |s| s.host_call_base)?;
            Ok(ctx.data().tx().ctx.block_height as i64)
        },
    )?;

    linker.func_wrap(
        m,
        abi::BLOCK_TIME.name,
        |mut ctx: Ctx<'_>| -> HostResult<i64> {
            charge(&mut ctx, |s| s.host_call_base)?;
            Ok(ctx.data().tx().ctx.block_time_ms as i64)
        },
    )?;

    linker.func_wrap(
        m,
        abi::GAS_LEFT.name,
        |mut ctx: Ctx<'_>| -> HostResult<i64> {
            charge(&mut ctx, |s| s.host_call_base)?;
            Ok(gas_left(&mut ctx) as i64)
        },
    )?;

    linker.func_wrap(
        m,
        abi::EVENT_EMIT.name,
        |mut ctx: Ctx<'_>, topics_ptr: i32, n_topics: i32, data_ptr: i32, data_len: i32| -> HostResult<()> {
            let n_topics = n_topics as u32 as usize;
            if n_topics > EVENT_TOPICS_MAX {
                let message = format!("event has {n_topics} topics, over the limit EVENT_TOPICS_MAX = {EVENT_TOPICS_MAX}");
                return Err(trap(TrapKind::HostLimit, message));
            }
            let data_len = length(data_len, EVENT_DATA_BYTES_MAX, "event data", "EVENT_DATA_BYTES_MAX")?;
            let n_bytes = (n_topics * TOPIC_BYTES + data_len) as u64;
            charge(&mut ctx, |s| s.host_call_base + s.event_base + s.event_per_byte * n_bytes)?;
            let topic_bytes = read_bytes(&ctx, topics_ptr, n_topics * TOPIC_BYTES)?;
            let data = read_bytes(&ctx, data_ptr, data_len)?;
            let topics = topic_bytes
                .chunks_exact(TOPIC_BYTES)
                .map(|chunk| chunk.try_into().expect("chunks of TOPIC_BYTES"))
                .collect();
            let contract = ctx.data().frame.contract;
            let events = &mut ctx.data_mut().tx_mut().events;
            if events.len() >= EVENTS_PER_TX_MAX {
                let message = format!("more than EVENTS_PER_TX_MAX = {EVENTS_PER_TX_MAX} events");
                return Err(trap(TrapKind::HostLimit, message));
            }
            events.push(Event { contract, topics, data });
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        abi::CONTRACT_CALL.name,
        |mut ctx: Ctx<'_>,
         address_ptr: i32,
         method_ptr: i32,
         method_len: i32,
         input_ptr: i32,
         input_len: i32,
         gas: i64|
         -> HostResult<i32> {
            contract_call(
                &mut ctx,
                address_ptr,
                method_ptr,
                method_len,
                input_ptr,
                input_len,
                gas,
            )
        },
    )?;

    linker.func_wrap(
        m,
        abi::CALL_RESULT_READ.name,
        |mut ctx: Ctx<'_>, dst: i32, cap: i32| -> HostResult<i32> {
            let s = schedule(&ctx);
            let cost = s.host_call_base + s.copy(ctx.data().frame.call_result.len());
            charge_gas(&mut ctx, cost)?;
            let result = std::mem::take(&mut ctx.data_mut().frame.call_result);
            let written = write_if_fits(&mut ctx, dst, cap, &result);
            ctx.data_mut().frame.call_result = result;
            written
        },
    )?;

    linker.func_wrap(
        m,
        abi::BALANCE.name,
        |mut ctx: Ctx<'_>, address_ptr: i32, dst: i32| -> HostResult<()> {
            charge(&mut ctx, |s| {
                s.host_call_base + s.storage_read_base + s.copy(ADDRESS_BYTES + AMOUNT_BYTES)
            })?;
            let address = Address(read_array(&ctx, address_ptr)?);
            let balance = read_balance(&ctx, &address)?;
            write_bytes(&mut ctx, dst, &balance.to_le_bytes())
        },
    )?;

    linker.func_wrap(
        m,
        abi::TRANSFER.name,
        |mut ctx: Ctx<'_>, address_ptr: i32, amount_ptr: i32| -> HostResult<i32> {
            charge(&mut ctx, |s| {
                s.host_call_base + s.transfer_base + s.copy(ADDRESS_BYTES + AMOUNT_BYTES)
            })?;
            let to = Address(read_array(&ctx, address_ptr)?);
            let amount = u128::from_le_bytes(read_array(&ctx, amount_ptr)?);
            let from = ctx.data().frame.contract;
            let from_balance = read_balance(&ctx, &from)?;
            if from_balance < amount {
                return Ok(status::INSUFFICIENT_BALANCE);
            }
            if from != to && amount > 0 {
                let to_balance = read_balance(&ctx, &to)?;
                let Some(to_balance) = to_balance.checked_add(amount) else {
                    return Err(trap(
                        TrapKind::HostLimit,
                        "transfer overflows the recipient's balance".into(),
                    ));
                };
                let overlay = &mut ctx.data_mut().tx_mut().overlay;
                overlay.set(
                    keys::balance(&from),
                    Some(encode_balance(from_balance - amount)),
                );
                overlay.set(keys::balance(&to), Some(encode_balance(to_balance)));
            }
            Ok(status::OK)
        },
    )?;

    linker.func_wrap(
        m,
        abi::BLAKE3.name,
        |mut ctx: Ctx<'_>, ptr: i32, len: i32, dst: i32| -> HostResult<()> {
            let len = length(
                len,
                HASH_INPUT_BYTES_MAX,
                "hash input",
                "HASH_INPUT_BYTES_MAX",
            )?;
            charge(&mut ctx, |s| {
                s.host_call_base + s.blake3_base + s.blake3_per_byte * len as u64
            })?;
            let range = memory_range(&ctx, ptr, len)?;
            let memory = ctx.data().memory.expect("memory is set before any call");
            let hash = blake3::hash(&memory.data(&ctx)[range]);
            write_bytes(&mut ctx, dst, hash.as_bytes())
        },
    )?;

    linker.func_wrap(
        m,
        abi::ED25519_VERIFY.name,
        |mut ctx: Ctx<'_>,
         key_ptr: i32,
         signature_ptr: i32,
         message_ptr: i32,
         message_len: i32|
         -> HostResult<i32> {
            let len = length(
                message_len,
                HASH_INPUT_BYTES_MAX,
                "signed message",
                "HASH_INPUT_BYTES_MAX",
            )?;
            charge(&mut ctx, |s| {
                s.host_call_base + s.ed25519_verify_base + s.ed25519_verify_per_byte * len as u64
            })?;
            let key: [u8; ED25519_PUBLIC_KEY_BYTES] = read_array(&ctx, key_ptr)?;
            let signature: [u8; ED25519_SIGNATURE_BYTES] = read_array(&ctx, signature_ptr)?;
            let range = memory_range(&ctx, message_ptr, len)?;
            let memory = ctx.data().memory.expect("memory is set before any call");
            let message = &memory.data(&ctx)[range];
            let valid = ed25519_dalek::VerifyingKey::from_bytes(&key).is_ok_and(|key| {
                key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
                    .is_ok()
            });
            Ok(if valid { status::TRUE } else { status::FALSE })
        },
    )?;

    linker.func_wrap(
        m,
        abi::CODE_UPGRADE.name,
        |mut ctx: Ctx<'_>,
         code_ptr: i32,
         code_len: i32,
         input_ptr: i32,
         input_len: i32|
         -> HostResult<()> {
            let code_len = length(code_len, CODE_BYTES_MAX, "code", "CODE_BYTES_MAX")?;
            let input_len = length(
                input_len,
                INPUT_BYTES_MAX,
                "migration input",
                "INPUT_BYTES_MAX",
            )?;
            let s = schedule(&ctx);
            let cost = s.host_call_base
                + s.deploy_base
                + s.deploy_per_byte * code_len as u64
                + s.copy(input_len);
            charge_gas(&mut ctx, cost)?;
            let code = read_bytes(&ctx, code_ptr, code_len)?;
            let input = read_bytes(&ctx, input_ptr, input_len)?;
            let runtime = ctx.data().tx().runtime.clone();
            let prepared = runtime.prepare_code(&code).map_err(stop)?;
            let code_key = keys::code(&prepared.code_hash);
            if ctx.data().tx().read(&code_key).map_err(fault)?.is_none() {
                ctx.data_mut().tx_mut().overlay.set(code_key, Some(code));
            }
            ctx.data_mut().frame.upgrade = Some((prepared.code_hash, input));
            Ok(())
        },
    )?;

    Ok(())
}

fn contract_call(
    ctx: &mut Ctx<'_>,
    address_ptr: i32,
    method_ptr: i32,
    method_len: i32,
    input_ptr: i32,
    input_len: i32,
    gas: i64,
) -> HostResult<i32> {
    let method_len = length(
        method_len,
        METHOD_NAME_BYTES_MAX,
        "method name",
        "METHOD_NAME_BYTES_MAX",
    )?;
    let input_len = length(input_len, INPUT_BYTES_MAX, "call input", "INPUT_BYTES_MAX")?;
    let s = schedule(ctx);
    let cost =
        s.host_call_base + s.contract_call_base + s.copy(ADDRESS_BYTES + method_len + input_len);
    let stack_host_call_bytes = s.stack_host_call_bytes as i32;
    charge_gas(ctx, cost)?;
    let callee = Address(read_array(ctx, address_ptr)?);
    let method = read_bytes(ctx, method_ptr, method_len)?;
    let input = read_bytes(ctx, input_ptr, input_len)?;

    let refusal = {
        let call_stack = &ctx.data().tx().call_stack;
        if call_stack.contains(&callee) {
            Some((
                status::REENTRANCY_REFUSED,
                format!("re-entrancy refused: {callee} is already on the call stack"),
            ))
        } else if call_stack.len() >= CALL_DEPTH_MAX {
            Some((
                status::CALL_DEPTH_EXCEEDED,
                format!("call depth would exceed CALL_DEPTH_MAX = {CALL_DEPTH_MAX}"),
            ))
        } else {
            None
        }
    };
    if let Some((code, message)) = refusal {
        ctx.data_mut().frame.call_result = message.into_bytes();
        return Ok(code);
    }
    let Ok(method) = String::from_utf8(method) else {
        ctx.data_mut().frame.call_result = b"method name is not UTF-8".to_vec();
        return Ok(status::METHOD_NOT_FOUND);
    };

    let available = gas_left(&mut *ctx);
    let forward = if gas <= 0 {
        available
    } else {
        available.min(gas as u64)
    };
    let stack = ctx
        .data()
        .stack
        .expect("stack global is set before any call");
    let stack_start = match stack.get(&mut *ctx) {
        Val::I32(sp) => sp.saturating_add(stack_host_call_bytes),
        _ => unreachable!("the stack global is an i32"),
    };

    let tx = ctx
        .data_mut()
        .tx
        .take()
        .expect("transaction state is present");
    let checkpoint = tx.overlay.checkpoint();
    let n_events = tx.events.len();
    let caller = ctx.data().frame.contract;
    let invocation = Invocation {
        caller,
        contract: callee,
        method: &method,
        input,
        gas: forward,
        stack_start,
        entry: Entry::Method,
    };
    let (mut tx, invoked) = invoke(tx, invocation);
    let (code, result) = match invoked.result {
        Ok(data) => (data.len() as i32, data),
        Err(Stop::Trap(trap)) => {
            tx.overlay.rollback(checkpoint);
            tx.events.truncate(n_events);
            let code = match trap.kind {
                TrapKind::NotAContract => status::NOT_A_CONTRACT,
                TrapKind::MethodNotFound => status::METHOD_NOT_FOUND,
                _ => status::CALLEE_FAILED,
            };
            (code, trap.caller_message().into_bytes())
        }
        Err(Stop::Fault(message)) => {
            ctx.data_mut().tx = Some(tx);
            return Err(wasmtime::Error::new(Fault(message)));
        }
    };
    ctx.data_mut().tx = Some(tx);
    ctx.data_mut().frame.call_result = result;
    let left = gas_left(&mut *ctx);
    set_gas_left(&mut *ctx, left - invoked.gas_used.min(left))?;
    Ok(code)
}
