//! Positions boa's stacks leave out. boa 0.22 records a source position for
//! calls, property accesses, assignments and `throw`, but not for a bare
//! name, so `nope` at the top of a script reads `at <main> (<repl>:?:?)`.
//! For a `ReferenceError: x is not defined` the name itself says where to
//! look: its first use in the source.

use std::ops::ControlFlow;

use boa_engine::ast::expression::Identifier;
use boa_engine::ast::scope::Scope;
use boa_engine::ast::visitor::{VisitWith, Visitor};
use boa_engine::ast::Spanned;
use boa_engine::interner::{Interner, Sym};
use boa_engine::parser::Parser;
use boa_engine::Source;

/// What boa writes where it has no position.
const UNKNOWN: &str = ":?:?)";

/// `stack` with its first frame's unknown position replaced by where
/// `message`'s undefined name is first used in `code` (a script named
/// `name`); unchanged when the position is known or cannot be found. In a
/// snippet that awaits (`awaited`, run inside an async function, see
/// [`super::repl_await`]) a first frame on line 1 is the wrapper's, not the
/// name's, and is replaced too; the wrapper's own nameless native frame is
/// dropped.
pub fn fill_unknown(stack: String, message: &str, name: &str, code: &str, awaited: bool) -> String {
    let stack = if awaited { drop_wrapper_frames(&stack) } else { stack };
    let unknown = format!("({name}{UNKNOWN}");
    let wrapper = format!("({name}:1:");
    let Some(first_frame) = stack
        .lines()
        .nth(1)
        .filter(|frame| frame.ends_with(&unknown) || (awaited && frame.contains(&wrapper)))
        .map(str::to_owned)
    else {
        return stack;
    };
    let Some(missing) = message.strip_prefix("ReferenceError: ").and_then(|m| m.strip_suffix(" is not defined")) else {
        return stack;
    };
    let Some((line, column)) = first_use(code, missing, awaited) else { return stack };
    let Some(open) = first_frame.rfind(&format!("({name}:")) else { return stack };
    let known = format!("{}({name}:{line}:{column})", &first_frame[..open]);
    stack.replacen(&first_frame, &known, 1)
}

/// Drops the nameless native frames boa shows for a resumed async function.
fn drop_wrapper_frames(stack: &str) -> String {
    stack.lines().filter(|line| line.trim() != "at  (native)").collect::<Vec<_>>().join("\n")
}

/// The line and column of the first identifier `wanted` in `code`, read
/// as an async function's body when it `awaited`.
fn first_use(code: &str, wanted: &str, awaited: bool) -> Option<(u32, u32)> {
    let mut interner = Interner::default();
    let mut parser = Parser::new(Source::from_bytes(code));
    if awaited {
        let body = parser.parse_function_body(&mut interner, false, true).ok()?;
        first_in(&body, &interner, wanted)
    } else {
        let script = parser.parse_script(&Scope::new_global(), &mut interner).ok()?;
        first_in(&script, &interner, wanted)
    }
}

/// The line and column of the first identifier `wanted` in `node`.
fn first_in<N: VisitWith>(node: &N, interner: &Interner, wanted: &str) -> Option<(u32, u32)> {
    let mut finder = Finder { wanted: interner.get(wanted)?, first: None };
    let _ = node.visit_with(&mut finder);
    finder.first.map(|p| (p.line_number(), p.column_number()))
}

struct Finder {
    wanted: Sym,
    first: Option<boa_engine::ast::Position>,
}

impl<'ast> Visitor<'ast> for Finder {
    type BreakTy = ();

    fn visit_identifier(&mut self, node: &'ast Identifier) -> ControlFlow<Self::BreakTy> {
        if node.sym() == self.wanted {
            let at = node.span().start();
            let earlier = self.first.is_none_or(|first| {
                (at.line_number(), at.column_number()) < (first.line_number(), first.column_number())
            });
            if earlier {
                self.first = Some(at);
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undefined_name_at_the_top_gets_the_position_of_its_first_use() {
        let stack = "ReferenceError: nope is not defined\n    at <main> (<repl>:?:?)".to_owned();
        let filled =
            fill_unknown(stack, "ReferenceError: nope is not defined", "<repl>", "let a = 1;\n  a + nope", false);
        assert_eq!(filled, "ReferenceError: nope is not defined\n    at <main> (<repl>:2:7)");
    }

    #[test]
    fn in_an_awaiting_snippet_the_wrapper_frame_gives_way_to_the_name() {
        let stack = "ReferenceError: m is not defined\n    at <main> (<repl>:1:14)\n    at  (native)".to_owned();
        let filled = fill_unknown(stack, "ReferenceError: m is not defined", "<repl>", "await null;\nm", true);
        assert_eq!(filled, "ReferenceError: m is not defined\n    at <main> (<repl>:2:1)");
    }

    #[test]
    fn known_positions_other_errors_and_unparsable_code_are_left_alone() {
        let known = "ReferenceError: x is not defined\n    at <main> (<repl>:1:5)".to_owned();
        assert_eq!(fill_unknown(known.clone(), "ReferenceError: x is not defined", "<repl>", "x", false), known);
        let other = "TypeError: t\n    at <main> (<repl>:?:?)".to_owned();
        assert_eq!(fill_unknown(other.clone(), "TypeError: t", "<repl>", "x", false), other);
        let broken = "ReferenceError: x is not defined\n    at <main> (<repl>:?:?)".to_owned();
        assert_eq!(fill_unknown(broken.clone(), "ReferenceError: x is not defined", "<repl>", "x +", false), broken);
    }
}
