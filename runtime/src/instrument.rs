//! Deterministic gas and stack accounting, injected into contract code.
//!
//! **Gas.** The module gets an `i64` global holding the gas left, exported
//! as [`GAS_GLOBAL_EXPORT`]. Following the [`crate::meter`] plan, each
//! function's prologue and the top of each loop subtract the price of the
//! region they start and trap once the counter goes negative:
//!
//! ```text
//! global.get $gas; i64.const PRICE; i64.sub; local.tee $t; global.set $gas
//! local.get $t; i64.const 0; i64.lt_s; if unreachable end
//! ```
//!
//! and operators with a size operand pay `size × unit price` the same way
//! just before they run. The runtime sets the counter before a call, host
//! functions charge through it, and an `unreachable` trap with a negative
//! counter is out of gas: only the charges trap with the counter below
//! zero, and they trap at once.
//!
//! **Stack.** Native stack use of compiled wasm depends on the compiler and
//! the machine, so a node cannot let the native stack decide when recursion
//! stops: two nodes could disagree. Instead every defined function is
//! rewritten to add its estimated frame size (from validation:
//! `stack_frame_base_bytes + stack_slot_bytes × (locals + max operand
//! height + extra slots)`) to an injected global on entry, trap when the
//! total passes [`STACK_BYTES_MAX`], and subtract it again on every exit:
//!
//! ```text
//! global.get $sp; i32.const FRAME; i32.add; global.set $sp
//! global.get $sp; i32.const STACK_BYTES_MAX; i32.gt_u; if unreachable end
//! block (result ...)  ;; the original body; `return` becomes epilogue + return
//! end
//! global.get $sp; i32.const FRAME; i32.sub; global.set $sp
//! ```
//!
//! Functions whose stack is bounded at deploy time are left without stack
//! accounting ([`ModuleInfo::stack_bounded`]: everything they can call is
//! known, nothing below them recurses, and their deepest chain of frames is
//! within [`STACK_BYTES_MAX`]). They only run on top of accounted frames, so
//! the stack stays within twice the budget while the hottest code — helpers
//! and the loops that call them — carries no accounting at all.
//!
//! Branches to the function's outermost label now land in the wrapping block
//! and fall through to the epilogue, so no branch needs renumbering. The
//! global is exported as [`STACK_GLOBAL_EXPORT`]: the runtime sets it before
//! a call (so nested contracts share one budget) and reads it after an
//! `unreachable` trap to tell stack exhaustion from a contract's own trap —
//! the prologue is the only place that traps with the counter over budget.
//!
//! Every function gets two scratch locals (an `i64` and an `i32`) for the
//! charges. The host's native stack limit (`max_wasm_stack`) is set well
//! above what the stack estimates allow, so it is never what stops a
//! contract.

use std::convert::Infallible;

use stele_host_api::limits::STACK_BYTES_MAX;
use wasm_encoder::reencode::{self, Reencode, utils};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, ExportKind, ExportSection, Function, GlobalSection,
    GlobalType, ImportSection, Instruction, Module, SectionId, TypeSection, ValType,
};

use crate::meter::{self, MeteringPlan};
use crate::schedule::GasSchedule;
use crate::validate::ModuleInfo;

/// Export name of the injected stack-accounting global.
pub const STACK_GLOBAL_EXPORT: &str = "__stele_stack";

/// Export name of the injected gas counter (gas left, an `i64`).
pub const GAS_GLOBAL_EXPORT: &str = "__stele_gas";

/// Version of the rewriting below; part of every compiled-code cache key.
pub const INSTRUMENTATION_VERSION: u32 = 3;

/// Rewrites a validated module with deterministic gas and stack
/// accounting.
///
/// `info` must come from validating `code` under `schedule`; the result is
/// again a valid module with the same behaviour, plus the accounting.
pub fn instrument(
    code: &[u8],
    info: &ModuleInfo,
    schedule: &GasSchedule,
) -> Result<Vec<u8>, reencode::Error> {
    let plan = meter::plan(code, schedule)?;
    let mut instrumenter = Instrumenter {
        info,
        schedule,
        plan,
        block_types: Vec::new(),
        n_params: Vec::new(),
        function_types: Vec::new(),
        n_defined_seen: 0,
        global_emitted: false,
    };
    let mut module = Module::new();
    instrumenter.parse_core_module(&mut module, wasmparser::Parser::new(0), code)?;
    Ok(module.finish())
}

struct Instrumenter<'a> {
    info: &'a ModuleInfo,
    schedule: &'a GasSchedule,
    plan: MeteringPlan,
    /// Block type wrapping a body, by the body's function type index.
    block_types: Vec<BlockType>,
    /// Parameter count by function type index.
    n_params: Vec<u32>,
    /// Type index of every function, imports first.
    function_types: Vec<u32>,
    n_defined_seen: usize,
    global_emitted: bool,
}

impl Instrumenter<'_> {
    fn stack_global(&self) -> u32 {
        self.info.n_globals
    }

    fn gas_global(&self) -> u32 {
        self.info.n_globals + 1
    }

    fn emit_globals(&mut self, globals: &mut GlobalSection) {
        let ty = GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        };
        globals.global(ty, &ConstExpr::i32_const(0));
        let ty = GlobalType {
            val_type: ValType::I64,
            mutable: true,
            shared: false,
        };
        // No gas until the runtime sets it.
        globals.global(ty, &ConstExpr::i64_const(0));
        self.global_emitted = true;
    }

    /// Subtracts the `i64` on top of the operand stack from the gas left and
    /// traps if that leaves it negative. `scratch` is an `i64` local.
    fn charge_top(&self, function: &mut Function, scratch: u32) {
        let gas = self.gas_global();
        function.instruction(&Instruction::I64Sub);
        function.instruction(&Instruction::LocalTee(scratch));
        function.instruction(&Instruction::GlobalSet(gas));
        function.instruction(&Instruction::LocalGet(scratch));
        function.instruction(&Instruction::I64Const(0));
        function.instruction(&Instruction::I64LtS);
        function.instruction(&Instruction::If(BlockType::Empty));
        function.instruction(&Instruction::Unreachable);
        function.instruction(&Instruction::End);
    }

    /// Charges a fixed price.
    fn charge(&self, function: &mut Function, price: u64, scratch: u32) {
        function.instruction(&Instruction::GlobalGet(self.gas_global()));
        function.instruction(&Instruction::I64Const(price as i64));
        self.charge_top(function, scratch);
    }

    /// Charges `unit` per unit of the `i32` size on top of the operand
    /// stack, leaving it there. `size` is an `i32` scratch local.
    fn charge_size(&self, function: &mut Function, unit: u64, scratch: u32, size: u32) {
        function.instruction(&Instruction::LocalTee(size));
        function.instruction(&Instruction::GlobalGet(self.gas_global()));
        function.instruction(&Instruction::LocalGet(size));
        function.instruction(&Instruction::I64ExtendI32U);
        if unit != 1 {
            function.instruction(&Instruction::I64Const(unit as i64));
            function.instruction(&Instruction::I64Mul);
        }
        self.charge_top(function, scratch);
    }

    fn adjust(&self, function: &mut Function, frame: i32, add: bool) {
        let global = self.stack_global();
        function.instruction(&Instruction::GlobalGet(global));
        function.instruction(&Instruction::I32Const(frame));
        function.instruction(if add {
            &Instruction::I32Add
        } else {
            &Instruction::I32Sub
        });
        function.instruction(&Instruction::GlobalSet(global));
    }
}

impl Reencode for Instrumenter<'_> {
    type Error = Infallible;

    fn parse_type_section(
        &mut self,
        types: &mut TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        let mut all_results = Vec::new();
        for group in section {
            let group = group?;
            for sub_type in group.types() {
                let (n_params, results) = match &sub_type.composite_type.inner {
                    wasmparser::CompositeInnerType::Func(ty) => {
                        (ty.params().len() as u32, ty.results().to_vec())
                    }
                    _ => (0, Vec::new()),
                };
                self.n_params.push(n_params);
                all_results.push(results);
            }
            self.parse_recursive_type_group(types.ty(), group)?;
        }
        // Multi-result bodies need a `[] -> results` type for their wrapping
        // block: append one per such function type.
        let mut next_idx = all_results.len() as u32;
        for results in all_results {
            let block_type = match results.as_slice() {
                [] => BlockType::Empty,
                [single] => BlockType::Result(self.val_type(*single)?),
                several => {
                    let several = several
                        .iter()
                        .map(|ty| self.val_type(*ty))
                        .collect::<Result<Vec<_>, _>>()?;
                    types.ty().function([], several);
                    next_idx += 1;
                    BlockType::FunctionType(next_idx - 1)
                }
            };
            self.block_types.push(block_type);
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        for import in section.clone().into_imports() {
            if let wasmparser::TypeRef::Func(type_idx) = import?.ty {
                self.function_types.push(type_idx);
            }
        }
        utils::parse_import_section(self, imports, section)
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        for type_idx in section.clone() {
            self.function_types.push(type_idx?);
        }
        utils::parse_function_section(self, functions, section)
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        utils::parse_global_section(self, globals, section)?;
        self.emit_globals(globals);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), reencode::Error> {
        let global_section_passed = matches!(
            before,
            None | Some(
                SectionId::Export
                    | SectionId::Start
                    | SectionId::Element
                    | SectionId::DataCount
                    | SectionId::Code
                    | SectionId::Data
            )
        );
        if !self.global_emitted && global_section_passed {
            let mut globals = GlobalSection::new();
            self.emit_globals(&mut globals);
            module.section(&globals);
        }
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        utils::parse_export_section(self, exports, section)?;
        exports.export(STACK_GLOBAL_EXPORT, ExportKind::Global, self.stack_global());
        exports.export(GAS_GLOBAL_EXPORT, ExportKind::Global, self.gas_global());
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error> {
        let defined_idx = self.n_defined_seen;
        self.n_defined_seen += 1;
        let bounded = self.info.stack_bounded[defined_idx];
        let function_idx = self.info.n_imported_functions as usize + defined_idx;
        let frame = self.info.frame_bytes[defined_idx] as i32;
        let type_idx = self.function_types[function_idx] as usize;
        let block_type = self.block_types[type_idx];

        // The original locals, then the two scratch locals of the charges.
        let mut locals = Vec::new();
        let mut n_locals = self.n_params[type_idx];
        let mut reader = body.get_locals_reader()?;
        for _ in 0..reader.get_count() {
            let (count, ty) = reader.read()?;
            n_locals += count;
            locals.push((count, self.val_type(ty)?));
        }
        let (gas_scratch, size_scratch) = (n_locals, n_locals + 1);
        locals.push((1, ValType::I64));
        locals.push((1, ValType::I32));
        let mut function = Function::new(locals);

        if !bounded {
            // Prologue: account for the frame, trap past the budget.
            self.adjust(&mut function, frame, true);
            function.instruction(&Instruction::GlobalGet(self.stack_global()));
            function.instruction(&Instruction::I32Const(STACK_BYTES_MAX as i32));
            function.instruction(&Instruction::I32GtU);
            function.instruction(&Instruction::If(BlockType::Empty));
            function.instruction(&Instruction::Unreachable);
            function.instruction(&Instruction::End);
            function.instruction(&Instruction::Block(block_type));
        }
        let plan = std::mem::take(&mut self.plan.functions[defined_idx]);
        if plan.entry > 0 {
            self.charge(&mut function, plan.entry, gas_scratch);
        }
        let mut loop_prices = plan.loops.into_iter();

        let mut operators = body.get_operators_reader()?;
        while !operators.eof() {
            let op = operators.read()?;
            if operators.eof() {
                debug_assert!(matches!(op, wasmparser::Operator::End));
                if !bounded {
                    // The body's own final `end` now closes the wrapping
                    // block; the epilogue follows on the fall-through path.
                    function.instruction(&Instruction::End);
                    self.adjust(&mut function, frame, false);
                }
                function.instruction(&Instruction::End);
                break;
            }
            if !bounded && matches!(op, wasmparser::Operator::Return) {
                self.adjust(&mut function, frame, false);
            }
            if let Some(unit) = self.schedule.per_unit_cost(&op).filter(|&unit| unit > 0) {
                self.charge_size(&mut function, unit, gas_scratch, size_scratch);
            }
            let is_loop = matches!(op, wasmparser::Operator::Loop { .. });
            function.instruction(&self.instruction(op)?);
            if is_loop {
                let price = loop_prices.next().expect("the plan prices every loop");
                if price > 0 {
                    self.charge(&mut function, price, gas_scratch);
                }
            }
        }
        code.function(&function);
        Ok(())
    }
}
