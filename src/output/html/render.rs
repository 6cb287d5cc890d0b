//! The page template, with its stylesheet and script inlined.
//!
//! The template's name ends in `.html`, so minijinja escapes every value
//! for HTML (text and quoted attributes alike); the embedded JSON goes
//! through `tojson`, which also escapes `<`, `>`, `&` and `'`, so a
//! `</script>` in a group name cannot end the script block. The style and
//! script are ours, inserted as they are.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, HtmlEscape, UndefinedBehavior, Value, context};

use super::view::{ReportView, count_of};

const TEMPLATE: &str = include_str!("report.html");
const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// The page may run only its own script and style and load nothing: a
/// script or handler that slipped in anyway would not run, and nothing
/// can reach the network.
pub fn content_security_policy() -> String {
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

pub fn render(view: &ReportView) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    // A misspelt field in the template is a test failure, not a blank.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("count_of", |count: u64, word: String| {
        count_of(count, &word)
    });
    env.add_filter("code_spans", |text: String| {
        Value::from_safe_string(code_spans(&text))
    });
    env.add_template("report.html", TEMPLATE)?;
    env.get_template("report.html")?.render(context! {
        report => Value::from(Serde(view)),
        csp => content_security_policy(),
        style => Value::from_safe_string(STYLE.to_owned()),
        script => Value::from_safe_string(SCRIPT.to_owned()),
    })
}

/// Escapes `text` and sets its `backtick` spans (rule descriptions name
/// parameters that way) in `<code>`; an unpaired backtick stays as it is.
fn code_spans(text: &str) -> String {
    let pieces: Vec<String> = text
        .split('`')
        .map(|piece| HtmlEscape(piece).to_string())
        .collect();
    if pieces.len() % 2 == 0 {
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
