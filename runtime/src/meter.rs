//! Where gas is charged: the plan the instrumentation writes into code.
//!
//! Gas is charged in advance, once per *region*, for the most expensive
//! path through it:
//!
//! * the **entry region** of a function is every operator outside its
//!   loops; in structured wasm each of them runs at most once per call, so
//!   one charge in the prologue pays for all of them;
//! * the **body of each loop** (minus nested loops) runs at most once per
//!   iteration, so one charge right after the `loop` pays for an iteration.
//!
//! A region's price is its longest path: along one execution path the
//! operators' costs ([`GasSchedule::operator_cost`], plus
//! [`GasSchedule::function_entry`] at the start of a function) are summed,
//! an `if`
//! costs its dearer arm, and branches carry their cost to the label they
//! reach. Code after a nested loop continues the outer region's path from
//! where the loop was entered, since the loop pays for itself.
//!
//! **Folding.** A function with no loops, no `call_indirect`, not exported
//! and not in a table, whose callees are all folded or host functions, has
//! a fixed worst-case cost. Its callers add that cost to their own region
//! at the call site and the function itself charges nothing: small helpers
//! (the bulk of compiled Rust) cost no metering instructions at all.
//! Recursion is never folded (a callee still on the search stack is not
//! folded) and neither is anything dearer than [`FOLD_COST_MAX`].
//!
//! Operators with a size operand (`memory.copy`, `memory.fill`,
//! `memory.init`, `table.*`) are also charged per byte or element just
//! before they run; host functions charge themselves.
//!
//! The plan depends on nothing but the code and the schedule, so every node
//! charges the same gas at the same points.

use wasmparser::{BinaryReaderError, ElementItems, FunctionBody, Operator, Parser, Payload};

use crate::schedule::GasSchedule;

/// Most gas a folded function may cost; dearer ones charge themselves.
pub const FOLD_COST_MAX: u64 = 1 << 20;

/// Largest single charge written into code: beyond it a region is simply
/// unaffordable (no gas limit reaches it), and the counter cannot overflow.
pub const CHARGE_MAX: u64 = 1 << 48;

/// The charges of one defined function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionPlan {
    /// Charged in the prologue; 0 when folded into callers (or free).
    pub entry: u64,
    /// Charged at the top of each loop, in the order the loops appear.
    pub loops: Vec<u64>,
}

/// The charges of every defined function, in definition order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteringPlan {
    /// One plan per defined function.
    pub functions: Vec<FunctionPlan>,
}

/// What the first scan learns about a defined function.
struct Scan<'a> {
    body: FunctionBody<'a>,
    has_loop: bool,
    calls_indirect: bool,
    /// Defined functions it calls directly, by definition index.
    callees: Vec<u32>,
}

/// Plans the charges for `code`, a module that passed validation.
pub fn plan(code: &[u8], schedule: &GasSchedule) -> Result<MeteringPlan, BinaryReaderError> {
    let mut n_imported = 0u32;
    let mut scans = Vec::new();
    let mut escaping = Vec::new();
    for payload in Parser::new(0).parse_all(code) {
        match payload? {
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    if matches!(import?.ty, wasmparser::TypeRef::Func(_)) {
                        n_imported += 1;
                    }
                }
            }
            Payload::ExportSection(section) => {
                for export in section {
                    let export = export?;
                    if matches!(export.kind, wasmparser::ExternalKind::Func) {
                        escaping.push(export.index);
                    }
                }
            }
            Payload::ElementSection(section) => {
                for element in section {
                    match element?.items {
                        ElementItems::Functions(functions) => {
                            for function in functions {
                                escaping.push(function?);
                            }
                        }
                        ElementItems::Expressions(_, expressions) => {
                            for expression in expressions {
                                for op in expression?.get_operators_reader() {
                                    if let Operator::RefFunc { function_index } = op? {
                                        escaping.push(function_index);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Payload::CodeSectionEntry(body) => scans.push(scan(body, n_imported)?),
            _ => {}
        }
    }

    let n_defined = scans.len();
    let mut foldable: Vec<bool> = scans
        .iter()
        .map(|scan| !scan.has_loop && !scan.calls_indirect)
        .collect();
    for function_idx in escaping {
        if let Some(defined) = function_idx.checked_sub(n_imported) {
            if let Some(flag) = foldable.get_mut(defined as usize) {
                *flag = false;
            }
        }
    }

    // Each function is planned once all its callees are; a callee not yet
    // planned is on a cycle, and the caller treats it as charging for
    // itself.
    let callees: Vec<Vec<u32>> = scans
        .iter_mut()
        .map(|scan| std::mem::take(&mut scan.callees))
        .collect();
    let mut folded: Vec<Option<u64>> = vec![None; n_defined];
    let mut plans: Vec<Option<FunctionPlan>> = vec![None; n_defined];
    crate::callgraph::post_order(&callees, |function| {
        let callees_folded = callees[function]
            .iter()
            .all(|&callee| folded[callee as usize].is_some());
        let (entry, loops) = regions(&scans[function].body, n_imported, &folded, schedule)?;
        let fold = foldable[function] && callees_folded && entry <= FOLD_COST_MAX;
        folded[function] = fold.then_some(entry);
        plans[function] = Some(FunctionPlan {
            entry: if fold { 0 } else { entry },
            loops,
        });
        Ok(())
    })?;
    Ok(MeteringPlan {
        functions: plans
            .into_iter()
            .map(|plan| plan.expect("every function is planned"))
            .collect(),
    })
}

fn scan(body: FunctionBody<'_>, n_imported: u32) -> Result<Scan<'_>, BinaryReaderError> {
    let mut scan = Scan {
        body: body.clone(),
        has_loop: false,
        calls_indirect: false,
        callees: Vec::new(),
    };
    for op in body.get_operators_reader()? {
        match op? {
            Operator::Loop { .. } => scan.has_loop = true,
            Operator::CallIndirect { .. } => scan.calls_indirect = true,
            Operator::Call { function_index } if function_index >= n_imported => {
                scan.callees.push(function_index - n_imported)
            }
            _ => {}
        }
    }
    scan.callees.sort_unstable();
    scan.callees.dedup();
    Ok(scan)
}

/// A control frame of the longest-path walk.
struct Label {
    /// Region whose path a branch to this label continues.
    region: usize,
    /// Dearest path that reaches the end of this block by a branch.
    exit: Option<u64>,
    kind: LabelKind,
}

enum LabelKind {
    Block,
    Loop,
    If { at_if: Option<u64>, has_else: bool },
}

/// A region on the walk's stack: the path cost so far (`None` where the
/// code is unreachable) and the dearest seen.
struct Region {
    /// Where its price goes: `None` for the entry region, else a loop.
    loop_idx: Option<usize>,
    cur: Option<u64>,
    max: u64,
}

/// Prices a function's entry region and each of its loops.
fn regions(
    body: &FunctionBody<'_>,
    n_imported: u32,
    folded: &[Option<u64>],
    schedule: &GasSchedule,
) -> Result<(u64, Vec<u64>), BinaryReaderError> {
    let mut loops: Vec<u64> = Vec::new();
    let entered = schedule.function_entry;
    let mut regions = vec![Region {
        loop_idx: None,
        cur: Some(entered),
        max: entered,
    }];
    // The function's own label: a branch to it is a return.
    let mut labels = vec![Label {
        region: 0,
        exit: None,
        kind: LabelKind::Block,
    }];
    let mut entry = 0;
    for op in body.get_operators_reader()? {
        let op = op?;
        let cost = match &op {
            Operator::Call { function_index } => {
                let callee = function_index.checked_sub(n_imported);
                let inner = callee.and_then(|callee| folded[callee as usize]);
                schedule
                    .operator_cost(&op)
                    .saturating_add(inner.unwrap_or(0))
            }
            _ => schedule.operator_cost(&op),
        };
        let top = regions.len() - 1;
        let region = &mut regions[top];
        region.cur = region.cur.map(|cur| cur.saturating_add(cost));
        region.max = region.max.max(region.cur.unwrap_or(0));
        match op {
            Operator::Block { .. } => labels.push(Label {
                region: top,
                exit: None,
                kind: LabelKind::Block,
            }),
            Operator::Loop { .. } => {
                labels.push(Label {
                    region: top + 1,
                    exit: None,
                    kind: LabelKind::Loop,
                });
                regions.push(Region {
                    loop_idx: Some(loops.len()),
                    cur: Some(0),
                    max: 0,
                });
                loops.push(0);
            }
            Operator::If { .. } => labels.push(Label {
                region: top,
                exit: None,
                kind: LabelKind::If {
                    at_if: regions[top].cur,
                    has_else: false,
                },
            }),
            Operator::Else => {
                let label = labels.last_mut().expect("validated: else closes an if");
                label.exit = join(label.exit, regions[top].cur);
                if let LabelKind::If { at_if, has_else } = &mut label.kind {
                    regions[top].cur = *at_if;
                    *has_else = true;
                }
            }
            Operator::End => {
                let label = labels.pop().expect("validated: end closes a label");
                match label.kind {
                    LabelKind::Block => {
                        regions[top].cur = join(regions[top].cur, label.exit);
                    }
                    LabelKind::If { at_if, has_else } => {
                        let mut cur = join(regions[top].cur, label.exit);
                        if !has_else {
                            cur = join(cur, at_if);
                        }
                        regions[top].cur = cur;
                    }
                    LabelKind::Loop => {
                        let inner = regions.pop().expect("a loop has its region");
                        let idx = inner.loop_idx.expect("a loop region has an index");
                        loops[idx] = inner.max.min(CHARGE_MAX);
                        // Falling out of the loop continues the outer path
                        // from where the loop was entered.
                        let outer = regions.last_mut().expect("loops nest in a function");
                        if inner.cur.is_none() {
                            outer.cur = None;
                        }
                    }
                }
                if labels.is_empty() {
                    entry = regions[0].max.min(CHARGE_MAX);
                }
            }
            Operator::Br { relative_depth } => {
                branch(&mut labels, &regions, relative_depth);
                regions[top].cur = None;
            }
            Operator::BrIf { relative_depth } => branch(&mut labels, &regions, relative_depth),
            Operator::BrTable { targets } => {
                for depth in targets.targets() {
                    branch(&mut labels, &regions, depth?);
                }
                branch(&mut labels, &regions, targets.default());
                regions[top].cur = None;
            }
            Operator::Return | Operator::Unreachable => regions[top].cur = None,
            _ => {}
        }
    }
    Ok((entry, loops))
}

/// The dearer of two paths, either possibly absent.
fn join(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Carries the current path to the label `depth` levels out.
fn branch(labels: &mut [Label], regions: &[Region], depth: u32) {
    let here = regions.last().expect("a region is always open").cur;
    if here.is_none() {
        return;
    }
    let idx = labels.len() - 1 - depth as usize;
    let label = &mut labels[idx];
    if matches!(label.kind, LabelKind::Loop) {
        // Back to a loop's top, which charges again.
        return;
    }
    // Nested loops pay for themselves: the label's own region continues
    // from where it entered them.
    label.exit = join(label.exit, regions[label.region].cur);
}
