//! `groupwarden rules list | test | new | fields`: writing rules.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::cli::{RulesCommand, RulesEjectArgs, RulesListArgs, RulesNewArgs, RulesTestArgs};
use crate::config::LoadedConfig;
use crate::engine::diagnostics::did_you_mean;
use crate::engine::rule::{Rule, compile_rule, valid_id};
use crate::engine::ruletest::{self, CaseResult, test_file_for};
use crate::engine::sandbox::build_engine;

use super::{Error, Outcome, load_rules, rules_dir};
use crate::pipeline::rules::rules_to_read;

/// Runs `groupwarden rules …`.
pub(crate) fn run(command: RulesCommand) -> Result<Outcome, Error> {
    let mut out = io::stdout().lock();
    match command {
        RulesCommand::List(args) => list(args, &mut out),
        RulesCommand::Test(args) => test(args, &mut out),
        RulesCommand::New(args) => new(args, &mut out),
        RulesCommand::Eject(args) => eject(args, &mut out),
        RulesCommand::Fields => {
            out.write_all(crate::engine::reference::markdown().as_bytes())?;
            Ok(Outcome::Clean)
        }
    }
}

fn list(args: RulesListArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let loaded = LoadedConfig::load(args.location.config.as_deref())?;
    let (_, rules) = load_rules(args.location.rules.as_deref(), &loaded)?;
    let width = rules
        .rules
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:width$}  {:8}  {:10}  {:7}  {:9}  TITLE",
        "RULE", "SEVERITY", "RUNS ON", "ENABLED", "FAST PATH"
    )?;
    for rule in &rules.rules {
        let enabled = if rule.enabled { "yes" } else { "no" };
        // What a scan runs: the `check` compiled with the rule (with the
        // config's parameters), or why there is none.
        let native = rule.check_arity.map(|_| rule.native.as_ref().map(|_| ()));
        let fast = match &native {
            None => "-",
            Some(Ok(())) => "yes",
            Some(Err(_)) => "no",
        };
        writeln!(
            out,
            "{:width$}  {:8}  {:10}  {:7}  {:9}  {}",
            rule.id,
            rule.severity.as_str(),
            runs_on(rule),
            enabled,
            fast,
            rule.title
        )?;
        if let Some(Err(reason)) = native {
            writeln!(out, "{:width$}    interpreted: `check` uses {reason}", "")?;
        }
        for (name, default) in &rule.defaults {
            let value = rule
                .params
                .0
                .get(name.as_str())
                .cloned()
                .unwrap_or_else(|| default.clone());
            let source = if rule.overridden.iter().any(|o| o == name.as_str()) {
                format!("  (config; default {})", literal(default))
            } else {
                String::new()
            };
            writeln!(out, "{:width$}    {name} = {}{source}", "", literal(&value))?;
        }
    }
    let disabled = rules.rules.iter().filter(|r| !r.enabled).count();
    let config = loaded
        .path
        .as_ref()
        .map(|p| format!("; config {}", p.display()))
        .unwrap_or_default();
    let dir = rules_to_read(args.location.rules.as_deref(), &loaded);
    let from = if crate::pipeline::rules::is_built_in(&dir) {
        "built into groupwarden (`groupwarden rules eject DIR` writes them out to edit)".to_owned()
    } else {
        dir.display().to_string()
    };
    writeln!(
        out,
        "\n{} rules, {disabled} disabled{config}\nrules from {from}",
        rules.rules.len()
    )?;
    Ok(Outcome::Clean)
}

/// `rules eject DIR`: the built-in rules and their tests, written out.
fn eject(args: RulesEjectArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let written =
        crate::pipeline::rules::eject(&args.dir, args.force).map_err(|error| Error::File {
            path: args.dir.clone(),
            error,
        })?;
    for path in &written {
        writeln!(out, "wrote {}", path.display())?;
    }
    writeln!(
        out,
        "\nScans use them when [rules] dir (or --rules) names {}.",
        args.dir.display()
    )?;
    Ok(Outcome::Clean)
}

fn runs_on(rule: &Rule) -> &'static str {
    match (rule.check_arity.is_some(), rule.tenant_arity.is_some()) {
        (true, true) => "row+tenant",
        (false, true) => "tenant",
        _ => "row",
    }
}

/// A script value as it would be written in Rhai.
pub(crate) fn literal(value: &rhai::Dynamic) -> String {
    if value.is_unit() {
        "()".to_owned()
    } else if value.is_string() {
        format!("{:?}", value.to_string())
    } else {
        value.to_string()
    }
}

/// Counts across all test files.
#[derive(Default)]
struct TestTally {
    passed: usize,
    failed: usize,
    /// Rules that do not compile and test files that cannot be read.
    broken: usize,
    untested: Vec<String>,
}

fn test(args: RulesTestArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let loaded = LoadedConfig::load(args.location.config.as_deref())?;
    let dir = rules_to_read(args.location.rules.as_deref(), &loaded);
    let engine = build_engine(&loaded.config.rules.limits());
    let paths = files_ending(&dir, ".rhai")?;
    if paths.is_empty() {
        return Err(crate::engine::rule::RuleError::NoRules(dir).into());
    }
    let mut compiled = Vec::new();
    for path in &paths {
        let source = std::fs::read_to_string(path).map_err(|error| Error::File {
            path: path.clone(),
            error,
        })?;
        compiled.push((path, compile_rule(&engine, path, &source)));
    }
    let selected = select(&compiled, &args.rule)?;

    let mut tally = TestTally::default();
    for (path, rule) in selected {
        test_rule(&engine, path, rule, out, &mut tally)?;
    }
    if args.rule.is_empty() {
        report_orphan_tests(&dir, &paths, out, &mut tally)?;
    }
    let failed = tally.failed + tally.broken;
    let untested = match tally.untested.len() {
        0 => String::new(),
        n => format!("; {n} rule(s) without tests: {}", tally.untested.join(", ")),
    };
    let broken = if tally.broken > 0 {
        format!("; {} rule or test file(s) broken", tally.broken)
    } else {
        String::new()
    };
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    writeln!(
        out,
        "\ntest result: {verdict}. {} passed, {} failed{broken}{untested}",
        tally.passed, tally.failed
    )?;
    Ok(if failed == 0 {
        Outcome::Clean
    } else {
        Outcome::Failing
    })
}

type Compiled<'a> = (
    &'a PathBuf,
    Result<Rule, Vec<crate::engine::diagnostics::Diagnostic>>,
);

/// The rules named on the command line (by id, file stem or file name),
/// or all of them.
fn select<'a>(
    compiled: &'a [Compiled<'a>],
    names: &[String],
) -> Result<Vec<&'a Compiled<'a>>, Error> {
    if names.is_empty() {
        return Ok(compiled.iter().collect());
    }
    let stem = |path: &Path| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut selected = Vec::new();
    for name in names {
        let wanted = name.trim_end_matches(".rhai");
        let found = compiled.iter().find(|(path, rule)| {
            stem(path)
                == Path::new(wanted)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
                || rule.as_ref().is_ok_and(|r| &*r.id == wanted)
        });
        match found {
            Some(entry) => selected.push(entry),
            None => {
                let known: Vec<String> = compiled.iter().map(|(path, _)| stem(path)).collect();
                let hint = did_you_mean(wanted, known.iter().map(String::as_str))
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_default();
                return Err(Error::Usage(format!("no rule `{name}`{hint}")));
            }
        }
    }
    Ok(selected)
}

fn test_rule(
    engine: &rhai::Engine,
    path: &Path,
    rule: &Result<Rule, Vec<crate::engine::diagnostics::Diagnostic>>,
    out: &mut dyn Write,
    tally: &mut TestTally,
) -> io::Result<()> {
    let test_path = test_file_for(path);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rule = match rule {
        Ok(rule) => rule,
        Err(diagnostics) => {
            tally.broken += 1;
            writeln!(out, "{name}\n  FAIL  the rule does not compile")?;
            for diagnostic in diagnostics {
                writeln!(out, "{}", indent(&diagnostic.to_string(), 8))?;
            }
            return Ok(());
        }
    };
    if !test_path.exists() {
        tally.untested.push(rule.id.to_string());
        writeln!(
            out,
            "{}\n  no tests: write cases in {}",
            rule.id,
            test_path.display()
        )?;
        return Ok(());
    }
    writeln!(out, "{} ({})", rule.id, test_path.display())?;
    let file = match ruletest::load(&test_path) {
        Ok(file) => file,
        Err(error) => {
            tally.broken += 1;
            writeln!(
                out,
                "  FAIL  the test file cannot be used\n{}",
                indent(&error.to_string(), 8)
            )?;
            return Ok(());
        }
    };
    for case in &file.cases {
        let result = ruletest::run_case(engine, rule, case);
        print_case(&result, &test_path, out)?;
        if result.passed() {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
    }
    Ok(())
}

fn print_case(result: &CaseResult, test_path: &Path, out: &mut dyn Write) -> io::Result<()> {
    if result.passed() {
        return writeln!(out, "  ok    {}", result.name);
    }
    writeln!(
        out,
        "  FAIL  {}  ({}:{})",
        result.name,
        test_path.display(),
        result.line
    )?;
    for line in &result.diff {
        writeln!(out, "{}", indent(line, 8))?;
    }
    Ok(())
}

/// A test file with no rule beside it is a mistake (a renamed rule).
fn report_orphan_tests(
    dir: &Path,
    rules: &[PathBuf],
    out: &mut dyn Write,
    tally: &mut TestTally,
) -> Result<(), Error> {
    for test_path in files_ending(dir, ".test.toml")? {
        if !rules.iter().any(|rule| test_file_for(rule) == test_path) {
            tally.broken += 1;
            let rule = test_path
                .to_string_lossy()
                .trim_end_matches(".test.toml")
                .to_owned()
                + ".rhai";
            writeln!(
                out,
                "{}\n  FAIL  no rule beside it ({rule})",
                test_path.display()
            )?;
        }
    }
    Ok(())
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|line| format!("{:by$}{line}", ""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files of `dir` whose name ends with `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|error| Error::File {
        path: dir.to_owned(),
        error,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        })
        .collect();
    paths.sort();
    Ok(paths)
}

fn new(args: RulesNewArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let name = args.name.trim();
    if !valid_id(name) {
        return Err(Error::Usage(format!(
            "`{name}` cannot be a rule id: use letters, digits, `-` and `_` (e.g. `stale-teams`)"
        )));
    }
    let loaded = LoadedConfig::load(args.location.config.as_deref())?;
    let dir = rules_dir(args.location.rules.as_deref(), &loaded);
    std::fs::create_dir_all(&dir).map_err(|error| Error::File {
        path: dir.clone(),
        error,
    })?;
    let rule_path = dir.join(format!("{name}.rhai"));
    let test_path = test_file_for(&rule_path);
    for path in [&rule_path, &test_path] {
        if path.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; not overwritten",
                path.display()
            )));
        }
    }
    write_new(&rule_path, &rule_skeleton(name))?;
    write_new(&test_path, &test_skeleton(name))?;
    writeln!(
        out,
        "created {} and {}",
        rule_path.display(),
        test_path.display()
    )?;
    let dir_flag = args
        .location
        .rules
        .as_ref()
        .map(|d| format!(" --rules {}", d.display()))
        .unwrap_or_default();
    writeln!(
        out,
        "run its tests with: groupwarden rules test{dir_flag} {name}"
    )?;
    Ok(Outcome::Clean)
}

/// Creates a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    let file_error = |error| Error::File {
        path: path.to_owned(),
        error,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(file_error)?;
    file.write_all(text.as_bytes()).map_err(file_error)
}

/// `stale-teams` → `Stale teams`.
fn title_of(name: &str) -> String {
    let words = name.replace(['-', '_'], " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn rule_skeleton(name: &str) -> String {
    RULE_SKELETON
        .replace("{name}", name)
        .replace("{title}", &title_of(name))
}

fn test_skeleton(name: &str) -> String {
    TEST_SKELETON.replace("{name}", name)
}

const RULE_SKELETON: &str = r#"// {name}: say here what this rule looks for and why it matters.
// (It starts as a working example, "groups with too few members": change
// it and its tests together. Reference: docs/writing-rules.md; every row
// field: `groupwarden rules fields`.)
//
// The top level runs once, when the rule is loaded, and declares what the
// rule is; `check` runs for every row of the report. The rule's id is the
// file name unless `const ID = "..."` says otherwise.

// Shown with the rule; the message of a finding when `check` returns true.
const TITLE = "{title}";
// info, low, medium, high or critical. A finding may override it.
const SEVERITY = "low";
const DESCRIPTION = "Groups (not deleted) with fewer than `min_members` members.";
// For the people who get the findings (group owners, in their email): why
// it matters and what to do, in one paragraph.
const HELP = "A group with hardly any members is often a leftover. If it is still needed, add the people who use it; if not, delete it or ask your admin to.";
// Parameters and their defaults. The configuration overrides them:
//   [rules.params.{name}]
//   min_members = 3
const PARAMS = #{
    // Fewest members a group should have (owners count as members).
    min_members: 2,
};

// Returns what it found about one group:
//   () or false              nothing
//   true                     one finding, with TITLE as the message
//   "text"                   one finding with this message
//   #{ message: "text", severity: "high", evidence: #{ ... } }
//   [ ... ]                  several findings (give each an `id`)
// A blank report cell is (), never 0 or false: test for () before
// comparing, or give a default with `??`.
fn check(row, params) {
    if row.is_deleted ?? false {
        return ();
    }
    let members = row.member_count;
    if members == () {
        return ();
    }
    if members < params.min_members {
        return `Only ${members} member(s); at least ${params.min_members} expected`;
    }
}
"#;

const TEST_SKELETON: &str = r#"# Tests for {name}.rhai; run them with `groupwarden rules test {name}`.
#
# Each case gives only the row fields that matter: the others default to a
# fresh, active, owned, private group in a report refreshed on 2026-11-25
# (see docs/writing-rules.md). `""` is a blank cell. `expect` lists the
# findings: severity (optional) and message (a substring; `matches` takes a
# regular expression). `expect = []` means nothing is found.

[[case]]
name = "a group below the minimum is reported"
row = { member_count = 1 }
expect = [{ severity = "low", message = "Only 1 member(s)" }]

[[case]]
name = "a group at the minimum is fine"
row = { member_count = 2 }
expect = []

[[case]]
name = "an unknown member count is not guessed"
row = { member_count = "" }
expect = []

[[case]]
name = "deleted groups are left alone"
row = { member_count = 1, is_deleted = true }
expect = []

[[case]]
name = "the minimum is a parameter"
params = { min_members = 10 }
row = { member_count = 5 }
expect = [{ message = "at least 10 expected" }]
"#;
