//! The page templates (`templates/`), with the stylesheet and script
//! inlined.
//!
//! The templates' names end in `.html`, so minijinja escapes every value
//! for HTML (text and quoted attributes alike); the embedded JSON goes
//! through `tojson`, which also escapes `<`, `>`, `&` and `'`, so a
//! `</script>` in a group name cannot end the script block. The style and
//! script are ours, inserted as they are.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, HtmlEscape, UndefinedBehavior, Value, context};

use std::io::{self, Write};

use super::lifecycle::Lifecycle;
use super::view::{self, ReportView, Section, count_of};

const PAGE_START: &str = include_str!("templates/page_start.html");
const SECTION_START: &str = include_str!("templates/section_start.html");
const FINDING_ROW: &str = include_str!("templates/finding_row.html");
const SECTION_END: &str = include_str!("templates/section_end.html");
const PAGE_END: &str = include_str!("templates/page_end.html");
const STYLE: &str = include_str!("templates/report.css");
const SCRIPT: &str = include_str!("templates/report.js");

/// Rendering failed: a template bug, or the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed to render (a bug in the templates or the view data).
    #[error("HTML template: {0:#}")]
    Template(#[from] minijinja::Error),
    /// Writing the page failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<RenderError> for io::Error {
    fn from(error: RenderError) -> io::Error {
        match error {
            RenderError::Io(error) => error,
            other => io::Error::other(other),
        }
    }
}

/// The page may run only its own script and style and load nothing: a
/// script or handler that slipped in anyway would not run, and nothing
/// can reach the network.
pub(crate) fn content_security_policy() -> String {
    format!(
        "default-src 'none'; img-src data:; script-src '{}'; style-src '{}'",
        sha256_source(SCRIPT),
        sha256_source(STYLE)
    )
}

pub(super) fn sha256_source(text: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// Writes the page: the part before the findings, then each rule's
/// table row by row (a row's context lives only while it is written, so
/// memory holds the findings once, not again as page text or template
/// values), then the rest.
pub(crate) fn write_page(
    view: &ReportView,
    sections: &[Section<'_>],
    lifecycle: Option<&Lifecycle>,
    out: &mut dyn Write,
) -> Result<(), RenderError> {
    let env = environment()?;
    let columns = view.columns();
    let report = Value::from(Serde(view));
    let page_start = env.get_template("page_start.html")?.render(context! {
        report => report.clone(),
        csp => content_security_policy(),
        style => Value::from_safe_string(STYLE.to_owned()),
    })?;
    out.write_all(page_start.as_bytes())?;
    let section_start = env.get_template("section_start.html")?;
    let finding_row = env.get_template("finding_row.html")?;
    let section_end = env.get_template("section_end.html")?.render(())?;
    for section in sections {
        let header = section_start.render(context! {
            section => Value::from(Serde(&section.header)),
            columns => Value::from(Serde(columns)),
        })?;
        out.write_all(header.as_bytes())?;
        for finding in &section.findings {
            let row = finding_row.render(context! {
                row => Value::from(Serde(view::finding_row(finding, lifecycle))),
                columns => Value::from(Serde(columns)),
            })?;
            out.write_all(row.as_bytes())?;
        }
        out.write_all(section_end.as_bytes())?;
    }
    let page_end = env.get_template("page_end.html")?.render(context! {
        report => report,
        script => Value::from_safe_string(SCRIPT.to_owned()),
    })?;
    out.write_all(page_end.as_bytes())?;
    Ok(())
}

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    // A misspelt field in a template is a test failure, not a blank.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("count_of", |count: u64, word: String| {
        count_of(count, &word)
    });
    env.add_filter("code_spans", |text: String| {
        Value::from_safe_string(code_spans(&text))
    });
    for (name, source) in [
        ("page_start.html", PAGE_START),
        ("section_start.html", SECTION_START),
        ("finding_row.html", FINDING_ROW),
        ("section_end.html", SECTION_END),
        ("page_end.html", PAGE_END),
    ] {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// Escapes `text` and sets its `backtick` spans (rule descriptions name
/// parameters that way) in `<code>`; an unpaired backtick stays as it is.
fn code_spans(text: &str) -> String {
    let pieces: Vec<String> = text
        .split('`')
        .map(|piece| HtmlEscape(piece).to_string())
        .collect();
    if pieces.len().is_multiple_of(2) {
        return HtmlEscape(text).to_string();
    }
    let mut html = String::with_capacity(text.len() + 16);
    for (index, piece) in pieces.iter().enumerate() {
        if index % 2 == 1 {
            html.push_str("<code>");
            html.push_str(piece);
            html.push_str("</code>");
        } else {
            html.push_str(piece);
        }
    }
    html
}

#[cfg(test)]
mod tests {
    use super::code_spans;

    #[test]
    fn backtick_spans_become_code_and_the_rest_is_escaped() {
        assert_eq!(
            code_spans("at least `min_bytes` <b>"),
            "at least <code>min_bytes</code> &lt;b&gt;"
        );
        assert_eq!(code_spans("`<i>`"), "<code>&lt;i&gt;</code>");
        assert_eq!(code_spans("one ` only"), "one ` only");
    }
}
