//! The depth-first walk over a module's direct calls that the deploy-time
//! analyses share: stack bounds in `validate`, gas folding in `meter`.

/// Calls `visit` on every defined function in post-order: a function comes
/// after every callee reachable from it, except callees on a cycle through
/// it, which are visited later (an analysis reading their result at that
/// point sees "unknown", which is what recursion must mean). `callees[f]`
/// lists the defined functions `f` calls directly, by definition index.
/// Iterative, so call chains as deep as a module allows need no native
/// stack.
pub(crate) fn post_order<E>(
    callees: &[Vec<u32>],
    mut visit: impl FnMut(usize) -> Result<(), E>,
) -> Result<(), E> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; callees.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..callees.len() {
        if marks[root] != Mark::New {
            continue;
        }
        marks[root] = Mark::Open;
        stack.push((root, 0));
        while let Some(&mut (function, ref mut next)) = stack.last_mut() {
            if let Some(&callee) = callees[function].get(*next) {
                *next += 1;
                if marks[callee as usize] == Mark::New {
                    marks[callee as usize] = Mark::Open;
                    stack.push((callee as usize, 0));
                }
                continue;
            }
            stack.pop();
            marks[function] = Mark::Done;
            visit(function)?;
        }
    }
    Ok(())
}
