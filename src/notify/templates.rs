//! The texts of emails and chat messages: minijinja templates.
//!
//! The built-in templates are compiled into the binary; a channel's
//! `template_dir` may replace any of them by a file of the same name, and
//! may add partials (`_*.html`, …) for them to include. Templates are
//! loaded and test-rendered when the configuration is validated, so a
//! broken template is a config error, not a failed 6 a.m. delivery.
//!
//! Escaping follows the file name: `.html` escapes HTML, `.json` writes
//! every `{{ value }}` as a JSON value (strings come out quoted), `.txt`
//! writes text as is. Undefined names are errors, so a typo such as
//! `{{ conts.new }}` fails validation instead of rendering as nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// The templates groupwarden ships, by name.
pub(crate) const BUILT_IN: [(&str, &str); 5] = [
    (EMAIL_SUBJECT, include_str!("templates/email-subject.txt")),
    (EMAIL_TEXT, include_str!("templates/email.txt")),
    (EMAIL_HTML, include_str!("templates/email.html")),
    (SLACK, include_str!("templates/slack.json")),
    (TEAMS, include_str!("templates/teams.json")),
];

/// The email subject line; line breaks in its output become spaces.
pub(crate) const EMAIL_SUBJECT: &str = "email-subject.txt";
/// The plain-text part of an email.
pub(crate) const EMAIL_TEXT: &str = "email.txt";
/// The HTML part of an email.
pub(crate) const EMAIL_HTML: &str = "email.html";
/// A Slack webhook's message (Block Kit JSON).
pub(crate) const SLACK: &str = "slack.json";
/// A Teams webhook's message (an Adaptive Card, as JSON).
pub(crate) const TEAMS: &str = "teams.json";

/// A template that cannot be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A channel's `template_dir`, or a file in it, cannot be read.
    #[error("cannot read template folder {path}: {error}")]
    Io {
        /// The folder or file that could not be read.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file in `template_dir` is neither a built-in template's name nor
    /// a partial (`_*`), so it would never be used; likely a typo.
    #[error(
        "{path}: not a template groupwarden uses (expected one of email-subject.txt, email.txt, email.html, slack.json, teams.json, or a partial whose name starts with `_`)"
    )]
    Unknown {
        /// The file.
        path: PathBuf,
    },
    /// A template does not parse, or failed to render (e.g. an undefined
    /// name).
    #[error("template {origin}: {message}")]
    Invalid {
        /// The template's file, or `NAME (built-in)`, and the line when known.
        origin: String,
        /// What minijinja reported, with its causes.
        message: String,
    },
}

/// One channel's templates: the built-ins with its overrides applied.
#[derive(Clone, Debug)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    /// Where each overridden template came from, for error messages.
    overrides: Vec<(String, PathBuf)>,
}

impl Templates {
    /// The built-ins, then every file of `dir` on top.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = new_environment();
        for (name, source) in BUILT_IN {
            env.add_template(name, source)
                .map_err(|e| invalid(format!("{name} (built-in)"), &e))?;
        }
        let mut overrides = Vec::new();
        if let Some(dir) = dir {
            for (name, path) in template_files(dir)? {
                let source = std::fs::read_to_string(&path).map_err(|error| TemplateError::Io {
                    path: path.clone(),
                    error,
                })?;
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| invalid(path.display().to_string(), &e))?;
                overrides.push((name, path));
            }
        }
        Ok(Templates {
            env: Arc::new(env),
            overrides,
        })
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: &impl Serialize) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| invalid(self.origin(name), &e))?;
        template
            .render(minijinja::Value::from(minijinja::value::Serde(context)))
            .map_err(|e| invalid(self.origin(e.name().unwrap_or(name)), &e))
    }

    /// The file a template came from, or `NAME (built-in)`.
    fn origin(&self, name: &str) -> String {
        match self.overrides.iter().find(|(n, _)| n == name) {
            Some((_, path)) => path.display().to_string(),
            None => format!("{name} (built-in)"),
        }
    }
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else if name.ends_with(".json") {
            AutoEscape::Json
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("shorten", shorten);
    env.add_filter("slack", slack_escape);
    env.add_filter("teams_md", teams_markdown_escape);
    env
}

/// The known templates and partials in `dir`, by name; anything else is
/// an error, so a misspelt override cannot be silently ignored.
fn template_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, TemplateError> {
    let io = |error| TemplateError::Io {
        path: dir.to_owned(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || path.is_dir() {
            continue;
        }
        let known = BUILT_IN.iter().any(|(built_in, _)| *built_in == name) || name.starts_with('_');
        if !known {
            return Err(TemplateError::Unknown { path });
        }
        files.push((name, path));
    }
    files.sort();
    Ok(files)
}

fn invalid(origin: String, error: &minijinja::Error) -> TemplateError {
    let place = error
        .line()
        .map(|line| format!(", line {line}"))
        .unwrap_or_default();
    let mut message = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    TemplateError::Invalid {
        origin: format!("{origin}{place}"),
        message,
    }
}

/// `text` cut to `max` characters, ending in `…` when cut.
fn shorten(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup; control characters
/// become spaces so a name cannot break the layout.
fn slack_escape(text: String) -> String {
    without_control_characters(&text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The characters Adaptive Card Markdown (and the Markdown subset Teams
/// renders) gives a meaning to anywhere in a line: links, emphasis, code.
const TEAMS_MARKDOWN_SPECIAL: &[char] = &['\\', '[', ']', '(', ')', '*', '_', '~', '`'];

/// Characters that mean something only at the start of a line (headings,
/// quotes, lists, tables); line breaks are gone, so only the text's start.
const TEAMS_MARKDOWN_LINE_START: &[char] = &['#', '>', '-', '+', '!', '|'];

/// Zero-width joiner: splits what Teams would turn into a link into text
/// that reads the same.
const ZERO_WIDTH_JOINER: char = '\u{200D}';

/// Text that Teams shows as written: every Markdown character is escaped
/// with a backslash, and `scheme://` and `www.` get a zero-width joiner so
/// Teams does not autolink a URL someone put in a group's name.
fn teams_markdown_escape(text: String) -> String {
    let text = without_control_characters(&text);
    let mut escaped = String::with_capacity(text.len() + text.len() / 4);
    let start = text.len() - text.trim_start().len();
    for (at, c) in text.char_indices() {
        if TEAMS_MARKDOWN_SPECIAL.contains(&c)
            || (at == start && TEAMS_MARKDOWN_LINE_START.contains(&c))
        {
            escaped.push('\\');
        }
        escaped.push(c);
        if c == ':' {
            // `https:` + ZWJ + `//`: no longer a URL scheme.
            escaped.push(ZERO_WIDTH_JOINER);
        }
    }
    escaped
        .replace("www.", &format!("www{ZERO_WIDTH_JOINER}."))
        .replace("WWW.", &format!("WWW{ZERO_WIDTH_JOINER}."))
}

/// `text` with control characters (line breaks included) as spaces: user
/// input is one line in a chat message.
fn without_control_characters(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_counts_characters_not_bytes() {
        assert_eq!(shorten("héllo wörld".into(), 5), "héll…");
        assert_eq!(shorten("short".into(), 5), "short");
    }

    #[test]
    fn teams_markdown_is_shown_as_text() {
        let escaped = teams_markdown_escape("[Reset](https://evil.example/login) *b* 1.\n".into());
        assert_eq!(
            escaped,
            "\\[Reset\\]\\(https:\u{200D}//evil.example/login\\) \\*b\\* 1. "
        );
        assert!(teams_markdown_escape("www.evil.example".into()).starts_with("www\u{200D}."));
    }

    #[test]
    fn slack_markup_and_control_characters_are_escaped() {
        assert_eq!(
            slack_escape("R&D <ops>\u{7}.csv".into()),
            "R&amp;D &lt;ops&gt; .csv"
        );
    }

    #[test]
    fn an_unknown_file_in_the_template_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("emial.html"), "x").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("emial.html: not a template groupwarden uses"),
            "{err}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("email.txt"),
            "line one\n{% for x in items %}\nno end\n",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("email.txt, line 3: syntax error: unexpected end of input"),
            "{err}"
        );
    }
}
