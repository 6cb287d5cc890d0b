//! `index.html` across tenants: after `scan --all-tenants` writes one
//! page per tenant into a folder, a table of each tenant's findings by
//! rule, linking to its page; a tenant whose scan failed shows its error.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;

use minijinja::{Environment, context};
use serde::Serialize;

/// One tenant's row of the overview.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TenantRow {
    /// The tenant's name.
    pub name: String,
    /// Its page, relative to the overview.
    pub page: String,
    /// Findings by rule id; empty for a failed scan.
    pub findings: Vec<(String, u64)>,
    /// Why its scan failed, if it did.
    pub error: Option<String>,
}

const TEMPLATE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="generator" content="groupwarden">
<title>Groups governance report · {{ tenants|length }} tenants</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.failed { color: #a00; text-align: left; }
</style>
</head>
<body>
<h1>Microsoft 365 groups governance report: {{ tenants|length }} tenants</h1>
<p>Scanned {{ generated_at }}. Findings per tenant and rule; each tenant's name opens its own report.</p>
<table id="tenants">
<thead><tr><th scope="col">Tenant</th>{% for rule in rules %}<th scope="col">{{ rule }}</th>{% endfor %}<th scope="col">All</th></tr></thead>
<tbody>
{% for tenant in tenants %}
<tr data-tenant="{{ tenant.name }}"><th scope="row">{% if tenant.error %}{{ tenant.name }}{% else %}<a href="{{ tenant.page }}">{{ tenant.name }}</a>{% endif %}</th>
{% if tenant.error %}<td class="failed" colspan="{{ rules|length + 1 }}">scan failed: {{ tenant.error }}</td>
{% else %}{% for rule in rules %}<td data-rule="{{ rule }}">{{ tenant.counts[rule] or 0 }}</td>{% endfor %}<td>{{ tenant.total }}</td>
{% endif %}</tr>
{% endfor %}
</tbody>
</table>
</body>
</html>
"#;

/// Writes the overview of `tenants` to `path`.
pub(crate) fn write(
    path: &Path,
    tenants: &[TenantRow],
    generated_at: jiff::Timestamp,
) -> io::Result<()> {
    let rules: BTreeSet<String> = tenants
        .iter()
        .flat_map(|t| t.findings.iter().map(|(rule, _)| rule.clone()))
        .collect();
    let rows: Vec<_> = tenants
        .iter()
        .map(|t| {
            let counts: std::collections::BTreeMap<String, u64> =
                t.findings.iter().cloned().collect();
            context! {
                name => t.name.clone(),
                page => t.page.clone(),
                error => t.error.clone(),
                counts => counts,
                total => t.findings.iter().map(|(_, n)| n).sum::<u64>(),
            }
        })
        .collect();
    let mut env = Environment::new();
    env.add_template("index.html", TEMPLATE)
        .map_err(io::Error::other)?;
    let page = env
        .get_template("index.html")
        .and_then(|t| {
            t.render(context! {
                tenants => rows,
                rules => rules,
                generated_at => generated_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
            })
        })
        .map_err(io::Error::other)?;
    let output = crate::output::file::open_output(Some(path), Some(crate::output::Format::Html))
        .map_err(|e| e.error)?;
    let mut out = output.out;
    out.write_all(page.as_bytes())?;
    out.flush()?;
    drop(out);
    if let Some(file) = output.file {
        file.commit().map_err(|e| e.error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overview_counts_each_tenant_by_rule_and_escapes_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.html");
        let tenants = [
            TenantRow {
                name: "a".into(),
                page: "a.html".into(),
                findings: vec![
                    ("ownerless-groups".into(), 2),
                    ("inactive-groups".into(), 1),
                ],
                error: None,
            },
            TenantRow {
                name: "b".into(),
                page: "b.html".into(),
                findings: vec![],
                error: Some("<sign-in refused>".into()),
            },
        ];
        write(&path, &tenants, "2026-11-27T06:00:00Z".parse().unwrap()).unwrap();
        let page = std::fs::read_to_string(path).unwrap();
        assert!(page.contains("<a href=\"a.html\">a</a>"), "{page}");
        assert!(
            page.contains("<td data-rule=\"ownerless-groups\">2</td>"),
            "{page}"
        );
        assert!(page.contains("<td>3</td>"), "{page}");
        assert!(
            page.contains("scan failed: &lt;sign-in refused&gt;"),
            "{page}"
        );
    }
}
