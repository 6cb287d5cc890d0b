//! The page templates (`templates/`), with the stylesheet and script
//! inlined.
//!
//! The templates' names end in `.html`, so minijinja escapes every value
//! for HTML (text and quoted attributes alike); the embedded summary goes
//! through `tojson` and the embedded findings through
//! [`super::data::script_safe`], which both escape `<`, `>` and `&`, so a
//! `</script>` in a group name cannot end the script block. The style and
//! script are ours, inserted as they are.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, HtmlEscape, UndefinedBehavior, Value, context};

use std::io::{self, Write};

use super::data::findings_json;
use super::lifecycle::Lifecycle;
use super::view::{self, ReportView, Section, count_of};

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("page_start.html", include_str!("templates/page_start.html")),
    ("summary.html", include_str!("templates/summary.html")),
    ("charts.html", include_str!("templates/charts.html")),
    (
        "findings_start.html",
        include_str!("templates/findings_start.html"),
    ),
    (
        "section_start.html",
        include_str!("templates/section_start.html"),
    ),
    (
        "finding_row.html",
        include_str!("templates/finding_row.html"),
    ),
    (
        "section_end.html",
        include_str!("templates/section_end.html"),
    ),
    (
        "findings_end.html",
        include_str!("templates/findings_end.html"),
    ),
    ("resolved.html", include_str!("templates/resolved.html")),
    ("exemptions.html", include_str!("templates/exemptions.html")),
    ("page_end.html", include_str!("templates/page_end.html")),
];

/// A part of the page.
#[derive(Clone, Copy, Debug)]
enum Part {
    /// A template rendered with the whole [`ReportView`] as `report`.
    Template(&'static str),
    /// The rules' tables and the embedded findings.
    Findings,
}

/// The page, top to bottom. A new part (a chart, a list) is a template in
/// `templates/` (listed in [`TEMPLATES`]) that reads what it needs from
/// `report`, and an entry here.
const PAGE: &[Part] = &[
    Part::Template("page_start.html"),
    Part::Template("summary.html"),
    Part::Template("charts.html"),
    Part::Findings,
    Part::Template("resolved.html"),
    Part::Template("exemptions.html"),
    Part::Template("page_end.html"),
];

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

/// Writes the page, part by part ([`PAGE`]). Only the kept findings are
/// in `sections` (bounded), so the page's size does not grow with the
/// report's.
pub(crate) fn write_page(
    view: &ReportView,
    sections: &[Section<'_>],
    lifecycle: Option<&Lifecycle>,
    out: &mut dyn Write,
) -> Result<(), RenderError> {
    let env = environment()?;
    let report = Value::from(Serde(view));
    for part in PAGE {
        match part {
            Part::Template(name) => {
                let text = env.get_template(name)?.render(context! {
                    report => report.clone(),
                    csp => content_security_policy(),
                    style => Value::from_safe_string(STYLE.to_owned()),
                    script => Value::from_safe_string(SCRIPT.to_owned()),
                })?;
                out.write_all(text.as_bytes())?;
            }
            Part::Findings => write_findings(&env, view, &report, sections, lifecycle, out)?,
        }
    }
    Ok(())
}

/// Each rule's table with its first rows as HTML (read without
/// JavaScript), then every kept finding as JSON for the script.
fn write_findings(
    env: &Environment<'_>,
    view: &ReportView,
    report: &Value,
    sections: &[Section<'_>],
    lifecycle: Option<&Lifecycle>,
    out: &mut dyn Write,
) -> Result<(), RenderError> {
    let columns = view.columns();
    let start = env
        .get_template("findings_start.html")?
        .render(context! { report => report.clone() })?;
    out.write_all(start.as_bytes())?;
    let section_start = env.get_template("section_start.html")?;
    let finding_row = env.get_template("finding_row.html")?;
    let section_end = env.get_template("section_end.html")?;
    for section in sections {
        let header = Value::from(Serde(&section.header));
        let text = section_start.render(context! {
            section => header.clone(),
            columns => Value::from(Serde(columns)),
        })?;
        out.write_all(text.as_bytes())?;
        for kept in section.findings.iter().take(section.header.shown) {
            let row = finding_row.render(context! {
                row => Value::from(Serde(view::finding_row(kept, lifecycle))),
                columns => Value::from(Serde(columns)),
            })?;
            out.write_all(row.as_bytes())?;
        }
        let text = section_end.render(context! { section => header, report => report.clone() })?;
        out.write_all(text.as_bytes())?;
    }
    let end = env.get_template("findings_end.html")?.render(context! {
        findings_json => Value::from_safe_string(findings_json(sections, columns, lifecycle)),
    })?;
    out.write_all(end.as_bytes())?;
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
    for &(name, source) in TEMPLATES {
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
