//! Deterministic stack accounting, injected into contract code.
//!
//! Native stack use of compiled wasm depends on the compiler and the
//! machine, so a node cannot let the native stack decide when recursion
//! stops: two nodes could disagree. Instead every defined function is
//! rewritten to add its estimated frame size (from validation:
//! `stack_frame_base_bytes + stack_slot_bytes × (locals + max operand
//! height + 2)`) to an injected global on entry, trap when the total passes
//! [`STACK_BYTES_MAX`], and subtract it again on every exit:
//!
//! ```text
//! global.get $sp; i32.const FRAME; i32.add; global.set $sp
//! global.get $sp; i32.const STACK_BYTES_MAX; i32.gt_u; if unreachable end
//! block (result ...)  ;; the original body; `return` becomes epilogue + return
//! end
//! global.get $sp; i32.const FRAME; i32.sub; global.set $sp
//! ```
//!
//! Leaf functions (no calls to wasm, directly, indirectly or through a
//! nested contract call) are left as they are: at most one leaf frame sits
//! above the accounted ones, and its size is bounded by validation, so
//! skipping them keeps the bound while sparing the hottest small helpers.
//!
//! Branches to the function's outermost label now land in the wrapping block
//! and fall through to the epilogue, so no branch needs renumbering. The
//! global is exported as [`STACK_GLOBAL_EXPORT`]: the runtime sets it before
//! a call (so nested contracts share one budget) and reads it after an
//! `unreachable` trap to tell stack exhaustion from a contract's own trap —
//! the prologue is the only place that traps with the counter over budget.
//!
//! The host's native stack limit (`max_wasm_stack`) is set well above what
//! these estimates allow, so it is never what stops a contract.

use std::convert::Infallible;

use stele_host_api::limits::STACK_BYTES_MAX;
use wasm_encoder::reencode::{self, Reencode, utils};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, ExportKind, ExportSection, Function, GlobalSection,
    GlobalType, ImportSection, Instruction, Module, SectionId, TypeSection, ValType,
};

use crate::validate::ModuleInfo;

/// Export name of the injected stack-accounting global.
pub const STACK_GLOBAL_EXPORT: &str = "__stele_stack";

/// Version of the rewriting below; part of every compiled-code cache key.
pub const INSTRUMENTATION_VERSION: u32 = 2;

/// Rewrites a validated module with deterministic stack accounting.
///
/// `info` must come from validating `code`; the result is again a valid
/// module with the same behaviour, plus the accounting.
pub fn instrument(code: &[u8], info: &ModuleInfo) -> Result<Vec<u8>, reencode::Error> {
    let mut instrumenter = Instrumenter {
        info,
        block_types: Vec::new(),
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
    /// Block type wrapping a body, by the body's function type index.
    block_types: Vec<BlockType>,
    /// Type index of every function, imports first.
    function_types: Vec<u32>,
    n_defined_seen: usize,
    global_emitted: bool,
}

impl Instrumenter<'_> {
    fn stack_global(&self) -> u32 {
        self.info.n_globals
    }

    fn emit_stack_global(&mut self, globals: &mut GlobalSection) {
        let ty = GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        };
        globals.global(ty, &ConstExpr::i32_const(0));
        self.global_emitted = true;
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
                all_results.push(match &sub_type.composite_type.inner {
                    wasmparser::CompositeInnerType::Func(ty) => ty.results().to_vec(),
                    _ => Vec::new(),
                });
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
        self.emit_stack_global(globals);
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
            self.emit_stack_global(&mut globals);
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
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error> {
        let defined_idx = self.n_defined_seen;
        self.n_defined_seen += 1;
        if self.info.leaf[defined_idx] {
            return utils::parse_function_body(self, code, body);
        }
        let function_idx = self.info.n_imported_functions as usize + defined_idx;
        let frame = self.info.frame_bytes[defined_idx] as i32;
        let type_idx = self.function_types[function_idx] as usize;
        let block_type = self.block_types[type_idx];

        let mut function = self.new_function_with_parsed_locals(&body)?;
        // Prologue: account for the frame, trap past the budget.
        self.adjust(&mut function, frame, true);
        function.instruction(&Instruction::GlobalGet(self.stack_global()));
        function.instruction(&Instruction::I32Const(STACK_BYTES_MAX as i32));
        function.instruction(&Instruction::I32GtU);
        function.instruction(&Instruction::If(BlockType::Empty));
        function.instruction(&Instruction::Unreachable);
        function.instruction(&Instruction::End);
        function.instruction(&Instruction::Block(block_type));

        let mut operators = body.get_operators_reader()?;
        while !operators.eof() {
            let op = operators.read()?;
            if operators.eof() {
                // The body's own final `end` now closes the wrapping block.
                debug_assert!(matches!(op, wasmparser::Operator::End));
                function.instruction(&Instruction::End);
                break;
            }
            if matches!(op, wasmparser::Operator::Return) {
                self.adjust(&mut function, frame, false);
            }
            function.instruction(&self.instruction(op)?);
        }
        // Epilogue on the fall-through path, then the function's `end`.
        self.adjust(&mut function, frame, false);
        function.instruction(&Instruction::End);
        code.function(&function);
        Ok(())
    }
}
