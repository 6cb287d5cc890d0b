//! Rule authoring, through the real binary: `rules list | test | new |
//! fields`, `validate`, `explain`, and tenant rules in `scan`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

use crate::util::gw;

const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period";

/// Four groups: inactive for 90 days, ownerless with guests, deleted with
/// storage, and one with a value the parser refuses.
const REPORT_ROWS: &[&str] = &[
    "2026-11-25,Finance EMEA,False,jane@contoso.com,2026-08-27,Private,12,3,40,7,0,0,0,430,4757931,120,1450329,01c48e08-8b1e-4bd4-9d43-0e3f7f1d0a55,30",
    "2026-11-25,Partners,False,,2026-11-20,Public,20,15,4,1,0,0,0,43,47579,12,1450329,02c48e08-8b1e-4bd4-9d43-0e3f7f1d0a55,30",
    "2026-11-25,Old Project,True,bob@contoso.com,,Private,2,0,,,,,,,5000000000,,1,03c48e08-8b1e-4bd4-9d43-0e3f7f1d0a55,30",
    "2026-11-25,Bad Row,False,x@contoso.com,2026-11-20,Private,N/A,0,,,,,,,,,,04c48e08-8b1e-4bd4-9d43-0e3f7f1d0a55,30",
];

const CONCEALED: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Group Id,Report Period
2023-05-31,7D3654B07E126BBD0D18174368FC243F,False,,,Private,1,0,00000000-0000-0000-0000-000000000000,30
2023-05-31,8E3654B07E126BBD0D18174368FC243F,False,A1B2C3D4E5F6A1B2C3D4E5F6A1B2C3D4,2023-05-30,Private,4,0,00000000-0000-0000-0000-000000000000,30
";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The binary (see [`gw`]), without colours.
fn groupwarden(dir: &Path) -> Command {
    let mut command = gw(dir);
    command.env("NO_COLOR", "1");
    command
}

struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn report(&self) -> PathBuf {
        self.write(
            "report.csv",
            &format!("{HEADER}\n{}\n", REPORT_ROWS.join("\n")),
        )
    }

    /// The bundled rules, copied so tests can add to them.
    fn bundled_rules(&self) -> PathBuf {
        for entry in std::fs::read_dir(repo("rules")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::create_dir_all(self.path("rules")).unwrap();
            std::fs::copy(&path, self.path("rules").join(path.file_name().unwrap())).unwrap();
        }
        self.path("rules")
    }

    fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        groupwarden(self.dir.path()).args(args).assert()
    }
}

fn stdout_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

/// Whether a line of `out` reads `words` (however the columns are padded).
fn has_line(out: &str, words: &str) -> bool {
    let wanted: Vec<&str> = words.split_whitespace().collect();
    out.lines()
        .any(|line| line.split_whitespace().collect::<Vec<_>>() == wanted)
}

// --- rules test ---------------------------------------------------------

#[test]
fn every_bundled_rule_has_tests_and_they_pass() {
    let ws = Workspace::new();
    let assert = ws
        .run(&["rules", "test", "--rules", repo("rules").to_str().unwrap()])
        .success();
    let out = stdout_of(&assert);
    assert!(out.contains("test result: ok."), "{out}");
    assert!(
        !out.contains("without tests") && !out.contains("FAIL"),
        "{out}"
    );
    for rule in [
        "deleted-with-storage",
        "high-external-members",
        "inactive-groups",
        "ownerless-groups",
    ] {
        assert!(
            out.contains(&format!("{rule} (")),
            "{rule} has no tests:\n{out}"
        );
    }
    assert!(
        out.contains("ok    exactly 90 days without activity is inactive"),
        "{out}"
    );
}

#[test]
fn every_example_rule_has_tests_and_they_pass() {
    let ws = Workspace::new();
    let assert = ws
        .run(&[
            "rules",
            "test",
            "--rules",
            repo("examples/rules").to_str().unwrap(),
        ])
        .success();
    let out = stdout_of(&assert);
    assert!(
        out.contains("test result: ok.") && !out.contains("without tests"),
        "{out}"
    );
    for rule in [
        "guest-majority",
        "public-with-guests",
        "large-idle-sites",
        "empty-groups",
        "tenant-inactive-share",
    ] {
        assert!(out.contains(&format!("{rule} (")), "{rule}:\n{out}");
    }
}

#[test]
fn a_failing_case_exits_1_and_shows_expected_against_actual() {
    let ws = Workspace::new();
    ws.write("rules/stale.rhai", "const SEVERITY = \"low\";\nfn check(row) {\n  let d = row.days_since_activity;\n  if d != () && d >= 30 { `idle ${d} days` }\n}\n");
    ws.write(
        "rules/stale.test.toml",
        "[[case]]\nname = \"fires at 30\"\nrow = { days_since_activity = 30 }\nexpect = [{ severity = \"low\", message = \"idle 30 days\" }]\n\n\
         [[case]]\nname = \"wrongly expects silence\"\nrow = { days_since_activity = 45 }\nexpect = []\n\n\
         [[case]]\nname = \"wrongly expects high\"\nrow = { days_since_activity = 31 }\nexpect = [{ severity = \"high\" }]\n",
    );
    let assert = ws.run(&["rules", "test", "stale"]).code(1);
    let out = stdout_of(&assert);
    assert!(out.contains("  ok    fires at 30"), "{out}");
    assert!(
        out.contains("  FAIL  wrongly expects silence  (rules/stale.test.toml:6)"),
        "{out}"
    );
    assert!(
        out.contains("          expected no findings\n        + low      \"idle 45 days\""),
        "{out}"
    );
    assert!(
        out.contains("        - high     finding\n        + low      \"idle 31 days\""),
        "{out}"
    );
    assert!(
        out.contains("test result: FAILED. 1 passed, 2 failed"),
        "{out}"
    );
}

#[test]
fn a_misspelt_field_in_a_test_row_names_the_closest_one() {
    let ws = Workspace::new();
    ws.write("rules/stale.rhai", "fn check(row) { false }\n");
    ws.write(
        "rules/stale.test.toml",
        "[[case]]\nname = \"typo\"\nrow = { days_since_activty = 3 }\nexpect = []\n",
    );
    let out = stdout_of(&ws.run(&["rules", "test"]).code(1));
    assert!(out.contains("rules/stale.test.toml:3:9: unknown field `days_since_activty`; did you mean `days_since_activity`?"), "{out}");
}

#[test]
fn a_misspelt_field_in_a_rule_fails_its_tests_with_a_caret() {
    let ws = Workspace::new();
    ws.write(
        "rules/stale.rhai",
        "fn check(row) {\n  row.days_since_activty > 3\n}\n",
    );
    ws.write(
        "rules/stale.test.toml",
        "[[case]]\nname = \"x\"\nexpect = []\n",
    );
    let out = stdout_of(&ws.run(&["rules", "test"]).code(1));
    assert!(out.contains("FAIL  the rule does not compile"), "{out}");
    assert!(out.contains("rules/stale.rhai:2:7: unknown field `days_since_activty`; did you mean `days_since_activity`?"), "{out}");
    assert!(
        out.contains(" 2 |   row.days_since_activty > 3\n") && out.contains("   |       ^"),
        "{out}"
    );
}

#[test]
fn a_throw_inside_a_helper_points_at_the_throw_and_the_call() {
    let ws = Workspace::new();
    ws.write(
        "rules/guests.rhai",
        "fn check_guests(n) {\n    if n > 100 {\n        throw `too many guests: ${n}`;\n    }\n}\nfn check(row) {\n    let n = row.external_member_count;\n    if n != () {\n        check_guests(n);\n    }\n}\n",
    );
    ws.write(
        "rules/guests.test.toml",
        "[[case]]\nname = \"unexpected error\"\nrow = { external_member_count = 120 }\nexpect = []\n\n\
         [[case]]\nname = \"expected error\"\nrow = { external_member_count = 120 }\nexpect_error = \"too many guests\"\n",
    );
    let out = stdout_of(&ws.run(&["rules", "test"]).code(1));
    assert!(
        out.contains("! rule error: rules/guests.rhai:3:9: too many guests: 120"),
        "{out}"
    );
    assert!(
        out.contains(" 3 |         throw `too many guests: ${n}`;"),
        "{out}"
    );
    assert!(
        out.contains("= note: in `check_guests`, called at line 9, column 9"),
        "{out}"
    );
    assert!(out.contains("  ok    expected error"), "{out}");
}

#[test]
fn a_test_file_without_its_rule_and_a_rule_without_tests_are_reported() {
    let ws = Workspace::new();
    ws.write("rules/kept.rhai", "fn check(row) { false }\n");
    ws.write(
        "rules/renamed.test.toml",
        "[[case]]\nname = \"x\"\nexpect = []\n",
    );
    let out = stdout_of(&ws.run(&["rules", "test"]).code(1));
    assert!(
        out.contains("no tests: write cases in rules/kept.test.toml"),
        "{out}"
    );
    assert!(
        out.contains("rules/renamed.test.toml\n  FAIL  no rule beside it (rules/renamed.rhai)"),
        "{out}"
    );
    ws.run(&["rules", "test", "kep"])
        .code(2)
        .stderr(predicate::str::contains(
            "no rule `kep`; did you mean `kept`?",
        ));
}

// --- rules new ----------------------------------------------------------

#[test]
fn rules_new_writes_a_skeleton_whose_tests_pass_and_never_overwrites() {
    let ws = Workspace::new();
    ws.run(&["rules", "new", "stale-teams"])
        .success()
        .stdout(predicate::str::contains(
            "created rules/stale-teams.rhai and rules/stale-teams.test.toml",
        ));
    let rule = std::fs::read_to_string(ws.path("rules/stale-teams.rhai")).unwrap();
    assert!(
        rule.contains("const TITLE = \"Stale teams\";") && rule.contains("fn check(row, params)"),
        "{rule}"
    );
    let out = stdout_of(&ws.run(&["rules", "test", "stale-teams"]).success());
    assert!(out.contains("test result: ok. 5 passed, 0 failed"), "{out}");

    std::fs::write(ws.path("rules/stale-teams.rhai"), "// mine\n").unwrap();
    ws.run(&["rules", "new", "stale-teams"])
        .code(2)
        .stderr(predicate::str::contains(
            "rules/stale-teams.rhai already exists; not overwritten",
        ));
    assert_eq!(
        std::fs::read_to_string(ws.path("rules/stale-teams.rhai")).unwrap(),
        "// mine\n"
    );
    ws.run(&["rules", "new", "../escape"])
        .code(2)
        .stderr(predicate::str::contains("cannot be a rule id"));
}

// --- rules list ---------------------------------------------------------

#[test]
fn rules_list_shows_severity_parameters_overrides_and_disabled_rules() {
    let ws = Workspace::new();
    let rules = ws.bundled_rules();
    ws.write("rules/tenant-idle.rhai", "fn tenant(summary) { false }\n");
    ws.write(
        "groupwarden.toml",
        "[rules]\ndisabled = [\"ownerless-groups\"]\n[rules.params.inactive-groups]\ndays = 60\n",
    );
    let out = stdout_of(
        &ws.run(&["rules", "list", "--rules", rules.to_str().unwrap()])
            .success(),
    );
    assert!(
        out.lines().any(|l| l.starts_with("inactive-groups")
            && l.contains("medium")
            && l.contains("yes")
            && l.ends_with("Inactive groups")),
        "{out}"
    );
    assert!(out.contains("days = 60  (config; default 90)"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("ownerless-groups") && l.contains(" no ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("tenant-idle") && l.contains("tenant")),
        "{out}"
    );
    assert!(out.contains("min_external = 10\n"), "{out}");
    assert!(
        out.contains("6 rules, 1 disabled; config groupwarden.toml"),
        "{out}"
    );
}

#[test]
fn rules_list_says_which_rules_run_on_the_fast_path_and_why_not() {
    let ws = Workspace::new();
    ws.write(
        "rules/simple.rhai",
        "fn check(row) { if row.member_count > 5 { \"big\" } return; }\n",
    );
    ws.write(
        "rules/closure.rhai",
        "fn check(row) {\n    let f = || { return \"boom\"; };\n    if row.is_deleted ?? false { f.call() }\n}\n",
    );
    let out = stdout_of(&ws.run(&["rules", "list", "--rules", "rules"]).success());
    let line = |id: &str| out.lines().find(|l| l.starts_with(id)).unwrap_or_default();
    assert!(line("simple").contains(" yes "), "{out}");
    assert!(line("closure").contains(" no "), "{out}");
    assert!(
        out.contains("interpreted: `check` uses a closure or function pointer"),
        "{out}"
    );
}

// --- validate -----------------------------------------------------------

#[test]
fn validate_accepts_a_good_setup() {
    let ws = Workspace::new();
    ws.bundled_rules();
    ws.write(
        "groupwarden.toml",
        "[rules]\ndir = \"rules\"\n[rules.params.inactive-groups]\ndays = 60\n",
    );
    let out = stdout_of(&ws.run(&["validate"]).success());
    assert!(out.contains("ok    config      groupwarden.toml"), "{out}");
    assert!(
        out.contains("ok    rules       5 rules compiled in rules (0 disabled)"),
        "{out}"
    );
    assert!(
        out.contains("ok    source      no [source]: reports come from --input"),
        "{out}"
    );
    assert!(out.ends_with("\nvalid\n"), "{out}");
}

#[test]
fn validate_reports_a_misspelt_config_key_with_did_you_mean() {
    let ws = Workspace::new();
    ws.bundled_rules();
    ws.write(
        "bad.toml",
        "[rules]\ndir = \"rules\"\ndisabeld = [\"ownerless-groups\"]\n",
    );
    let out = stdout_of(&ws.run(&["validate", "--config", "bad.toml"]).code(1));
    assert!(out.contains("FAIL  config      1 problem(s)"), "{out}");
    assert!(
        out.contains("TOML parse error at line 3, column 1"),
        "{out}"
    );
    assert!(
        out.contains("unknown key `disabeld` in [rules]; did you mean `disabled`?"),
        "{out}"
    );
    assert!(
        out.contains("skip  rules       needs a readable config"),
        "{out}"
    );
    // The same hint where the config is used.
    ws.write("report.csv", &format!("{HEADER}\n"));
    ws.run(&["scan", "-i", "report.csv", "--config", "bad.toml"])
        .code(2)
        .stderr(predicate::str::contains("did you mean `disabled`?"));
}

#[test]
fn validate_lists_every_rule_and_override_problem() {
    let ws = Workspace::new();
    let rules = ws.bundled_rules();
    ws.write(
        "rules/typo.rhai",
        "fn check(row) {\n  row.days_since_activty > 3\n}\n",
    );
    ws.write(
        "rules/broken.rhai",
        "fn check(row) {\n  row.member_count >\n}\n",
    );
    let out = stdout_of(
        &ws.run(&["validate", "--rules", rules.to_str().unwrap()])
            .code(1),
    );
    assert!(out.contains("FAIL  rules       2 problem(s)"), "{out}");
    assert!(
        out.contains(
            "typo.rhai:2:7: unknown field `days_since_activty`; did you mean `days_since_activity`?"
        ),
        "{out}"
    );
    assert!(out.contains("broken.rhai:3:1:"), "{out}");

    std::fs::remove_file(rules.join("typo.rhai")).unwrap();
    std::fs::remove_file(rules.join("broken.rhai")).unwrap();
    ws.write("groupwarden.toml", "[rules]\ndisabled = [\"inactive-group\"]\n[rules.params.inactive-groups]\ndays = \"60\"\ndayz = 3\n");
    let out = stdout_of(
        &ws.run(&["validate", "--rules", rules.to_str().unwrap()])
            .code(1),
    );
    assert!(out.contains("config key `rules.disabled[0]`: no rule `inactive-group` in the rules folder; did you mean `inactive-groups`?"), "{out}");
    assert!(out.contains("config key `rules.params.inactive-groups.days`: expected int like the default `90`, found string"), "{out}");
    assert!(out.contains("config key `rules.params.inactive-groups.dayz`: rule `inactive-groups` has no parameter `dayz` (it has: days); did you mean `days`?"), "{out}");
}

#[test]
fn validate_loads_the_source_credential_without_contacting_anyone() {
    let ws = Workspace::new();
    ws.bundled_rules();
    ws.write(
        "groupwarden.toml",
        "[source]\ntype = \"graph\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n\
         client_secret_env = \"GW_TEST_SECRET\"\n\
         # Nothing listens here: a request would fail the step.\nauthority_url = \"http://127.0.0.1:9\"\ngraph_url = \"http://127.0.0.1:9\"\n",
    );
    let mut command = groupwarden(ws.dir.path());
    let out = command
        .arg("validate")
        .env_remove("GW_TEST_SECRET")
        .assert()
        .code(1);
    let out = stdout_of(&out);
    assert!(out.contains("FAIL  source      1 problem(s)"), "{out}");
    assert!(
        out.contains("client_secret_env: names $GW_TEST_SECRET, which is not set"),
        "{out}"
    );

    let mut command = groupwarden(ws.dir.path());
    let out = command
        .arg("validate")
        .env("GW_TEST_SECRET", "s3cret-value-never-shown")
        .assert()
        .success();
    let out = stdout_of(&out);
    assert!(
        out.contains("ok    source      Microsoft Graph, tenant contoso.onmicrosoft.com, app 11111111-2222-3333-4444-555555555555, client secret loaded (not contacted)"),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
}

// --- explain ------------------------------------------------------------

#[test]
fn explain_shows_the_parsed_row_and_every_rule() {
    let ws = Workspace::new();
    let rules = ws.bundled_rules();
    ws.write("rules/broken-on-deleted.rhai", "fn check(row) {\n  if row.is_deleted == true {\n    throw \"cannot judge deleted groups\";\n  }\n}\n");
    let report = ws.report();
    let args = |group: &str| {
        vec![
            "explain",
            "--input",
            report.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            group,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };

    let out = stdout_of(
        &ws.run(
            &args("01c48e08-8b1e-4bd4-9d43-0e3f7f1d0a55")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .success(),
    );
    assert!(out.contains("Group \"Finance EMEA\""), "{out}");
    assert!(
        out.contains("  last_activity_date                  \"2026-08-27\""),
        "{out}"
    );
    assert!(
        out.contains("  member_count                        12"),
        "{out}"
    );
    assert!(
        out.contains("  teams_channel_messages_count        ()   (not in this report)"),
        "{out}"
    );
    assert!(
        out.contains("  days_since_activity                 90"),
        "{out}"
    );
    assert!(
        out.contains("  total_storage_bytes                 6208260"),
        "{out}"
    );
    assert!(has_line(&out, "inactive-groups FIRED"), "{out}");
    assert!(
        has_line(&out, "medium No activity for 90 days (since 2026-08-27)"),
        "{out}"
    );
    assert!(out.contains("evidence: is_deleted=false, days_since_created=unknown, days_since_activity=90, report_period=30, last_activity_date=2026-08-27"), "{out}");
    assert!(has_line(&out, "ownerless-groups not fired"), "{out}");

    // By name, any case; a rule error is shown with its line and caret.
    let out = stdout_of(
        &ws.run(
            &args("old project")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .success(),
    );
    assert!(has_line(&out, "deleted-with-storage FIRED"), "{out}");
    assert!(has_line(&out, "broken-on-deleted ERROR"), "{out}");
    assert!(
        out.contains("rules/broken-on-deleted.rhai:3:5: cannot judge deleted groups"),
        "{out}"
    );
    assert!(
        out.contains(" 3 |     throw \"cannot judge deleted groups\";"),
        "{out}"
    );

    // A row the parser refuses is shown as written, with the reason.
    let out = stdout_of(
        &ws.run(
            &args("Bad Row")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .success(),
    );
    assert!(out.contains("this row cannot be read, so no rule ran on it: line 5, column 7 \"Member Count\": expected a whole number, found \"N/A\""), "{out}");
    assert!(
        out.contains("\"Member Count\"                          \"N/A\""),
        "{out}"
    );
}

/// With `[[tenants]]`, `explain --tenant NAME` runs the rules with that
/// tenant's parameters and disabled rules, as its scan would.
#[test]
fn explain_takes_a_tenants_rule_parameters_and_disabled_rules() {
    let ws = Workspace::new();
    let rules = ws.bundled_rules();
    let report = ws.report();
    ws.write(
        "groupwarden.toml",
        r#"[source]
type = "graph"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "GW_TEST_SECRET"

[[tenants]]
name = "strict"
tenant_id = "strict.onmicrosoft.com"

[[tenants]]
name = "lax"
tenant_id = "lax.onmicrosoft.com"
rules.disabled = ["ownerless-groups"]
[tenants.rules.params.inactive-groups]
days = 365
"#,
    );
    let explain = |tenant: Option<&str>| {
        let mut args = vec![
            "explain",
            "--input",
            report.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
        ];
        if let Some(tenant) = tenant {
            args.extend(["--tenant", tenant]);
        }
        args.push("Finance EMEA");
        ws.run(&args)
    };
    // Finance EMEA: 90 days without activity.
    let shared = explain(None).success();
    assert!(has_line(&stdout_of(&shared), "inactive-groups FIRED"));
    assert!(
        String::from_utf8_lossy(&shared.get_output().stderr)
            .contains("the config has [[tenants]]: shown with the shared [rules]")
    );
    let strict = stdout_of(&explain(Some("strict")).success());
    assert!(has_line(&strict, "inactive-groups FIRED"), "{strict}");
    let lax = stdout_of(&explain(Some("lax")).success());
    assert!(has_line(&lax, "inactive-groups not fired"), "{lax}");
    assert!(
        lax.contains("(disabled in the config: a scan skips it)"),
        "{lax}"
    );
    explain(Some("nope"))
        .code(2)
        .stderr(predicate::str::contains(
            "--tenant nope: no [[tenants]] is named `nope` (tenants: strict, lax)",
        ));
}

#[test]
fn explain_names_the_closest_group_when_none_matches() {
    let ws = Workspace::new();
    let rules = ws.bundled_rules();
    let report = ws.report();
    ws.run(&[
        "explain",
        "-i",
        report.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "Finanse EMEA",
    ])
    .code(2)
    .stderr(
        predicate::str::contains("no group with id or name `Finanse EMEA` in")
            .and(predicate::str::contains("did you mean `Finance EMEA`?")),
    );
}

#[test]
fn explain_finds_a_group_of_a_concealed_report_by_its_hashed_name() {
    let ws = Workspace::new();
    let rules = ws.bundled_rules();
    let report = ws.write("concealed.csv", CONCEALED);
    let out = stdout_of(
        &ws.run(&[
            "explain",
            "--input",
            report.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "7d3654b07e126bbd0d18174368fc243f",
        ])
        .success(),
    );
    assert!(
        out.contains("Group \"7D3654B07E126BBD0D18174368FC243F\" ("),
        "{out}"
    );
    assert!(
        out.contains("finding key: <rule>:name:7D3654B07E126BBD0D18174368FC243F"),
        "{out}"
    );
    assert!(
        out.contains("note: the report conceals user, group and site names"),
        "{out}"
    );
    assert!(
        out.contains("  is_concealed                        true"),
        "{out}"
    );
    assert!(has_line(&out, "ownerless-groups FIRED"), "{out}");
    assert!(
        !out.contains("8E3654B07E126BBD0D18174368FC243F"),
        "only the asked group: {out}"
    );

    ws.run(&[
        "explain",
        "--input",
        report.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "00000000-0000-0000-0000-000000000000",
    ])
    .code(2)
    .stderr(predicate::str::contains(
        "give the group's name (its 32-character hash) instead",
    ));
}

// --- tenant rules in scan -----------------------------------------------

#[test]
fn scan_runs_tenant_rules_once_after_the_last_row() {
    let ws = Workspace::new();
    let rules = ws.bundled_rules();
    ws.write(
        "rules/tenant-summary.rhai",
        "const SEVERITY = \"info\";\nfn tenant(summary, params) {\n  `${summary.rows} rows, ${summary.deleted} deleted, ${summary.ownerless} ownerless, ${summary.guests} guests, ${summary.row_errors} unreadable, top guests ${summary.top_by_guests[0].group_name}`\n}\n",
    );
    let report = ws.report();
    // The report's one unreadable row is counted, not fatal, here.
    ws.write("groupwarden.toml", "[scan]\nmax_row_error_ratio = 1.0\n");
    let assert = ws
        .run(&[
            "scan",
            "-i",
            report.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "-f",
            "json",
            "--threads",
            "2",
        ])
        .success();
    let json: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    let tenant: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["rule"] == "tenant-summary")
        .collect();
    assert_eq!(tenant.len(), 1, "{findings:?}");
    assert_eq!(tenant[0]["key"], "tenant-summary");
    assert_eq!(tenant[0]["line"], serde_json::Value::Null);
    assert_eq!(
        tenant[0]["message"],
        "3 rows, 1 deleted, 1 ownerless, 18 guests, 1 unreadable, top guests Partners"
    );
    // Tenant findings come after every row's, and count in the summary.
    assert_eq!(findings.last().unwrap()["rule"], "tenant-summary");
    assert_eq!(json["summary"]["rules"]["tenant-summary"]["findings"], 1);
    assert_eq!(
        json["summary"]["findings"].as_u64().unwrap(),
        findings.len() as u64
    );
}

#[test]
fn a_misspelt_summary_property_stops_the_load() {
    let ws = Workspace::new();
    ws.write(
        "rules/t.rhai",
        "fn tenant(summary) {\n  summary.never_activ > 3\n}\n",
    );
    let report = ws.report();
    ws.run(&["scan", "-i", report.to_str().unwrap()])
        .code(2)
        .stderr(predicate::str::contains("rules/t.rhai:2:11: unknown summary property `never_activ`; did you mean `never_active`?"));
}

// --- the reference cannot drift -----------------------------------------

#[test]
fn the_field_reference_in_the_docs_is_what_the_code_generates() {
    let ws = Workspace::new();
    let generated = stdout_of(&ws.run(&["rules", "fields"]).success());
    let doc = std::fs::read_to_string(repo("docs/writing-rules.md")).unwrap();
    let begin = doc
        .find("<!-- BEGIN GENERATED BY `groupwarden rules fields`")
        .expect("begin marker");
    let start = doc[begin..].find('\n').unwrap() + begin + 1;
    let end = doc.find("<!-- END GENERATED -->").expect("end marker");
    assert!(
        doc[start..end] == generated,
        "docs/writing-rules.md is out of date: replace the generated section with the output of `groupwarden rules fields`"
    );
    for field in [
        "days_since_activity",
        "external_member_count",
        "teams_meetings_organized_count",
        "inactive_for(days)",
        "top_by_storage",
    ] {
        assert!(generated.contains(&format!("| `{field}` |")), "{field}");
    }
}

/// The code blocks of a Markdown file with the given language.
fn code_blocks<'a>(markdown: &'a str, language: &str) -> Vec<&'a str> {
    let fence = format!("```{language}\n");
    markdown
        .split(fence.as_str())
        .skip(1)
        .map(|rest| &rest[..rest.find("```").unwrap()])
        .collect()
}

#[test]
fn the_walk_through_in_the_docs_runs_as_shown() {
    let doc = std::fs::read_to_string(repo("docs/writing-rules.md")).unwrap();
    let rules = code_blocks(&doc, "rhai");
    let tests = code_blocks(&doc, "toml");
    let ws = Workspace::new();
    ws.write("rules/silent-channels.rhai", rules[0]);
    ws.write("rules/silent-channels.test.toml", tests[0]);
    let out = stdout_of(&ws.run(&["rules", "test", "silent-channels"]).code(1));
    let shown = code_blocks(&doc, "console")
        .into_iter()
        .find(|block| block.starts_with("$ groupwarden rules test silent-channels\n"))
        .unwrap();
    assert_eq!(out, shown.split_once('\n').unwrap().1);

    // The other complete rules of the guide load.
    let complete: Vec<&&str> = rules
        .iter()
        .filter(|r| r.contains("fn check(") || r.contains("fn tenant("))
        .collect();
    assert!(complete.len() >= 3);
    for (index, rule) in complete.iter().enumerate() {
        ws.write(&format!("guide/rule-{index}.rhai"), rule);
    }
    ws.run(&["validate", "--rules", "guide"]).success();
}

#[test]
fn a_scan_in_an_empty_folder_runs_the_built_in_rules_and_eject_writes_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let sample = repo("examples/sample-report.csv");
    let out = crate::util::gw(dir.path())
        .args(["scan", "--no-state", "--format", "jsonl", "--input"])
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("185 findings"));
    let list = crate::util::gw(dir.path())
        .args(["rules", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("rules from built into groupwarden"));
    let eject = crate::util::gw(dir.path())
        .args(["rules", "eject", "mine"])
        .output()
        .unwrap();
    assert!(eject.status.success());
    for name in [
        "inactive-groups.rhai",
        "inactive-groups.test.toml",
        "ownerless-groups.rhai",
    ] {
        assert!(dir.path().join("mine").join(name).is_file(), "{name}");
    }
    // Ejecting again would overwrite edits: refused without --force.
    let again = crate::util::gw(dir.path())
        .args(["rules", "eject", "mine"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    let tested = crate::util::gw(dir.path())
        .args(["rules", "test", "--rules", "mine"])
        .output()
        .unwrap();
    assert!(
        tested.status.success(),
        "{}",
        String::from_utf8_lossy(&tested.stdout)
    );
}
