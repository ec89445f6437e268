//! When a REPL entry is complete: a lexical scan of JavaScript that tells
//! whether brackets, template literals or block comments are still open, so
//! that Enter continues the entry instead of sending it. It does not parse:
//! anything it cannot judge is sent, and the engine reports the error.

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::Helper;

/// Whether an entry can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Balanced (or wrong in a way only the engine can say): send it.
    Complete,
    /// A bracket, template literal, block comment or line-continued string
    /// is still open: read another line.
    Open,
}

/// What the scanner is inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// `(`, `[` or `{`, waiting for its closer.
    Bracket(char),
    /// A template literal's text.
    Template,
    /// A `${ … }` inside a template literal.
    Substitution,
}

/// Keywords after which a `/` starts a regular expression, not a division.
const BEFORE_REGEX: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

/// Scans `source` and says whether it is a whole entry. Strings in quotes
/// cannot span lines in JavaScript, so an unclosed one is complete (and an
/// error) unless its line ends with a `\` continuation.
pub fn entry(source: &str) -> Entry {
    let chars: Vec<char> = source.chars().collect();
    let mut stack: Vec<Open> = Vec::new();
    // The last significant token: a char of punctuation, or a word.
    let mut last_word = String::new();
    let mut last_char: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if stack.last() == Some(&Open::Template) {
            match c {
                '\\' => i += 1,
                '`' => {
                    stack.pop();
                    last_char = Some('`');
                    last_word.clear();
                }
                '$' if chars.get(i + 1) == Some(&'{') => {
                    stack.push(Open::Substitution);
                    last_char = Some('{');
                    last_word.clear();
                    i += 1;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let rest: String = chars[i + 2..].iter().collect();
                match rest.find("*/") {
                    Some(at) => i += 2 + rest[..at].chars().count() + 2,
                    None => return Entry::Open,
                }
                continue;
            }
            '/' if regex_may_start(last_char, &last_word) => {
                match skip_regex(&chars, i) {
                    Some(end) => i = end,
                    None => return Entry::Complete,
                }
                last_char = Some('/');
                last_word = "regex".into();
                continue;
            }
            '\'' | '"' => {
                match skip_string(&chars, i) {
                    Ok(end) => i = end,
                    Err(entry) => return entry,
                }
                last_char = Some(c);
                last_word = "string".into();
                continue;
            }
            '`' => stack.push(Open::Template),
            '(' | '[' | '{' => stack.push(Open::Bracket(c)),
            ')' | ']' | '}' => {
                let matches = match stack.last() {
                    Some(Open::Bracket(open)) => closer(*open) == c,
                    Some(Open::Substitution) => c == '}',
                    _ => false,
                };
                if !matches {
                    return Entry::Complete; // unbalanced: the engine says where
                }
                stack.pop();
            }
            _ => {}
        }
        if c.is_alphanumeric() || c == '_' || c == '$' {
            if !last_char.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$') {
                last_word.clear();
            }
            last_word.push(c);
            last_char = Some(c);
        } else if !c.is_whitespace() {
            last_word.clear();
            last_char = Some(c);
        } else if c.is_whitespace() && !last_word.is_empty() {
            // A word ends at a space; remember it, but mark the boundary.
            last_char = Some(' ');
        }
        i += 1;
    }
    if stack.is_empty() {
        Entry::Complete
    } else {
        Entry::Open
    }
}

fn closer(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

/// Whether a `/` after this token starts a regular expression: at the
/// start, after punctuation other than a closer, or after a keyword.
fn regex_may_start(last_char: Option<char>, last_word: &str) -> bool {
    match last_char {
        None => true,
        Some(')' | ']' | '}') => false,
        Some(c) if c.is_alphanumeric() || c == '_' || c == '$' || c == ' ' => BEFORE_REGEX.contains(&last_word),
        Some('`' | '\'' | '"') => false,
        Some(_) => last_word.is_empty(),
    }
}

/// The index after the regular expression starting at `start`, or `None`
/// when it does not end on its line.
fn skip_regex(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut in_class = false;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '\n' => return None,
            '[' => in_class = true,
            ']' => in_class = false,
            '/' if !in_class => {
                i += 1;
                while i < chars.len() && chars[i].is_alphanumeric() {
                    i += 1; // flags
                }
                return Some(i);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index after the quoted string starting at `start`; `Err` with what
/// the entry is when the string does not close.
fn skip_string(chars: &[char], start: usize) -> Result<usize, Entry> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 == chars.len() => return Err(Entry::Open),
            '\\' if chars[i + 1] == '\r' && chars.get(i + 2) == Some(&'\n') => i += 2,
            '\\' => i += 1,
            '\n' => return Err(Entry::Complete),
            c if c == quote => return Ok(i + 1),
            _ => {}
        }
        i += 1;
    }
    Err(Entry::Complete)
}

/// Whether a line is a REPL command (`.help`, `.exit`) rather than code: a
/// dot and a letter (`.5 + 1` is code).
pub fn is_command(line: &str) -> bool {
    let mut chars = line.trim_start().chars();
    chars.next() == Some('.') && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// The line editor's helper: only multi-line validation; no completion,
/// hints or colours.
pub struct JsHelper;

impl Validator for JsHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if is_command(input) {
            return Ok(ValidationResult::Valid(None));
        }
        Ok(match entry(input) {
            Entry::Complete => ValidationResult::Valid(None),
            Entry::Open => ValidationResult::Incomplete,
        })
    }
}

impl Completer for JsHelper {
    type Candidate = String;
}

impl Hinter for JsHelper {
    type Hint = String;
}

impl Highlighter for JsHelper {}

impl Helper for JsHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_brackets_templates_and_comments_continue_the_entry() {
        let open = [
            ("a function body", "function add(a, b) {"),
            ("a call", "console.log(1,"),
            ("an array", "[1, 2,\n 3"),
            ("nested", "if (x) { for (;;) { break"),
            ("a template literal", "`line one\nline two"),
            ("a substitution", "`a ${ (1"),
            ("a template in a substitution", "`a ${ `b"),
            ("a block comment", "1 /* more"),
            ("a string continued with a backslash", "'abc\\"),
            ("an object after a regex", "const r = /[}]/; ({"),
        ];
        for (label, source) in open {
            assert_eq!(entry(source), Entry::Open, "{label}: {source:?}");
        }
    }

    #[test]
    fn balanced_or_broken_entries_are_sent() {
        let complete = [
            ("empty", ""),
            ("an expression", "1 + 1"),
            ("a multi-line function", "function add(a, b) {\n  return a + b;\n}"),
            ("brackets in strings", "'(' + \"[\" + '{'"),
            ("escaped quotes", r#"'it\'s' + "say \"(\"""#),
            ("brackets in a template", "`{ ${ '(' } [`"),
            ("brackets in comments", "1 // (\n/* { */ + 2"),
            ("brackets in a regex", "/[(]/.test('(') && /\\(/g"),
            ("a regex after return", "function f() { return /}/ }"),
            ("division is not a regex", "const half = (4) / 2; const q = a / b / c"),
            ("a line comment at the end", "1 + 2 // (unclosed in a comment"),
            ("an unclosed quote is the engine's error", "'abc"),
            ("a stray closer is the engine's error", "1 + 2)"),
            ("a mismatched closer is the engine's error", "(1 + 2]"),
        ];
        for (label, source) in complete {
            assert_eq!(entry(source), Entry::Complete, "{label}: {source:?}");
        }
    }

    #[test]
    fn a_dot_and_a_letter_is_a_command_and_a_dot_and_a_digit_is_code() {
        assert!(is_command(".exit") && is_command("  .help"));
        assert!(!is_command(".5 + 1") && !is_command("x.help") && !is_command("."));
    }
}
