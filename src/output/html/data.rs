//! The kept findings as compact JSON embedded in the page, for its script
//! to page, filter and sort: each finding an array of numbers indexing one
//! table of strings (owners, evidence names and messages repeat), about a
//! third of the size of the same findings as HTML rows.
//!
//! ```text
//! {"strings": ["Sales", "ann@contoso.com", …],
//!  "severities": [["info", "Info", "○"], …],      index = severity rank
//!  "statuses": [["new", "New", "✦"], …],
//!  "columns": {"status": false, "first_seen": false},
//!  "rules": [{"id": "inactive-groups", "total": 61572,
//!             "rows": [[rank, group, owner|null, message, [name, value, …],
//!                       line|null, status|null, first_seen|null, key], …]}]}
//! ```
//!
//! The JSON sits in a `<script type="application/json">` block, so `<`,
//! `>` and `&` are written as `\u003c`, `\u003e`, `\u0026`: a group named
//! `</script>` cannot end the block.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::lifecycle::{Lifecycle, Status};
use super::view::{
    Columns, Section, finding_state, group_label, severity_icon, severity_label, status_icon,
    status_label,
};
use crate::engine::finding::Severity;

/// Strings numbered in order of first use.
#[derive(Default)]
struct Strings {
    index: HashMap<String, usize>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, text: &str) -> Value {
        if let Some(&i) = self.index.get(text) {
            return json!(i);
        }
        let i = self.list.len();
        self.list.push(text.to_owned());
        self.index.insert(text.to_owned(), i);
        json!(i)
    }

    fn maybe(&mut self, text: Option<&str>) -> Value {
        text.map_or(Value::Null, |t| self.id(t))
    }
}

/// The embedded findings of `sections`, as JSON safe inside a script block.
pub(crate) fn findings_json(
    sections: &[Section<'_>],
    columns: Columns,
    lifecycle: Option<&Lifecycle>,
) -> String {
    let mut strings = Strings::default();
    let rules: Vec<Value> = sections
        .iter()
        .map(|section| {
            let rows: Vec<Value> = section
                .findings
                .iter()
                .map(|kept| {
                    let finding = &kept.finding;
                    let state = finding_state(kept, lifecycle);
                    let evidence: Vec<Value> = finding
                        .evidence
                        .0
                        .iter()
                        .flat_map(|(name, value)| {
                            [strings.id(name), strings.id(&value.to_string())]
                        })
                        .collect();
                    json!([
                        finding.severity as u8,
                        strings.id(&group_label(finding)),
                        strings.maybe(finding.owner.as_deref()),
                        strings.id(&finding.message),
                        evidence,
                        finding.line,
                        state.map(|(s, _)| status_position(s)),
                        strings.maybe(state.and_then(|(_, d)| d).map(|d| d.to_string()).as_deref()),
                        strings.id(&finding.key),
                    ])
                })
                .collect();
            json!({
                "id": section.header.id,
                "total": section.header.count,
                "rows": rows,
            })
        })
        .collect();
    let severities: Vec<Value> = Severity::ALL
        .iter()
        .map(|&s| json!([s.as_str(), severity_label(s), severity_icon(s)]))
        .collect();
    let statuses: Vec<Value> = Status::ALL
        .iter()
        .map(|&s| json!([s.as_str(), status_label(s), status_icon(s)]))
        .collect();
    let document = json!({
        "strings": strings.list,
        "severities": severities,
        "statuses": statuses,
        "columns": columns,
        "rules": rules,
    });
    script_safe(&document.to_string())
}

fn status_position(status: Status) -> usize {
    Status::ALL
        .iter()
        .position(|&s| s == status)
        .unwrap_or_default()
}

/// JSON text that cannot end or open anything inside an HTML `<script>`
/// block: `<`, `>` and `&` only ever occur inside JSON strings, where
/// their `\u` escapes mean the same.
pub(crate) fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Line and paragraph separators end a line in older JavaScript.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::script_safe;

    #[test]
    fn markup_in_strings_is_escaped_and_the_json_means_the_same() {
        let value = serde_json::json!({"name": "</script><script>alert(1)</script> & <!--"});
        let safe = script_safe(&value.to_string());
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }
}
