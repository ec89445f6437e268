//! Top-level `await` in REPL snippets: rewrites a snippet into a script that runs its body in an
//! async arrow function while its top-level declarations stay global, as Node's REPL does
//! (`lib/internal/repl/await.js`). Text in, text out: it knows no engine state.
//!
//! boa's parser finds the top-level `await`s and declarations. Its spans locate expressions
//! and bindings but not statements or keywords, so a small scanner splits the snippet into
//! tokens (strings, comments and words; template and regex literals come whole from the AST)
//! to find the keyword before a binding, the brace that ends a class and the brackets a span
//! leaves out. The result is parsed again before it is returned.

use std::ops::ControlFlow;

use boa_engine::ast::declaration::{Binding, LexicalDeclaration, VarDeclaration, Variable, VariableList};
use boa_engine::ast::expression::literal::{LiteralKind, ObjectMethodDefinition};
use boa_engine::ast::expression::{Await, Expression, Identifier};
use boa_engine::ast::function::{
    ArrowFunction, AsyncArrowFunction, AsyncFunctionDeclaration, AsyncFunctionExpression, AsyncGeneratorDeclaration,
    AsyncGeneratorExpression, ClassDeclaration, ClassElement, ClassElementName, FunctionBody, FunctionDeclaration,
    FunctionExpression, GeneratorDeclaration, GeneratorExpression,
};
use boa_engine::ast::operations::bound_names;
use boa_engine::ast::pattern::Pattern;
use boa_engine::ast::scope::Scope;
use boa_engine::ast::statement::iteration::{ForLoopInitializer, ForOfLoop, IterableLoopInitializer};
use boa_engine::ast::statement::Return;
use boa_engine::ast::visitor::{VisitWith, Visitor};
use boa_engine::ast::{Declaration, Position, Span, Spanned, Statement, StatementListItem};
use boa_engine::interner::{Interner, Sym};
use boa_engine::parser::{Parser, Source};

/// Opens the async wrapper, on the snippet's first line.
const WRAPPER_OPEN: &str = "(async () => { ";
/// Closes the wrapper on a line of its own, so a trailing `//` comment cannot swallow it.
const WRAPPER_CLOSE: &str = "\n})()";
/// Wraps the completion value; a null prototype keeps even a polluted `Object.prototype.then`
/// from turning the wrapper object into a thenable.
const RETURN_OPEN: &str = "return { __proto__: null, value: (";
const RETURN_CLOSE: &str = ") }";
/// Ends a body whose last statement is not an expression statement.
const RETURN_UNDEFINED: &str = "\n;return { __proto__: null, value: undefined }";

/// A REPL snippet rewritten so its top-level `await`s run in an async function.
///
/// For `const {a} = await f(); function g() {} a` the script is (on one line, then the snippet's
/// own lines, then the wrapper's close):
///
/// ```text
/// let a; var g; (async () => { this.g = g; void ( ({a} = await f())); function g() {} return { __proto__: null, value: (a) }
/// })()
/// ```
///
/// Everything added before the snippet's code is on its first line, so an error on line N of
/// the snippet is still reported on line N (columns on line 1 shift). Differences from running
/// the snippet as a script, shared with Node's REPL:
/// - top-level `const` becomes `let`: the names are declared before the wrapper and assigned
///   inside it, so later snippets may reassign them; a name is readable (as `undefined`) from
///   the start of the snippet instead of being in its temporal dead zone;
/// - a top-level function declaration is hoisted inside the wrapper and copied to a global
///   `var` of the same name when the body starts, so assigning to the name inside the snippet
///   changes only the wrapper's binding;
/// - a function declared in a nested block, and `var`s declared by a direct `eval`, stay in the
///   wrapper's scope;
/// - declaring a name that an earlier snippet declared with `let`, `const` or `class` throws the
///   same redeclaration `SyntaxError` a script would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// A script for the global scope. Evaluating it declares the snippet's top-level
    /// bindings globally and returns a Promise that resolves to `{ value: <the snippet's completion value> }`
    /// (the value is wrapped so a thenable value isn't flattened) or rejects with what the snippet threw.
    ///
    /// The completion value is the value of the last top-level statement when it is an
    /// expression statement (empty statements and function declarations after it are skipped);
    /// otherwise it is `undefined`. The wrapper object has a null prototype.
    pub script: String,
}

/// Rewrites `source` when it awaits at its top level.
///
/// `None` when the snippet has no top-level `await` (including `for await` at top level) — it then
/// runs unchanged as a script — or when it does not parse even as an async body (the plain eval then
/// reports the SyntaxError as usual). Also `None` for a top-level `return` (legal in a function
/// body, not in a script), for `using` declarations (their disposal cannot be hoisted) and for
/// the rare text the rewrite cannot place, so the plain eval reports it.
pub fn rewrite(source: &str) -> Option<Rewritten> {
    // Keywords cannot be spelled with escapes, so a snippet without the word never awaits.
    if !source.contains("await") {
        return None;
    }
    let mut interner = Interner::default();
    let body = Parser::new(Source::from_bytes(source)).parse_function_body(&mut interner, false, true).ok()?;
    let mut top = TopLevel::default();
    let _ = body.visit_with(&mut top);
    if !top.awaits || top.returns {
        return None;
    }
    let text = Text::new(source, &body)?;
    let mut plan = Plan::default();
    for item in body.statements() {
        let StatementListItem::Declaration(declaration) = item else { continue };
        match declaration.as_ref() {
            Declaration::Lexical(lexical) => {
                let (keyword, list) = match lexical {
                    LexicalDeclaration::Const(list) => ("const", list),
                    LexicalDeclaration::Let(list) => ("let", list),
                    LexicalDeclaration::Using(_) | LexicalDeclaration::AwaitUsing(_) => return None,
                };
                plan.hoist_lets(&interner, list.as_ref());
                plan.declaration(&text, keyword, list)?;
            }
            Declaration::ClassDeclaration(class) => plan.class(&text, &interner, class)?,
            function => {
                let name = function_name(function).expect("the other declarations are functions");
                plan.hoist_function(&interner, name.sym());
            }
        }
    }
    for site in &top.vars {
        match site {
            VarSite::Statement(declaration) => {
                plan.hoist_vars(&interner, declaration.0.as_ref());
                plan.declaration(&text, "var", &declaration.0)?;
            }
            VarSite::ForHead(declaration) => {
                plan.hoist_vars(&interner, declaration.0.as_ref());
                let first = declaration.0.as_ref().first().expect("a var declaration declares a name");
                plan.drop_keyword(&text, first.binding())?;
            }
            VarSite::ForInOfHead(variable) => {
                plan.hoist_vars(&interner, std::slice::from_ref(*variable));
                plan.drop_keyword(&text, variable.binding())?;
            }
        }
    }
    let returns_value = plan.completion(&text, body.statements())?;
    let script = plan.assemble(&text, directives_end(&text, body.statements())?, returns_value)?;
    Parser::new(Source::from_bytes(&script)).parse_script(&Scope::new_global(), &mut Interner::default()).ok()?;
    Some(Rewritten { script })
}

/// The name a function-like declaration binds; `None` for classes and lexical declarations.
fn function_name(declaration: &Declaration) -> Option<Identifier> {
    match declaration {
        Declaration::FunctionDeclaration(f) => Some(f.name()),
        Declaration::GeneratorDeclaration(f) => Some(f.name()),
        Declaration::AsyncFunctionDeclaration(f) => Some(f.name()),
        Declaration::AsyncGeneratorDeclaration(f) => Some(f.name()),
        Declaration::ClassDeclaration(_) | Declaration::Lexical(_) => None,
    }
}

/// Where the body's directive prologue (`"use strict";`) ends, if it has one: code added at
/// the start of the body must come after it, or the directives would stop being directives.
fn directives_end(text: &Text, items: &[StatementListItem]) -> Option<Option<usize>> {
    let mut end = None;
    for item in items {
        let StatementListItem::Statement(statement) = item else { break };
        let Statement::Expression(Expression::Literal(literal)) = statement.as_ref() else { break };
        if !matches!(literal.kind(), LiteralKind::String(_)) {
            break;
        }
        end = Some(text.offset(literal.span().end())?);
    }
    Some(end)
}

/// What the rewrite adds: global declarations, edits to the snippet's text.
#[derive(Default)]
struct Plan {
    lets: Vec<String>,
    vars: Vec<String>,
    functions: Vec<String>,
    edits: Vec<Edit>,
}

/// A replacement of `start..end` (empty for an insertion) in the snippet.
struct Edit {
    start: usize,
    end: usize,
    text: String,
    /// Closes a construct that ends at `start`; sorts before edits that open one there.
    closing: bool,
}

impl Plan {
    fn hoist_lets(&mut self, interner: &Interner, variables: &[Variable]) {
        for variable in variables {
            for sym in bound_names(variable) {
                push_unique(&mut self.lets, resolve(interner, sym));
            }
        }
    }

    fn hoist_vars(&mut self, interner: &Interner, variables: &[Variable]) {
        for variable in variables {
            for sym in bound_names(variable) {
                push_unique(&mut self.vars, resolve(interner, sym));
            }
        }
    }

    fn hoist_function(&mut self, interner: &Interner, sym: Sym) {
        let name = resolve(interner, sym);
        push_unique(&mut self.vars, name.clone());
        push_unique(&mut self.functions, name);
    }

    /// `let a = 1, {b} = c;` becomes `void ((a = 1), ({b} = c));`, a declarator without an
    /// initialiser `(a=undefined)` (`(a)` for `var`, which must not reset the variable).
    fn declaration(&mut self, text: &Text, keyword: &str, list: &VariableList) -> Option<()> {
        let variables = list.as_ref();
        let mut ends = Vec::with_capacity(variables.len());
        for variable in variables {
            let mut extent = Extent::default();
            let _ = extent.visit_variable(variable);
            let (first, last) = text.balanced(extent.0?)?;
            ends.push((first, last, variable.init().is_some()));
        }
        let (first_binding, _, _) = ends[0];
        let keyword_token = first_binding.checked_sub(1)?;
        if text.word(keyword_token) != Some(keyword) {
            return None;
        }
        self.replace(text.tokens[keyword_token].start, text.tokens[keyword_token].end, "void (");
        for (index, &(first, last, has_init)) in ends.iter().enumerate() {
            self.open(text.tokens[first].start, "(");
            let mut close = String::from(match (has_init, keyword) {
                (true, _) | (false, "var") => ")",
                (false, _) => "=undefined)",
            });
            if index + 1 == ends.len() {
                close.push(')');
                if !text.is_punct(last + 1, b';') {
                    close.push(';');
                }
            }
            self.close(text.tokens[last].end, close);
        }
        Some(())
    }

    /// `for (var i = 0; …)` and `for (var x of …)` lose their `var`: the names are global.
    fn drop_keyword(&mut self, text: &Text, binding: &Binding) -> Option<()> {
        let start = text.offset(binding_span(binding).start())?;
        let keyword_token = text.token_at(start)?.checked_sub(1)?;
        if text.word(keyword_token) != Some("var") {
            return None;
        }
        self.replace(text.tokens[keyword_token].start, text.tokens[keyword_token].end, "");
        Some(())
    }

    /// `class C extends B { … }` becomes `void (C = class C extends B { … });`.
    fn class(&mut self, text: &Text, interner: &Interner, class: &ClassDeclaration) -> Option<()> {
        let name = resolve(interner, class.name().sym());
        let name_token = text.token_at(text.offset(class.name().span().start())?)?;
        let keyword_token = name_token.checked_sub(1)?;
        if text.word(keyword_token) != Some("class") {
            return None;
        }
        let mut open_brace = name_token + 1;
        if let Some(heritage) = class.super_ref() {
            let mut extent = Extent::default();
            let _ = extent.visit_expression(heritage);
            open_brace = text.balanced(extent.0?)?.1 + 1;
        }
        let close_brace = text.matching_brace(open_brace)?;
        self.open(text.tokens[keyword_token].start, &format!("void ({name} = "));
        let mut close = String::from(")");
        if !text.is_punct(close_brace + 1, b';') {
            close.push(';');
        }
        self.close(text.tokens[close_brace].end, close);
        Some(())
    }

    /// Turns the last expression statement into the wrapper's `return`; `false` when the body
    /// does not end with one.
    fn completion(&mut self, text: &Text, items: &[StatementListItem]) -> Option<bool> {
        let last = items.iter().rev().find(|item| match item {
            StatementListItem::Statement(statement) => !matches!(statement.as_ref(), Statement::Empty),
            StatementListItem::Declaration(declaration) => function_name(declaration).is_none(),
        });
        let Some(StatementListItem::Statement(statement)) = last else { return Some(false) };
        let Statement::Expression(expression) = statement.as_ref() else { return Some(false) };
        let mut extent = Extent::default();
        let _ = extent.visit_expression(expression);
        let (first, last) = text.balanced(extent.0?)?;
        self.open(text.tokens[first].start, RETURN_OPEN);
        self.close(text.tokens[last].end, RETURN_CLOSE.to_owned());
        Some(true)
    }

    fn replace(&mut self, start: usize, end: usize, with: &str) {
        self.edits.push(Edit { start, end, text: with.to_owned(), closing: false });
    }

    fn open(&mut self, at: usize, text: &str) {
        self.edits.push(Edit { start: at, end: at, text: text.to_owned(), closing: false });
    }

    fn close(&mut self, at: usize, text: String) {
        self.edits.push(Edit { start: at, end: at, text, closing: true });
    }

    /// The whole script: global declarations and the wrapper's opening on the snippet's first
    /// line, the edited snippet, the wrapper's close.
    fn assemble(mut self, text: &Text, directives_end: Option<usize>, returns_value: bool) -> Option<String> {
        let copies: String = self.functions.iter().map(|name| format!("this.{name} = {name}; ")).collect();
        let mut script = String::with_capacity(text.src.len() + 128);
        if !self.lets.is_empty() {
            script.push_str(&format!("let {}; ", self.lets.join(", ")));
        }
        if !self.vars.is_empty() {
            script.push_str(&format!("var {}; ", self.vars.join(", ")));
        }
        script.push_str(WRAPPER_OPEN);
        match directives_end {
            None => script.push_str(&copies),
            Some(end) if !copies.is_empty() => self.open(end, &format!("; {copies}")),
            Some(_) => {}
        }
        self.edits.sort_by_key(|edit| (edit.start, !edit.closing));
        let mut copied = 0;
        for edit in &self.edits {
            if edit.start < copied {
                return None;
            }
            script.push_str(&text.src[copied..edit.start]);
            script.push_str(&edit.text);
            copied = edit.end;
        }
        script.push_str(&text.src[copied..]);
        if !returns_value {
            script.push_str(RETURN_UNDEFINED);
        }
        script.push_str(WRAPPER_CLOSE);
        Some(script)
    }
}

fn push_unique(names: &mut Vec<String>, name: String) {
    if !names.contains(&name) {
        names.push(name);
    }
}

fn resolve(interner: &Interner, sym: Sym) -> String {
    interner.resolve_expect(sym).to_string()
}

fn binding_span(binding: &Binding) -> Span {
    match binding {
        Binding::Identifier(identifier) => identifier.span(),
        Binding::Pattern(pattern) => pattern.span(),
    }
}

/// A `var` declaration outside every function of the snippet: its names belong to the global
/// object, so the rewrite declares them there and drops the `var` inside the wrapper.
enum VarSite<'ast> {
    /// `var a = 1;`, at top level or in a nested block, loop body, `try`, `switch`, label.
    Statement(&'ast VarDeclaration),
    /// `for (var i = 0; …)`.
    ForHead(&'ast VarDeclaration),
    /// `for (var x of …)`, `for (var k in …)`.
    ForInOfHead(&'ast Variable),
}

/// Walks the snippet's top level: everything but the bodies of functions and class members,
/// which is what runs in the wrapper's own scope.
#[derive(Default)]
struct TopLevel<'ast> {
    awaits: bool,
    returns: bool,
    vars: Vec<VarSite<'ast>>,
}

/// Skips a function-like node: what is inside belongs to another function.
macro_rules! skip {
    ($($method:ident: $node:ty),* $(,)?) => {
        $(fn $method(&mut self, _node: &'ast $node) -> ControlFlow<Self::BreakTy> {
            ControlFlow::Continue(())
        })*
    };
}

impl<'ast> Visitor<'ast> for TopLevel<'ast> {
    type BreakTy = ();

    skip! {
        visit_function_expression: FunctionExpression,
        visit_function_declaration: FunctionDeclaration,
        visit_generator_expression: GeneratorExpression,
        visit_generator_declaration: GeneratorDeclaration,
        visit_async_function_expression: AsyncFunctionExpression,
        visit_async_function_declaration: AsyncFunctionDeclaration,
        visit_async_generator_expression: AsyncGeneratorExpression,
        visit_async_generator_declaration: AsyncGeneratorDeclaration,
        visit_arrow_function: ArrowFunction,
        visit_async_arrow_function: AsyncArrowFunction,
    }

    fn visit_await(&mut self, node: &'ast Await) -> ControlFlow<()> {
        self.awaits = true;
        node.visit_with(self)
    }

    fn visit_for_of_loop(&mut self, node: &'ast ForOfLoop) -> ControlFlow<()> {
        self.awaits |= node.r#await();
        node.visit_with(self)
    }

    fn visit_return(&mut self, _node: &'ast Return) -> ControlFlow<()> {
        self.returns = true;
        ControlFlow::Continue(())
    }

    fn visit_var_declaration(&mut self, node: &'ast VarDeclaration) -> ControlFlow<()> {
        self.vars.push(VarSite::Statement(node));
        node.visit_with(self)
    }

    fn visit_for_loop_initializer(&mut self, node: &'ast ForLoopInitializer) -> ControlFlow<()> {
        if let ForLoopInitializer::Var(declaration) = node {
            self.vars.push(VarSite::ForHead(declaration));
            return declaration.visit_with(self);
        }
        node.visit_with(self)
    }

    fn visit_iterable_loop_initializer(&mut self, node: &'ast IterableLoopInitializer) -> ControlFlow<()> {
        if let IterableLoopInitializer::Var(variable) = node {
            self.vars.push(VarSite::ForInOfHead(variable));
        }
        node.visit_with(self)
    }

    /// Only a computed key runs in the enclosing scope (`class { [await k]() {} }`).
    fn visit_class_element(&mut self, node: &'ast ClassElement) -> ControlFlow<()> {
        match node {
            ClassElement::MethodDefinition(method) => match method.name() {
                ClassElementName::PropertyName(name) => self.visit_property_name(name),
                ClassElementName::PrivateName(_) => ControlFlow::Continue(()),
            },
            ClassElement::FieldDefinition(field) | ClassElement::StaticFieldDefinition(field) => {
                self.visit_property_name(field.name())
            }
            ClassElement::PrivateFieldDefinition(_)
            | ClassElement::PrivateStaticFieldDefinition(_)
            | ClassElement::StaticBlock(_) => ControlFlow::Continue(()),
        }
    }

    fn visit_object_method_definition(&mut self, node: &'ast ObjectMethodDefinition) -> ControlFlow<()> {
        self.visit_property_name(node.name())
    }
}

/// The source range a node covers, as the union of the spans inside it (boa's span of a call
/// starts at its arguments, and a few spans stop before a closing bracket; [`Text::balanced`]
/// takes care of the brackets). Lines and columns as boa counts them.
#[derive(Default)]
struct Extent(Option<(Position, Position)>);

impl Extent {
    fn add(&mut self, span: Span) {
        let (start, end) = (span.start(), span.end());
        if start.line_number() == 0 {
            return;
        }
        let key = |p: Position| (p.line_number(), p.column_number());
        self.0 = Some(match self.0 {
            None => (start, end),
            Some((low, high)) => {
                (if key(start) < key(low) { start } else { low }, if key(end) > key(high) { end } else { high })
            }
        });
    }
}

impl<'ast> Visitor<'ast> for Extent {
    type BreakTy = ();

    fn visit_expression(&mut self, node: &'ast Expression) -> ControlFlow<()> {
        self.add(node.span());
        node.visit_with(self)
    }

    fn visit_identifier(&mut self, node: &'ast Identifier) -> ControlFlow<()> {
        self.add(node.span());
        ControlFlow::Continue(())
    }

    fn visit_pattern(&mut self, node: &'ast Pattern) -> ControlFlow<()> {
        self.add(node.span());
        node.visit_with(self)
    }

    fn visit_function_body(&mut self, node: &'ast FunctionBody) -> ControlFlow<()> {
        self.add(node.span());
        node.visit_with(self)
    }
}

/// Collects the byte ranges of template and regular expression literals: the scanner cannot
/// tell a regex from a division, nor follow a template's substitutions, but the parser could.
#[derive(Default)]
struct Literals(Vec<(Span, u8)>);

impl<'ast> Visitor<'ast> for Literals {
    type BreakTy = ();

    fn visit_expression(&mut self, node: &'ast Expression) -> ControlFlow<()> {
        match node {
            Expression::TemplateLiteral(template) => self.0.push((template.span(), b'`')),
            Expression::TaggedTemplate(tagged) => self.0.push((tagged.span(), b'`')),
            Expression::RegExpLiteral(regex) => self.0.push((regex.span(), b'/')),
            _ => return node.visit_with(self),
        }
        ControlFlow::Continue(())
    }
}

/// The snippet as tokens, enough to find what boa's spans leave out.
struct Text<'s> {
    src: &'s str,
    /// Byte offset where each line starts, line terminators counted as boa counts them.
    line_starts: Vec<usize>,
    tokens: Vec<Token>,
}

#[derive(Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    kind: TokenKind,
}

#[derive(Clone, Copy, PartialEq)]
enum TokenKind {
    /// An identifier, keyword or number (numbers may come in pieces: `1.5` is `1`, `.`, `5`).
    Word,
    /// One ASCII punctuator character.
    Punct(u8),
    /// A string, template or regex literal.
    Literal,
}

impl<'s> Text<'s> {
    fn new(src: &'s str, body: &FunctionBody) -> Option<Self> {
        let mut line_starts = vec![0];
        let mut chars = src.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\r' => {
                    let crlf = chars.next_if(|&(_, next)| next == '\n').is_some();
                    line_starts.push(at + if crlf { 2 } else { 1 });
                }
                '\n' | '\u{2028}' | '\u{2029}' => line_starts.push(at + c.len_utf8()),
                _ => {}
            }
        }
        let mut text = Self { src, line_starts, tokens: Vec::new() };
        let mut literals = Literals::default();
        let _ = body.visit_with(&mut literals);
        let mut ranges = Vec::with_capacity(literals.0.len());
        for (span, delimiter) in literals.0 {
            let (start, end) = (text.offset(span.start())?, text.offset(span.end())?);
            let closes = if delimiter == b'`' { src[..end].ends_with('`') } else { src[start..].starts_with('/') };
            if !closes || start >= end {
                return None;
            }
            ranges.push((start, end));
        }
        ranges.sort_unstable();
        text.tokens = scan(src, &ranges)?;
        Some(text)
    }

    /// The byte offset of a boa position (1-based line, column in code points).
    fn offset(&self, position: Position) -> Option<usize> {
        let line = *self.line_starts.get(usize::try_from(position.line_number()).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(position.column_number()).ok()?.checked_sub(1)?;
        let rest = &self.src[line..];
        rest.char_indices().map(|(at, _)| at).chain([rest.len()]).nth(column).map(|at| line + at)
    }

    /// The token that contains byte `offset`.
    fn token_at(&self, offset: usize) -> Option<usize> {
        let index = self.tokens.partition_point(|token| token.end <= offset);
        (self.tokens.get(index)?.start <= offset).then_some(index)
    }

    fn word(&self, index: usize) -> Option<&'s str> {
        let token = self.tokens.get(index)?;
        (token.kind == TokenKind::Word).then(|| &self.src[token.start..token.end])
    }

    fn is_punct(&self, index: usize, c: u8) -> bool {
        self.tokens.get(index).is_some_and(|token| token.kind == TokenKind::Punct(c))
    }

    /// The tokens of a node's extent, grown until its brackets balance.
    fn balanced(&self, (start, end): (Position, Position)) -> Option<(usize, usize)> {
        let mut first = self.token_at(self.offset(start)?)?;
        let mut last = self.token_at(self.offset(end)?.checked_sub(1)?)?;
        let mut open = Vec::new();
        let mut unopened = Vec::new();
        for token in &self.tokens[first..=last] {
            let TokenKind::Punct(c) = token.kind else { continue };
            match c {
                b'(' | b'[' | b'{' => open.push(c),
                b')' | b']' | b'}' if open.is_empty() => unopened.push(c),
                b')' | b']' | b'}' if open.pop() != Some(opener(c)) => return None,
                _ => {}
            }
        }
        for &c in unopened.iter().rev() {
            first = first.checked_sub(1)?;
            if !self.is_punct(first, opener(c)) {
                return None;
            }
        }
        while let Some(c) = open.pop() {
            last += 1;
            if !self.is_punct(last, closer(c)) {
                return None;
            }
        }
        Some((first, last))
    }

    /// The `}` that closes the `{` at token `open`.
    fn matching_brace(&self, open: usize) -> Option<usize> {
        if !self.is_punct(open, b'{') {
            return None;
        }
        let mut depth = 0_usize;
        for (index, token) in self.tokens.iter().enumerate().skip(open) {
            match token.kind {
                TokenKind::Punct(b'{') => depth += 1,
                TokenKind::Punct(b'}') => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(index);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

fn opener(closer: u8) -> u8 {
    match closer {
        b')' => b'(',
        b']' => b'[',
        _ => b'{',
    }
}

fn closer(opener: u8) -> u8 {
    match opener {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    }
}

/// Splits `src` into tokens, skipping whitespace and comments. `literals` (sorted byte ranges
/// of template and regex literals, possibly nested) become whole tokens; strings are scanned
/// here. `None` on a backtick outside every template range, which means a range is missing.
fn scan(src: &str, literals: &[(usize, usize)]) -> Option<Vec<Token>> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut literals = literals.iter().peekable();
    let mut at = 0;
    while at < src.len() {
        while literals.next_if(|&&(start, _)| start < at).is_some() {}
        if let Some(&(start, end)) = literals.next_if(|&&(start, _)| start == at) {
            tokens.push(Token { start, end, kind: TokenKind::Literal });
            at = end;
            continue;
        }
        let c = src[at..].chars().next()?;
        let start = at;
        at += c.len_utf8();
        match c {
            _ if c.is_whitespace() || c == '\u{feff}' => continue,
            '/' if bytes.get(at) == Some(&b'/') => {
                at = src[at..].find(['\n', '\r', '\u{2028}', '\u{2029}']).map_or(src.len(), |n| at + n);
                continue;
            }
            '/' if bytes.get(at) == Some(&b'*') => {
                at = at + 1 + src[at + 1..].find("*/")? + 2;
                continue;
            }
            '\'' | '"' => {
                let mut chars = src[at..].char_indices();
                loop {
                    match chars.next()? {
                        (_, '\\') => {
                            chars.next()?;
                        }
                        (n, q) if q == c => {
                            at += n + 1;
                            break;
                        }
                        _ => {}
                    }
                }
                tokens.push(Token { start, end: at, kind: TokenKind::Literal });
            }
            '`' => return None,
            _ if is_word_char(c) => {
                at = start;
                while let Some(next) = src[at..].chars().next().filter(|&next| is_word_char(next)) {
                    at += next.len_utf8();
                    if next == '\\' && src[at..].starts_with("u{") {
                        at += src[at..].find('}')? + 1;
                    }
                }
                tokens.push(Token { start, end: at, kind: TokenKind::Word });
            }
            _ => tokens.push(Token { start, end: at, kind: TokenKind::Punct(bytes[start]) }),
        }
    }
    Some(tokens)
}

/// Identifier characters (escapes and `$` included) and digits; any other non-ASCII character
/// outside strings and comments can only be part of an identifier.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '\\') || !c.is_ascii() && !c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use boa_engine::builtins::promise::PromiseState;
    use boa_engine::object::builtins::JsPromise;
    use boa_engine::{js_string, Context, JsValue, Source};

    use super::rewrite;

    /// A context fed snippets the way the engine feeds them: rewritten when they await at top
    /// level, evaluated plainly otherwise.
    struct Repl(Context);

    impl Repl {
        fn new() -> Self {
            Self(Context::default())
        }

        fn eval(&mut self, snippet: &str) -> Result<JsValue, JsValue> {
            let context = &mut self.0;
            let Some(rewritten) = rewrite(snippet) else {
                return context.eval(Source::from_bytes(snippet)).map_err(|err| err.into_opaque(context).unwrap());
            };
            let promise =
                context.eval(Source::from_bytes(&rewritten.script)).map_err(|err| err.into_opaque(context).unwrap())?;
            context.run_jobs().expect("jobs run");
            let promise = JsPromise::from_object(promise.as_object().expect("the script returns a promise").clone())
                .expect("the script returns a promise");
            match promise.state() {
                PromiseState::Fulfilled(wrapper) => {
                    let wrapper = wrapper.as_object().expect("the promise resolves to an object").clone();
                    Ok(wrapper.get(js_string!("value"), context).unwrap())
                }
                PromiseState::Rejected(err) => Err(err),
                PromiseState::Pending => panic!("the snippet still waits after the jobs ran"),
            }
        }

        /// The snippet's completion value as JSON (`undefined` for undefined).
        fn json(&mut self, snippet: &str) -> String {
            let value = self.eval(snippet).unwrap_or_else(|err| panic!("{snippet:?} threw {}", err.display()));
            if value.is_undefined() {
                return "undefined".to_owned();
            }
            let json = value.to_json(&mut self.0).unwrap().expect("a JSON value");
            json.to_string()
        }

        /// What the snippet threw, as `String(err)`.
        fn error(&mut self, snippet: &str) -> String {
            let err = self.eval(snippet).expect_err("the snippet throws");
            err.to_string(&mut self.0).unwrap().to_std_string_escaped()
        }

        fn stack(&mut self, snippet: &str) -> String {
            let err = self.eval(snippet).expect_err("the snippet throws");
            let err = err.as_object().expect("an Error object").clone();
            err.get(js_string!("stack"), &mut self.0).unwrap().display().to_string()
        }
    }

    #[test]
    fn the_value_of_a_top_level_await_is_the_completion_value() {
        assert_eq!(Repl::new().json("await Promise.resolve(5)"), "5");
    }

    #[test]
    fn a_const_declared_with_await_is_visible_to_the_next_snippet() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("const r = await Promise.resolve(5)"), "undefined");
        assert_eq!(repl.json("r"), "5");
    }

    #[test]
    fn let_bindings_persist_and_stay_assignable() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("let a = await 1, b\na + 1"), "2");
        assert_eq!(repl.json("[a, b, typeof b]"), r#"[1,null,"undefined"]"#);
        assert_eq!(repl.json("a = 10; a"), "10");
    }

    #[test]
    fn destructuring_declarations_bind_every_name() {
        let mut repl = Repl::new();
        let snippet =
            "const {a, b: [c, , d = 4, ...e], f = 6} =\n  await Promise.resolve({a: 1, b: [3, 0, undefined, 7, 8]});\n\
                       let [x, [y] = [2]] = [await 1], {h, ...rest} = {h: 9, i: 10}";
        assert_eq!(repl.json(snippet), "undefined");
        assert_eq!(repl.json("[a, c, d, e, f, x, y, h, rest]"), r#"[1,3,4,[7,8],6,1,2,9,{"i":10}]"#);
    }

    #[test]
    fn a_function_declaration_is_global_and_hoisted() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("const early = f(); await null; function f() { return 42 }"), "null");
        assert_eq!(repl.json("[early, f(), typeof globalThis.f]"), r#"[42,42,"function"]"#);
        assert_eq!(repl.json("await 0; async function g() { return 1 } function* h() { yield 2 }"), "0");
        assert_eq!(repl.json("[typeof g, [...h()][0]]"), r#"["function",2]"#);
    }

    #[test]
    fn a_class_declaration_is_a_global_binding() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("class C extends Object { get x() { return '}' } }\nawait null"), "null");
        assert_eq!(repl.json("new C().x"), r#""}""#);
    }

    #[test]
    fn a_closure_shares_the_binding_later_snippets_see() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("let n = 0; const inc = () => ++n; await null;"), "null");
        assert_eq!(repl.json("inc(); n"), "1");
    }

    #[test]
    fn a_rejected_await_rejects_with_its_error() {
        let mut repl = Repl::new();
        assert_eq!(repl.error("await Promise.reject(new RangeError('boom'))"), "RangeError: boom");
        assert_eq!(repl.error("await null; throw new TypeError('late')"), "TypeError: late");
    }

    #[test]
    fn snippets_without_a_top_level_await_are_not_rewritten() {
        for (label, snippet) in [
            ("no await", "1 + 1"),
            ("await in an async function", "async function g() { await 1 }"),
            ("await in an async arrow", "const h = async () => { for await (const x of []) {} }"),
            ("await in an async method", "({ async m() { await 1 } })"),
            ("await as an identifier", "var await = 1; await"),
            ("syntax error", "let x = = 1; await x"),
            ("unfinished", "await 1 +"),
            ("top-level return", "await 1; return 2"),
        ] {
            assert!(rewrite(snippet).is_none(), "{label}: {snippet:?}");
        }
    }

    #[test]
    fn errors_keep_the_snippets_line_numbers() {
        let mut repl = Repl::new();
        let stack = repl.stack("await null;\nlet x = `a\nb`;\nthrow new Error('line four')");
        assert!(stack.contains(":4:"), "{stack}");
    }

    #[test]
    fn for_await_at_top_level_runs() {
        let mut repl = Repl::new();
        repl.json("var sum = 0");
        assert_eq!(repl.json("for await (const x of [1, Promise.resolve(2)]) sum += x"), "undefined");
        assert_eq!(repl.json("sum"), "3");
    }

    #[test]
    fn awaits_in_blocks_loops_and_labels_are_top_level() {
        let mut repl = Repl::new();
        let snippet = "if (true) { var v = await 2 }\nfor (var i = 0; i < 3; i++) await null\n\
                       outer: for (var k of [1, 2, 3]) { for (const j of [1]) { await null; if (k === 2) break outer } }\n\
                       for (var key in { p: 1 }) ;";
        assert_eq!(repl.json(snippet), "undefined");
        assert_eq!(repl.json("[v, i, k, key]"), r#"[2,3,2,"p"]"#);
    }

    #[test]
    fn strings_comments_templates_and_regexes_do_not_confuse_the_rewrite() {
        let mut repl = Repl::new();
        let snippet = "const s = \"let } {\" + `a${'}'}b` /* let x = 1 */; // const y\n\
                       const re = /[/]let\\//g, q = 6 / 2 / 1;\nawait null; [s, re.test('/let/'), q]";
        assert_eq!(repl.json(snippet), r#"["let } {a}b",true,3]"#);
    }

    #[test]
    fn the_last_expression_statement_is_the_value_despite_trailing_noise() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("await 1; (2);; // done\nfunction later() {}"), "2");
        assert_eq!(repl.json("await 1; if (true) { 3 }"), "undefined");
        assert_eq!(repl.json("x = await 1\n;[x, typeof later]"), r#"[1,"function"]"#);
    }

    #[test]
    fn a_thenable_value_is_not_flattened() {
        let mut repl = Repl::new();
        let value = repl.eval("await null; ({ then(resolve) { resolve(1) } })").unwrap();
        let then = value.as_object().expect("the thenable itself").get(js_string!("then"), &mut repl.0).unwrap();
        assert!(then.is_callable());
    }

    #[test]
    fn declarations_without_semicolons_do_not_merge_with_the_next_line() {
        let mut repl = Repl::new();
        let snippet = "let y\n(() => { y = 3 })()\nclass K {}\n[1].forEach(() => {})\nawait null; y";
        assert_eq!(repl.json(snippet), "3");
        assert_eq!(repl.json("typeof K"), r#""function""#);
    }

    #[test]
    fn a_var_without_initialiser_keeps_its_value() {
        let mut repl = Repl::new();
        repl.json("var keep = 5");
        assert_eq!(repl.json("var keep; await null; keep"), "5");
    }

    #[test]
    fn a_use_strict_directive_still_applies() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("'use strict'\nfunction f() { return this } await null; f()"), "undefined");
        assert_eq!(repl.json("typeof f"), r#""function""#);
    }

    #[test]
    fn an_await_in_a_computed_class_key_is_top_level() {
        let mut repl = Repl::new();
        repl.json("class K { [await Promise.resolve('m')]() { return 1 } static #p = 2; static { this.q = 3 } }");
        assert_eq!(repl.json("[new K().m(), K.q]"), "[1,3]");
    }

    #[test]
    fn crlf_line_endings_and_non_ascii_names_are_located() {
        let mut repl = Repl::new();
        assert_eq!(repl.json("const é = await 1;\r\nconst ü = é + 1;\r\nü"), "2");
        assert_eq!(repl.json("[é, ü]"), "[1,2]");
    }

    #[test]
    fn expressions_whose_spans_miss_a_bracket_are_returned_whole() {
        let mut repl = Repl::new();
        for (label, snippet, value) in [
            ("computed member", "const o = { k: [1, 2] }; await null; o['k'][1]", "2"),
            ("call chain", "const f = () => () => [7]; await null; f()()[0]", "7"),
            ("class with static block", "await null; (class { static { this.s = 1 } }).s", "1"),
            ("template", "`a${await Promise.resolve('b')}c`", r#""abc""#),
            ("regex first", "/a/.test('a') && await Promise.resolve(4)", "4"),
            ("tagged template", "const t = (s, v) => s[0] + v; t`x${await 1}`", r#""x1""#),
            ("optional chain", "const m = await { n: null }; m?.n?.[0] ?? 'none'", r#""none""#),
            ("comma", "await 1, 2", "2"),
            ("trailing comment", "await 3 // three", "3"),
        ] {
            assert_eq!(repl.json(snippet), value, "{label}: {snippet:?}");
        }
    }

    #[test]
    fn vars_in_try_switch_and_with_bodies_become_globals() {
        let mut repl = Repl::new();
        let snippet = "try { var t = await 1 } catch { var u = 2 } finally { var w = 3 }\n\
                       switch (await 1) { case 1: var s = 4; let local = 5 }\nwith ({}) var h = 6";
        assert_eq!(repl.json(snippet), "undefined");
        assert_eq!(repl.json("[t, typeof u, w, s, typeof local, h]"), r#"[1,"undefined",3,4,"undefined",6]"#);
    }

    #[test]
    fn redeclaring_an_earlier_lexical_binding_throws_as_a_script_would() {
        let mut repl = Repl::new();
        repl.json("let taken = 1");
        assert!(repl.error("let taken = await 2").starts_with("SyntaxError"));
    }
}
