//! Rule errors people can act on: file, line, column, the source line and
//! a caret, and a "did you mean" for misspelt names.

use std::fmt;
use std::path::{Path, PathBuf};

use rhai::{EvalAltResult, ParseError, Position};

/// An error located in a rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; 0 when Rhai gave no position.
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The text of `line`, for the caret display.
    pub source_line: Option<String>,
}

impl Diagnostic {
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
        }
    }

    pub fn from_parse(path: &Path, source: &str, error: &ParseError) -> Diagnostic {
        // ParseError's Display appends the position; take the bare message.
        Diagnostic::new(path, source, error.position(), error.err_type().to_string())
    }

    pub fn from_eval(path: &Path, source: &str, error: &EvalAltResult) -> Diagnostic {
        let inner = error.unwrap_inner();
        let position = inner.position();
        let mut message = inner.to_string();
        // Display appends " (line L, position P)"; the diagnostic shows it.
        if let Some(cut) = message.rfind(" (line ") {
            message.truncate(cut);
        }
        Diagnostic::new(path, source, position, explain(&message))
    }

    /// `path:line:column: message` on one line.
    pub fn short(&self) -> String {
        if self.line == 0 {
            return format!("{}: {}", self.path.display(), self.message);
        }
        format!(
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())?;
        if let Some(text) = &self.source_line {
            let gutter = self.line.to_string().len();
            write!(f, "\n {} |", " ".repeat(gutter))?;
            write!(f, "\n {} | {}", self.line, text)?;
            let pad: String = text
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {} | {}^", " ".repeat(gutter), pad)?;
        }
        Ok(())
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
    message.to_owned()
}

/// The closest candidate to `name`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(
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
    fn suggests_close_names_only() {
        let names = ["days_since_activity", "member_count"];
        assert_eq!(
            did_you_mean("days_since_activty", names),
            Some("days_since_activity")
        );
        assert_eq!(did_you_mean("colour", names), None);
    }
}
