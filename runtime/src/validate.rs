//! Deploy-time validation of contract code against named limits.
//!
//! [`validate`] makes one pass over the module: every limit of
//! [`stele_host_api::limits`] is checked by our own code first, so that an
//! error names the limit, the value and, where there is one, the function
//! index; the module is then checked against the wasm specification by
//! wasmparser, configured with exactly the features Stele accepts. The pass
//! is linear in the module's size, and every limit that bounds compile time
//! (function count, parameters, locals, nesting depth, body size) is
//! enforced before the compiler sees the code.

use std::collections::BTreeSet;

use stele_host_api::{abi, limits};
use thiserror::Error;
use wasmparser::{
    CompositeInnerType, ExternalKind, FuncType, FunctionBody, Operator, Parser, Payload, RefType,
    TypeRef, ValType, Validator, WasmFeatures,
};

use crate::schedule::GasSchedule;

/// Why contract code was refused.
///
/// Messages are built only from this crate's own text and numbers, so they
/// are the same on every node and may be recorded in receipts; the one
/// exception, [`ValidationError::Malformed`], carries the message of the
/// pinned wasmparser version.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// A named limit was exceeded.
    #[error("{}{what} is {value}, over the limit {limit_name} = {limit}", in_function(*function_idx))]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// Name of the limit constant.
        limit_name: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        limit: u64,
        /// The function concerned, in the module's function index space.
        function_idx: Option<u32>,
    },
    /// The module uses a wasm proposal Stele does not enable.
    #[error("{}the {feature} proposal is not enabled", in_function(*function_idx))]
    DisabledFeature {
        /// The proposal's name, as in the wasm proposals repository.
        feature: &'static str,
        /// The function that uses it, if the use is in code.
        function_idx: Option<u32>,
    },
    /// The module is not valid wasm.
    #[error("malformed module at offset {offset}: {message}")]
    Malformed {
        /// Byte offset of the problem.
        offset: usize,
        /// The validator's description.
        message: String,
    },
    /// An import that is not part of the host ABI.
    #[error(
        "unknown import {module}::{name}; contracts may import only functions of module `stele`"
    )]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// A host function imported with the wrong signature.
    #[error("import stele::{name} has signature {found}, expected {expected}")]
    ImportSignature {
        /// Import name.
        name: String,
        /// The ABI's signature.
        expected: String,
        /// The module's signature.
        found: String,
    },
    /// A memory, table, global or tag import.
    #[error("import {module}::{name} is a {kind}; contracts may import only functions")]
    ImportKind {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// What kind of item it is.
        kind: &'static str,
    },
    /// A start function, which would run code at instantiation.
    #[error("function {function_idx}: start functions are not allowed")]
    StartFunction {
        /// The start function.
        function_idx: u32,
    },
    /// The module defines no memory.
    #[error("the module defines no memory; contracts need one, exported as `memory`")]
    MissingMemory,
    /// The module's memory is not exported as `memory`.
    #[error("the memory is not exported as `memory`")]
    MemoryNotExported,
    /// An export that is neither a method nor allowed.
    #[error("export `{name}` uses the reserved prefix `__stele`")]
    ReservedExport {
        /// The export's name.
        name: String,
    },
    /// Two exports with the same name.
    #[error("export `{name}` is defined twice")]
    DuplicateExport {
        /// The export's name.
        name: String,
    },
    /// An exported function that does not have the method signature.
    #[error(
        "function {function_idx}: exported as `{name}` with signature {found}; methods take and return nothing ([] -> [])"
    )]
    MethodSignature {
        /// The export's name.
        name: String,
        /// The exported function.
        function_idx: u32,
        /// Its signature.
        found: String,
    },
}

fn in_function(function_idx: Option<u32>) -> String {
    match function_idx {
        Some(idx) => format!("function {idx}: "),
        None => String::new(),
    }
}

/// What validation learnt about a module, for instrumentation and calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Number of imported functions (all from the host ABI).
    pub n_imported_functions: u32,
    /// Number of globals the module defines.
    pub n_globals: u32,
    /// Stack estimate of each defined function's frame, in bytes, in
    /// definition order.
    pub frame_bytes: Vec<u32>,
    /// Whether each defined function's stack is bounded at deploy time, so
    /// it needs no stack accounting: everything it can call is known
    /// (no `call_indirect`, no host function that runs wasm), there is no
    /// recursion below it, and the deepest chain of frame estimates it can
    /// build is within `STACK_BYTES_MAX`. Such a function only ever runs on
    /// top of accounted frames, adding at most that bound.
    pub stack_bounded: Vec<bool>,
    /// Names of the exported methods (`[] -> []` functions), sorted.
    pub methods: Vec<String>,
}

/// The wasm features Stele accepts: what stable Rust emits for
/// `wasm32-unknown-unknown` (bulk memory, sign extension, multi-value,
/// mutable globals, reference types, non-trapping float-to-int) and nothing
/// that could make execution depend on the machine. Reference-typed *values*
/// (`funcref` locals, `ref.func`) are left out with the engine's GC support;
/// `funcref` tables and `call_indirect` are in.
pub fn accepted_features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::FLOATS
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
}

/// The proposals whose operators [`accepted_features`] admits.
const ACCEPTED_PROPOSALS: &[&str] = &[
    "mvp",
    "sign_extension",
    "saturating_float_to_int",
    "bulk_memory",
    "reference_types",
];

macro_rules! define_proposal_of {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
        /// The wasm proposal that introduced an operator.
        fn proposal_of(op: &Operator<'_>) -> &'static str {
            match op {
                $( Operator::$op { .. } => stringify!($proposal), )*
                _ => "unknown",
            }
        }
    };
}
wasmparser::for_each_operator!(define_proposal_of);

fn limit(
    what: &'static str,
    limit_name: &'static str,
    value: u64,
    limit: usize,
    function_idx: Option<u32>,
) -> Result<(), ValidationError> {
    if value > limit as u64 {
        return Err(ValidationError::LimitExceeded {
            what,
            limit_name,
            value,
            limit: limit as u64,
            function_idx,
        });
    }
    Ok(())
}

fn malformed(error: wasmparser::BinaryReaderError) -> ValidationError {
    ValidationError::Malformed {
        offset: error.offset(),
        message: error.message().to_string(),
    }
}

fn check_val_type(ty: ValType, function_idx: Option<u32>) -> Result<(), ValidationError> {
    match ty {
        ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64 => Ok(()),
        ValType::V128 => Err(ValidationError::DisabledFeature {
            feature: "simd",
            function_idx,
        }),
        // Tables of `funcref` are fine; reference-typed values need the
        // engine's GC support, which Stele leaves out.
        ValType::Ref(_) => Err(ValidationError::DisabledFeature {
            feature: "gc",
            function_idx,
        }),
    }
}

fn check_ref_type(ty: RefType, function_idx: Option<u32>) -> Result<(), ValidationError> {
    if ty == RefType::FUNCREF || ty == RefType::EXTERNREF {
        Ok(())
    } else {
        Err(ValidationError::DisabledFeature {
            feature: "gc",
            function_idx,
        })
    }
}

fn signature(params: &[ValType], results: &[ValType]) -> String {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(|ty| ty.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("[{}] -> [{}]", list(params), list(results))
}

fn abi_signature(function: &abi::HostFunction) -> String {
    let list = |types: &[abi::ValType]| {
        types
            .iter()
            .map(|ty| match ty {
                abi::ValType::I32 => "i32",
                abi::ValType::I64 => "i64",
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[{}] -> [{}]",
        list(function.params),
        list(function.results)
    )
}

fn matches_abi(ty: &FuncType, function: &abi::HostFunction) -> bool {
    let same = |ours: &[ValType], abi: &[abi::ValType]| {
        ours.len() == abi.len()
            && ours.iter().zip(abi).all(|(ours, abi)| {
                matches!(
                    (ours, abi),
                    (ValType::I32, abi::ValType::I32) | (ValType::I64, abi::ValType::I64)
                )
            })
    };
    same(ty.params(), function.params) && same(ty.results(), function.results)
}

/// State of the single validation pass.
struct Pass<'s> {
    schedule: &'s GasSchedule,
    validator: Validator,
    /// Function types by type index; `None` for non-function types.
    types: Vec<Option<FuncType>>,
    /// Type index of every function, imports first.
    function_types: Vec<u32>,
    n_imported_functions: u32,
    n_globals: u32,
    n_memories: u32,
    n_locals_total: u64,
    frame_bytes: Vec<u32>,
    /// Defined functions each defined function calls directly.
    callees: Vec<Vec<u32>>,
    /// Whether each defined function calls indirectly or runs wasm through
    /// the host.
    calls_unknown: Vec<bool>,
    /// Per imported function: whether it can run wasm (a nested call, or
    /// an upgrade's migration).
    import_runs_wasm: Vec<bool>,
    export_names: BTreeSet<String>,
    methods: Vec<String>,
    memory_exported: bool,
    allocations: wasmparser::FuncValidatorAllocations,
}

/// Checks only the size limit, which is checked before any parsing.
pub fn validate_size(code: &[u8]) -> Result<(), ValidationError> {
    limit(
        "code size in bytes",
        "CODE_BYTES_MAX",
        code.len() as u64,
        limits::CODE_BYTES_MAX,
        None,
    )
}

/// Checks `code` against every deploy-time limit and the wasm specification.
///
/// The size limit is checked before any parsing. `schedule` provides the
/// stack-frame estimate: a function whose frame alone exceeds
/// `STACK_BYTES_MAX` is refused here rather than trapping at every call.
pub fn validate(code: &[u8], schedule: &GasSchedule) -> Result<ModuleInfo, ValidationError> {
    validate_size(code)?;
    let mut pass = Pass {
        schedule,
        validator: Validator::new_with_features(accepted_features()),
        types: Vec::new(),
        function_types: Vec::new(),
        n_imported_functions: 0,
        n_globals: 0,
        n_memories: 0,
        n_locals_total: 0,
        frame_bytes: Vec::new(),
        callees: Vec::new(),
        calls_unknown: Vec::new(),
        import_runs_wasm: Vec::new(),
        export_names: BTreeSet::new(),
        methods: Vec::new(),
        memory_exported: false,
        allocations: Default::default(),
    };
    for payload in Parser::new(0).parse_all(code) {
        let payload = payload.map_err(malformed)?;
        if let Payload::End(offset) = payload {
            pass.validator.end(offset).map_err(malformed)?;
            return pass.finish();
        }
        pass.payload(payload)?;
    }
    // `parse_all` always ends with `Payload::End` or an error.
    Err(ValidationError::Malformed {
        offset: code.len(),
        message: "unexpected end".into(),
    })
}

impl Pass<'_> {
    fn payload(&mut self, payload: Payload<'_>) -> Result<(), ValidationError> {
        match &payload {
            Payload::TypeSection(section) => {
                limit(
                    "types",
                    "TYPES_MAX",
                    u64::from(section.count()),
                    limits::TYPES_MAX,
                    None,
                )?;
                for group in section.clone() {
                    for sub_type in group.map_err(malformed)?.into_types() {
                        match sub_type.composite_type.inner {
                            CompositeInnerType::Func(ty) => {
                                for &val_type in ty.params().iter().chain(ty.results()) {
                                    check_val_type(val_type, None)?;
                                }
                                self.types.push(Some(ty));
                            }
                            _ => {
                                return Err(ValidationError::DisabledFeature {
                                    feature: "gc",
                                    function_idx: None,
                                });
                            }
                        }
                    }
                }
                // Parameter and result counts are checked per function
                // below, where the function index is known.
            }
            Payload::ImportSection(section) => {
                let mut n_imports = 0u64;
                for import in section.clone().into_imports() {
                    let import = import.map_err(malformed)?;
                    n_imports += 1;
                    limit(
                        "imports",
                        "IMPORTS_MAX",
                        n_imports,
                        limits::IMPORTS_MAX,
                        None,
                    )?;
                    self.import(import)?;
                }
            }
            Payload::FunctionSection(section) => {
                limit(
                    "defined functions",
                    "FUNCTIONS_MAX",
                    u64::from(section.count()),
                    limits::FUNCTIONS_MAX,
                    None,
                )?;
                for type_idx in section.clone() {
                    let type_idx = type_idx.map_err(malformed)?;
                    let function_idx = self.function_types.len() as u32;
                    self.check_function_type(type_idx, function_idx)?;
                    self.function_types.push(type_idx);
                }
            }
            Payload::TableSection(section) => {
                limit(
                    "tables",
                    "TABLES_MAX",
                    u64::from(section.count()),
                    limits::TABLES_MAX,
                    None,
                )?;
                for table in section.clone() {
                    let ty = table.map_err(malformed)?.ty;
                    if ty.table64 {
                        return Err(disabled("memory64"));
                    }
                    check_ref_type(ty.element_type, None)?;
                    let what = "table elements";
                    limit(
                        what,
                        "TABLE_ELEMENTS_MAX",
                        ty.initial,
                        limits::TABLE_ELEMENTS_MAX,
                        None,
                    )?;
                    if let Some(maximum) = ty.maximum {
                        limit(
                            what,
                            "TABLE_ELEMENTS_MAX",
                            maximum,
                            limits::TABLE_ELEMENTS_MAX,
                            None,
                        )?;
                    }
                }
            }
            Payload::MemorySection(section) => {
                for memory in section.clone() {
                    let ty = memory.map_err(malformed)?;
                    self.n_memories += 1;
                    if ty.memory64 {
                        return Err(disabled("memory64"));
                    }
                    if ty.shared {
                        return Err(disabled("threads"));
                    }
                    if ty.page_size_log2.is_some() {
                        return Err(disabled("custom_page_sizes"));
                    }
                    if self.n_memories as usize > limits::MEMORIES_MAX {
                        return Err(disabled("multi_memory"));
                    }
                    let pages = "memory pages";
                    limit(
                        pages,
                        "MEMORY_PAGES_MAX",
                        ty.initial,
                        limits::MEMORY_PAGES_MAX,
                        None,
                    )?;
                    if let Some(maximum) = ty.maximum {
                        limit(
                            pages,
                            "MEMORY_PAGES_MAX",
                            maximum,
                            limits::MEMORY_PAGES_MAX,
                            None,
                        )?;
                    }
                }
            }
            Payload::TagSection(_) => return Err(disabled("exceptions")),
            Payload::GlobalSection(section) => {
                limit(
                    "globals",
                    "GLOBALS_MAX",
                    u64::from(section.count()),
                    limits::GLOBALS_MAX,
                    None,
                )?;
                for global in section.clone() {
                    let global = global.map_err(malformed)?;
                    if global.ty.shared {
                        return Err(disabled("shared_everything_threads"));
                    }
                    check_val_type(global.ty.content_type, None)?;
                    self.n_globals += 1;
                }
            }
            Payload::ExportSection(section) => {
                limit(
                    "exports",
                    "EXPORTS_MAX",
                    u64::from(section.count()),
                    limits::EXPORTS_MAX,
                    None,
                )?;
                for export in section.clone() {
                    self.export(export.map_err(malformed)?)?;
                }
            }
            Payload::StartSection { func, .. } => {
                return Err(ValidationError::StartFunction {
                    function_idx: *func,
                });
            }
            Payload::ElementSection(section) => {
                let count = u64::from(section.count());
                limit(
                    "element segments",
                    "ELEMENT_SEGMENTS_MAX",
                    count,
                    limits::ELEMENT_SEGMENTS_MAX,
                    None,
                )?;
            }
            Payload::DataSection(section) => {
                let count = u64::from(section.count());
                limit(
                    "data segments",
                    "DATA_SEGMENTS_MAX",
                    count,
                    limits::DATA_SEGMENTS_MAX,
                    None,
                )?;
            }
            // The function validator is created from the body directly.
            Payload::CodeSectionEntry(body) => return self.function_body(body),
            _ => {}
        }
        self.validator.payload(&payload).map_err(malformed)?;
        Ok(())
    }

    fn import(&mut self, import: wasmparser::Import<'_>) -> Result<(), ValidationError> {
        let kind = match import.ty {
            TypeRef::Func(type_idx) | TypeRef::FuncExact(type_idx) => {
                if import.module != abi::MODULE {
                    return Err(ValidationError::UnknownImport {
                        module: import.module.into(),
                        name: import.name.into(),
                    });
                }
                let Some(function) = abi::find(import.name) else {
                    return Err(ValidationError::UnknownImport {
                        module: import.module.into(),
                        name: import.name.into(),
                    });
                };
                let ty = self.func_type(type_idx)?;
                if !matches_abi(ty, function) {
                    return Err(ValidationError::ImportSignature {
                        name: import.name.into(),
                        expected: abi_signature(function),
                        found: signature(ty.params(), ty.results()),
                    });
                }
                self.function_types.push(type_idx);
                self.n_imported_functions += 1;
                let runs_wasm =
                    [abi::CONTRACT_CALL.name, abi::CODE_UPGRADE.name].contains(&import.name);
                self.import_runs_wasm.push(runs_wasm);
                return Ok(());
            }
            TypeRef::Memory(_) => "memory",
            TypeRef::Table(_) => "table",
            TypeRef::Global(_) => "global",
            TypeRef::Tag(_) => "tag",
        };
        Err(ValidationError::ImportKind {
            module: import.module.into(),
            name: import.name.into(),
            kind,
        })
    }

    fn func_type(&self, type_idx: u32) -> Result<&FuncType, ValidationError> {
        match self.types.get(type_idx as usize) {
            Some(Some(ty)) => Ok(ty),
            _ => Err(ValidationError::Malformed {
                offset: 0,
                message: format!("type index {type_idx} is not a function type"),
            }),
        }
    }

    fn check_function_type(&self, type_idx: u32, function_idx: u32) -> Result<(), ValidationError> {
        let ty = self.func_type(type_idx)?;
        let idx = Some(function_idx);
        let n_params = ty.params().len() as u64;
        let n_results = ty.results().len() as u64;
        limit(
            "parameters",
            "FUNCTION_PARAMS_MAX",
            n_params,
            limits::FUNCTION_PARAMS_MAX,
            idx,
        )?;
        limit(
            "results",
            "FUNCTION_RESULTS_MAX",
            n_results,
            limits::FUNCTION_RESULTS_MAX,
            idx,
        )
    }

    fn export(&mut self, export: wasmparser::Export<'_>) -> Result<(), ValidationError> {
        let name = export.name;
        if !self.export_names.insert(name.to_string()) {
            return Err(ValidationError::DuplicateExport { name: name.into() });
        }
        if name.starts_with(abi::RESERVED_EXPORT_PREFIX) {
            return Err(ValidationError::ReservedExport { name: name.into() });
        }
        match export.kind {
            ExternalKind::Func | ExternalKind::FuncExact => {
                let function_idx = export.index;
                let Some(&type_idx) = self.function_types.get(function_idx as usize) else {
                    return Err(ValidationError::Malformed {
                        offset: 0,
                        message: format!("export `{name}` names unknown function {function_idx}"),
                    });
                };
                let ty = self.func_type(type_idx)?;
                if !ty.params().is_empty() || !ty.results().is_empty() {
                    return Err(ValidationError::MethodSignature {
                        name: name.into(),
                        function_idx,
                        found: signature(ty.params(), ty.results()),
                    });
                }
                let len = name.len() as u64;
                let idx = Some(function_idx);
                limit(
                    "method name bytes",
                    "METHOD_NAME_BYTES_MAX",
                    len,
                    limits::METHOD_NAME_BYTES_MAX,
                    idx,
                )?;
                self.methods.push(name.into());
            }
            ExternalKind::Memory => {
                if name == abi::MEMORY_EXPORT {
                    self.memory_exported = true;
                }
            }
            ExternalKind::Tag => return Err(disabled("exceptions")),
            ExternalKind::Table | ExternalKind::Global => {}
        }
        Ok(())
    }

    fn function_body(&mut self, body: &FunctionBody<'_>) -> Result<(), ValidationError> {
        let defined_idx = self.frame_bytes.len() as u32;
        let function_idx = self.n_imported_functions + defined_idx;
        let idx = Some(function_idx);
        let body_bytes = body.range().len() as u64;
        limit(
            "body bytes",
            "FUNCTION_BODY_BYTES_MAX",
            body_bytes,
            limits::FUNCTION_BODY_BYTES_MAX,
            idx,
        )?;

        let to_validate = self.validator.code_section_entry(body).map_err(malformed)?;
        let mut func = to_validate.into_validator(std::mem::take(&mut self.allocations));
        let mut n_locals = u64::from(func.len_locals());
        let mut locals = body.get_locals_reader().map_err(malformed)?;
        for _ in 0..locals.get_count() {
            let offset = locals.original_position();
            let (count, ty) = locals.read().map_err(malformed)?;
            n_locals += u64::from(count);
            limit(
                "locals",
                "FUNCTION_LOCALS_MAX",
                n_locals,
                limits::FUNCTION_LOCALS_MAX,
                idx,
            )?;
            check_val_type(ty, idx)?;
            func.define_locals(offset, count, ty).map_err(malformed)?;
        }
        self.n_locals_total += n_locals;
        limit(
            "locals in the module",
            "LOCALS_TOTAL_MAX",
            self.n_locals_total,
            limits::LOCALS_TOTAL_MAX,
            None,
        )?;

        let mut operators = body.get_operators_reader().map_err(malformed)?;
        let mut max_height = 0u32;
        let mut callees = Vec::new();
        let mut calls_unknown = false;
        while !operators.eof() {
            let offset = operators.original_position();
            let op = operators.read().map_err(malformed)?;
            let proposal = proposal_of(&op);
            if !ACCEPTED_PROPOSALS.contains(&proposal) {
                return Err(ValidationError::DisabledFeature {
                    feature: proposal,
                    function_idx: idx,
                });
            }
            match op {
                Operator::Call { function_index } => {
                    match self.import_runs_wasm.get(function_index as usize) {
                        Some(&runs_wasm) => calls_unknown |= runs_wasm,
                        None => callees.push(function_index - self.n_imported_functions),
                    }
                }
                Operator::CallIndirect { .. } => calls_unknown = true,
                _ => {}
            }
            func.op(offset, &op).map_err(malformed)?;
            let depth = u64::from(func.control_stack_height());
            limit(
                "control nesting depth",
                "CONTROL_DEPTH_MAX",
                depth,
                limits::CONTROL_DEPTH_MAX,
                idx,
            )?;
            max_height = max_height.max(func.operand_stack_height());
        }
        operators.finish().map_err(malformed)?;
        self.allocations = func.into_allocations();

        // The instrumentation's two scratch locals and up to three operand
        // slots of its own.
        let n_slots = n_locals + u64::from(max_height) + 2 + 3;
        let frame = self.schedule.frame_bytes(n_slots);
        limit(
            "stack frame estimate in bytes",
            "STACK_BYTES_MAX",
            frame,
            limits::STACK_BYTES_MAX,
            idx,
        )?;
        self.frame_bytes.push(frame as u32);
        callees.sort_unstable();
        callees.dedup();
        self.callees.push(callees);
        self.calls_unknown.push(calls_unknown);
        Ok(())
    }

    fn finish(mut self) -> Result<ModuleInfo, ValidationError> {
        if self.n_memories == 0 {
            return Err(ValidationError::MissingMemory);
        }
        if !self.memory_exported {
            return Err(ValidationError::MemoryNotExported);
        }
        self.methods.sort();
        let stack_bounded = self.stack_bounded();
        Ok(ModuleInfo {
            n_imported_functions: self.n_imported_functions,
            n_globals: self.n_globals,
            frame_bytes: self.frame_bytes,
            stack_bounded,
            methods: self.methods,
        })
    }
}

impl Pass<'_> {
    /// Which functions have a stack bound known at deploy time (see
    /// [`ModuleInfo::stack_bounded`]): depth-first over direct calls, each
    /// function's deepest chain computed once its callees' are; a callee
    /// still open is recursion.
    fn stack_bounded(&self) -> Vec<bool> {
        // Deepest chain of frame estimates from each function, if bounded.
        let mut deepest: Vec<Option<u64>> = vec![None; self.frame_bytes.len()];
        let visited = crate::callgraph::post_order(&self.callees, |function| {
            if self.calls_unknown[function] {
                return Ok::<(), std::convert::Infallible>(());
            }
            let mut below = Some(0u64);
            for &callee in &self.callees[function] {
                below = match (below, deepest[callee as usize]) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            deepest[function] = below
                .map(|below| below + u64::from(self.frame_bytes[function]))
                .filter(|&total| total <= limits::STACK_BYTES_MAX as u64);
            Ok(())
        });
        let Ok(()) = visited;
        deepest.iter().map(Option::is_some).collect()
    }
}

fn disabled(feature: &'static str) -> ValidationError {
    ValidationError::DisabledFeature {
        feature,
        function_idx: None,
    }
}
