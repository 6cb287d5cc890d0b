//! Rule errors people can act on: file, line, column, the source line and
//! a caret, and a "did you mean" for misspelt names.

use std::fmt;
use std::path::{Path, PathBuf};

use rhai::{EvalAltResult, ParseError, Position};

/// An error located in a rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The rule (or rule test) file the error is in.
    pub path: PathBuf,
    /// 1-based; 0 when Rhai gave no position.
    pub line: usize,
    /// 1-based character position in the line; 0 when unknown.
    pub column: usize,
    /// What went wrong, in words for the rule author.
    pub message: String,
    /// The text of `line`, for the caret display.
    pub source_line: Option<String>,
    /// Where the error came from, when it happened inside a function the
    /// entry point called: "in `helper`, called at line 7, column 3".
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error at a Rhai position; a position with no line gives line and
    /// column 0.
    pub fn new(
        path: &Path,
        source: &str,
        position: Position,
        message: impl Into<String>,
    ) -> Diagnostic {
        let line = position.line().unwrap_or(0);
        let column = position.position().unwrap_or(0);
        Diagnostic::at(path, source, line, column, message)
    }

    /// An error at `line` and `column` (1-based, 0 for unknown); the source
    /// line is taken from `source` for the caret display.
    pub fn at(
        path: &Path,
        source: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Diagnostic {
        let source_line = (line > 0)
            .then(|| source.lines().nth(line - 1).map(str::to_owned))
            .flatten();
        Diagnostic {
            path: path.to_owned(),
            line,
            column,
            message: message.into(),
            source_line,
            notes: Vec::new(),
        }
    }

    /// A syntax error Rhai found while compiling the rule in `source`.
    pub fn from_parse(path: &Path, source: &str, error: &ParseError) -> Diagnostic {
        // ParseError's Display appends the position; take the bare message.
        Diagnostic::new(path, source, error.position(), error.err_type().to_string())
    }

    /// A runtime error at the innermost position (the `throw`, the bad
    /// operation), with the chain of calls that led there as notes.
    pub fn from_eval(path: &Path, source: &str, error: &EvalAltResult) -> Diagnostic {
        let mut calls = Vec::new();
        let mut inner = error;
        while let EvalAltResult::ErrorInFunctionCall(name, _, cause, call_site) = inner {
            calls.push(format!(
                "in `{name}`, called at {}",
                describe_position(*call_site)
            ));
            inner = cause;
        }
        let inner = inner.unwrap_inner();
        let position = inner.position();
        let mut message = match inner {
            // `throw "text"`: the rule's own words, without Rhai's prefix.
            EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
            other => other.to_string(),
        };
        // Display appends " (line L, position P)"; the diagnostic shows it.
        if let Some(cut) = message.rfind(" (line ") {
            message.truncate(cut);
        }
        let mut diagnostic = Diagnostic::new(path, source, position, explain(&message));
        calls.reverse();
        diagnostic.notes = calls;
        diagnostic
    }

    /// `path:line:column: message` on one line.
    pub fn short(&self) -> String {
        let notes: String = self.notes.iter().map(|n| format!(" ({n})")).collect();
        if self.line == 0 {
            return format!("{}: {}{notes}", self.path.display(), self.message);
        }
        format!(
            "{}:{}:{}: {}{notes}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(text) = &self.source_line else {
            return f.write_str(&self.short());
        };
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        let gutter = " ".repeat(self.line.to_string().len());
        write!(f, "\n {gutter} |")?;
        write!(f, "\n {} | {}", self.line, text)?;
        let pad: String = text
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "\n {gutter} | {pad}^")?;
        for note in &self.notes {
            write!(f, "\n {gutter} = note: {note}")?;
        }
        Ok(())
    }
}

fn describe_position(position: Position) -> String {
    match (position.line(), position.position()) {
        (Some(line), Some(column)) => format!("line {line}, column {column}"),
        (Some(line), None) => format!("line {line}"),
        _ => "an unknown position".to_owned(),
    }
}

/// Rhai's wording for a missing getter names an internal symbol; say it
/// the way a rule writer thinks of it.
fn explain(message: &str) -> String {
    if let Some(rest) = message.split("get$").nth(1) {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if let Some(hint) = did_you_mean(&name, crate::engine::sandbox::row_property_names()) {
            return format!("unknown field `{name}`; did you mean `{hint}`?");
        }
        return format!("unknown field `{name}`");
    }
    if let Some(expected) = message
        .strip_prefix("Data type incorrect: () (expecting ")
        .and_then(|m| m.strip_suffix(')'))
    {
        return format!("found () where a {expected} is needed; {BLANK_ADVICE}");
    }
    if message.starts_with("Function not found: ")
        && (message.contains("((),") || message.contains(", ())") || message.contains("(())"))
    {
        return format!("{message}; {BLANK_ADVICE}");
    }
    if message.starts_with("Variable not found: ") {
        return format!(
            "{message}; a function sees only its parameters, its own `let` variables and the rule's `const`s"
        );
    }
    message.to_owned()
}

const BLANK_ADVICE: &str = "() is a blank report cell (unknown, never 0 or false): test `value == ()` first, or compare with `== true`";

/// The closest candidate to `name`, if one is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A TOML error (config or rule test file) with serde's "unknown field
/// `x`, expected one of …" turned into a "did you mean" naming the table.
pub(crate) fn toml_error(error: &toml::de::Error, text: &str) -> String {
    let display = error.to_string().trim_end().to_owned();
    let message = error.message().trim_end();
    match unknown_name_hint(message, text, error.span()) {
        Some(better) => display.replace(message, &better),
        None => display,
    }
}

fn unknown_name_hint(
    message: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
) -> Option<String> {
    let (what, rest) = ["field", "variant"]
        .into_iter()
        .find_map(|what| Some((what, message.strip_prefix(&format!("unknown {what} `"))?)))?;
    let (name, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let what = if what == "field" { "key" } else { "value" };
    let table = span
        .and_then(|span| enclosing_table(text, span.start))
        .map(|t| format!(" in [{t}]"))
        .unwrap_or_default();
    let hint = did_you_mean(name, candidates.iter().copied())
        .map(|h| format!("; did you mean `{h}`?"))
        .unwrap_or_default();
    let known = match candidates.as_slice() {
        [] => "none".to_owned(),
        names => names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    Some(format!(
        "unknown {what} `{name}`{table}{hint} (expected: {known})"
    ))
}

/// The `[table]` or `[[array]]` header above byte `offset`.
fn enclosing_table(text: &str, offset: usize) -> Option<String> {
    // Only whole lines above the error's line: the key may be a header itself.
    let before = &text.get(..offset)?[..text[..offset].rfind('\n').unwrap_or(0)];
    let header = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))?;
    let name = header.trim_start_matches('[').split(']').next()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_line_and_a_caret() {
        let source = "const X = 1;\nfn check(row, p) {\n    row.foo\n}\n";
        let d = Diagnostic::at(
            Path::new("rules/x.rhai"),
            source,
            3,
            9,
            "unknown field `foo`",
        );
        assert_eq!(
            d.to_string(),
            "rules/x.rhai:3:9: unknown field `foo`\n   |\n 3 |     row.foo\n   |         ^"
        );
    }

    #[test]
    fn a_throw_inside_a_helper_points_at_the_throw_and_names_the_call() {
        let engine =
            crate::engine::sandbox::build_engine(&crate::engine::config::Limits::default());
        let source = "fn helper(x) {\n  if x > 3 {\n    throw \"too many: \" + x;\n  }\n}\nfn check(row) {\n  helper(5);\n}";
        let ast = engine.compile(source).unwrap();
        let options = rhai::CallFnOptions::new().eval_ast(false);
        let error = engine
            .call_fn_with_options::<rhai::Dynamic>(
                options,
                &mut rhai::Scope::new(),
                &ast,
                "check",
                (1_i64,),
            )
            .unwrap_err();
        let d = Diagnostic::from_eval(Path::new("rules/x.rhai"), source, &error);
        assert_eq!(
            d.to_string(),
            "rules/x.rhai:3:5: too many: 5\n   |\n 3 |     throw \"too many: \" + x;\n   |     ^\n   = note: in `helper`, called at line 7, column 3"
        );
        assert_eq!(
            d.short(),
            "rules/x.rhai:3:5: too many: 5 (in `helper`, called at line 7, column 3)"
        );
    }

    #[test]
    fn unknown_toml_keys_get_a_did_you_mean_naming_the_table() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Rules {
            disabled: Option<Vec<String>>,
            max_operations: Option<u64>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct File {
            rules: Option<Rules>,
        }
        let text = "[rules]\ndisabeld = [\"x\"]\n";
        let error = toml::from_str::<File>(text).unwrap_err();
        let message = toml_error(&error, text);
        assert!(
            message.starts_with("TOML parse error at line 2, column 1"),
            "{message}"
        );
        assert!(
            message.ends_with("unknown key `disabeld` in [rules]; did you mean `disabled`? (expected: `disabled`, `max_operations`)"),
            "{message}"
        );
        let text = "[rule]\n";
        let message = toml_error(&toml::from_str::<File>(text).unwrap_err(), text);
        assert!(
            message.ends_with("unknown key `rule`; did you mean `rules`? (expected: `rules`)"),
            "{message}"
        );
    }

    #[test]
    fn blank_values_in_the_wrong_place_are_explained() {
        assert_eq!(
            explain("Data type incorrect: () (expecting bool)"),
            format!("found () where a bool is needed; {BLANK_ADVICE}")
        );
        assert!(explain("Function not found: + ((), i64)").ends_with(BLANK_ADVICE));
        assert_eq!(
            explain("Function not found: foo (i64)"),
            "Function not found: foo (i64)"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["days_since_activity", "member_count"];
        assert_eq!(
            did_you_mean("days_since_activty", names),
            Some("days_since_activity")
        );
        assert_eq!(did_you_mean("colour", names), None);
    }
}
