//! The HTML report from the real binary, and in a real headless Chromium.
//!
//! The browser tests need Debian's `chromium` (or `GROUPWARDEN_CHROMIUM`
//! naming a Chromium binary). Without one they skip with a message, unless
//! `CI` is set: then a missing browser fails them. Chromium runs offline
//! (no background networking, no component updates, a fresh profile) and
//! only ever opens `file://` pages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Group, bundled_rules, gw, report, write};
use tempfile::TempDir;

const HOSTILE_SCRIPT: &str = "<script>document.title='pwned'</script>";
const HOSTILE_IMAGE: &str = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">";

/// The sample report plus groups whose names and owners are markup.
fn report_with_hostile_names(dir: &Path) -> PathBuf {
    let sample = std::fs::read_to_string(util::root().join("examples/sample-report.csv")).unwrap();
    let hostile = report(&[
        Group {
            name: HOSTILE_SCRIPT,
            owner: "",
            id: "00000000-0000-0000-0000-0000000000a1",
            ..Default::default()
        }
        .csv(),
        Group {
            name: HOSTILE_IMAGE,
            external: "99",
            members: "120",
            last_activity: "",
            id: "00000000-0000-0000-0000-0000000000a2",
            ..Default::default()
        }
        .csv(),
    ]);
    // The sample's header and rows, then the hostile rows without their header.
    let rows: String = hostile.lines().skip(1).map(|l| format!("{l}\n")).collect();
    write(
        dir,
        "report.csv",
        &format!("{}\r\n{rows}", sample.trim_end()),
    )
}

fn write_html(dir: &Path, input: &Path, args: &[&str]) -> String {
    let output = gw(dir)
        .args(args)
        .arg("--rules")
        .arg(bundled_rules())
        .arg("--input")
        .arg(input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::stderr(&output));
    let html_path = args
        .iter()
        .skip_while(|a| **a != "--output")
        .nth(1)
        .expect("--output given");
    std::fs::read_to_string(dir.join(html_path)).unwrap()
}

fn json_findings(dir: &Path, input: &Path) -> Vec<serde_json::Value> {
    let output = gw(dir)
        .args(["scan", "--format", "jsonl", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::stderr(&output));
    util::findings(&output)
}

/// Pages equal but for the scan's time and duration; on a difference,
/// shows the first line that differs rather than two whole pages.
fn assert_same_page(left: &str, right: &str) {
    // The full list beside each page is named after it.
    let varies = |line: &&str| {
        line.starts_with("<div><dt>Scanned</dt>")
            || line.contains("\"elapsed_ms\"")
            || line.contains(".findings.csv")
    };
    let left: Vec<&str> = left.lines().filter(|l| !varies(l)).collect();
    let right: Vec<&str> = right.lines().filter(|l| !varies(l)).collect();
    if let Some((a, b)) = left.iter().zip(&right).find(|(a, b)| a != b) {
        panic!("pages differ:\n{a}\n{b}");
    }
    assert_eq!(left.len(), right.len(), "pages differ in length");
}

/// Rows the page's script shows per rule and page.
const PAGE_ROWS: u64 = 25;

/// Findings a table shows when each rule shows its first `rows` of those
/// `keep` accepts.
fn first_of_each_rule(
    findings: &[serde_json::Value],
    rows: u64,
    keep: impl Fn(&serde_json::Value) -> bool,
) -> u64 {
    let mut per_rule = std::collections::BTreeMap::<&str, u64>::new();
    for finding in findings.iter().filter(|f| keep(f)) {
        *per_rule
            .entry(finding["rule"].as_str().unwrap())
            .or_default() += 1;
    }
    per_rule.values().map(|&n| n.min(rows)).sum()
}

fn count_after(html: &str, marker: &str) -> u64 {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} missing"))
        + marker.len();
    let digits: String = html[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[test]
fn scan_format_html_by_flag_or_extension_and_the_report_command_write_the_same_page() {
    let dir = TempDir::new().unwrap();
    let input = report_with_hostile_names(dir.path());
    let by_flag = write_html(
        dir.path(),
        &input,
        &[
            "scan",
            "--no-state",
            "--format",
            "html",
            "--output",
            "a.out",
        ],
    );
    let by_extension = write_html(
        dir.path(),
        &input,
        &["scan", "--no-state", "--output", "b.html"],
    );
    let by_command = write_html(dir.path(), &input, &["report", "--output", "c.html"]);
    assert!(by_flag.starts_with("<!DOCTYPE html>"));
    assert_same_page(&by_flag, &by_extension);
    assert_same_page(&by_flag, &by_command);
}

#[test]
fn report_needs_an_output_and_fails_on_like_scan() {
    let dir = TempDir::new().unwrap();
    let input = report_with_hostile_names(dir.path());
    let missing_output = gw(dir.path())
        .args(["report", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(missing_output.status.code(), Some(2));
    assert!(util::stderr(&missing_output).contains("--output"));

    let failing = gw(dir.path())
        .args([
            "report",
            "--output",
            "r.html",
            "--fail-on",
            "high",
            "--rules",
        ])
        .arg(bundled_rules())
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(1), "{}", util::stderr(&failing));
    assert!(dir.path().join("r.html").exists());
}

#[test]
fn the_page_counts_every_finding_of_the_scan_and_escapes_the_report() {
    let dir = TempDir::new().unwrap();
    let input = report_with_hostile_names(dir.path());
    let findings = json_findings(dir.path(), &input);
    let html = write_html(dir.path(), &input, &["report", "--output", "r.html"]);

    assert_eq!(
        count_after(&html, "id=\"findings-total\">"),
        findings.len() as u64
    );
    // Each rule's first 20 as HTML rows (the script pages through the rest).
    assert_eq!(
        html.matches("<tr class=\"finding ").count() as u64,
        first_of_each_rule(&findings, 20, |_| true)
    );
    for severity in ["high", "medium"] {
        let expected = findings
            .iter()
            .filter(|f| f["severity"] == severity)
            .count() as u64;
        let marker = format!("data-severity=\"{severity}\"><span class=\"count\">");
        assert_eq!(count_after(&html, &marker), expected, "{severity}");
    }
    assert!(!html.contains("<script>document"));
    assert!(!html.contains("<img"));
    assert!(html.contains("&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;&#x2f;script&gt;"));
    assert_eq!(
        html.matches("<script").count(),
        3,
        "only the page's own scripts"
    );
}

#[test]
fn the_charts_cover_every_good_row_whatever_the_thread_count() {
    let dir = TempDir::new().unwrap();
    let rows = 5000;
    let input = write(dir.path(), "big.csv", &util::synthetic_report(rows));
    let one = write_html(
        dir.path(),
        &input,
        &["report", "--threads", "1", "--output", "1.html"],
    );
    let two = write_html(
        dir.path(),
        &input,
        &["report", "--threads", "2", "--output", "2.html"],
    );
    assert_same_page(&one, &two);

    // The synthetic report: a bad row where i % 997 == 500, deleted where i % 31 == 0.
    let live = (0..rows).filter(|i| i % 997 != 500 && i % 31 != 0).count() as u64;
    let deleted = (0..rows).filter(|i| i % 997 != 500 && i % 31 == 0).count() as u64;
    assert_eq!(count_after(&one, "<span id=\"activity-groups\">"), live);
    assert!(one.contains(&format!("held by {deleted} deleted groups")));
    assert!(one.contains("inactive: 90+ days"));
}

// ---- in a real browser ----

/// Chromium, or `None` to skip; with `CI` set, a missing browser fails.
fn chromium() -> Option<PathBuf> {
    let candidates = std::env::var_os("GROUPWARDEN_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(PathBuf::from));
    for candidate in candidates {
        let found = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "CI is set but no Chromium was found: `apt-get install -y chromium` (or set GROUPWARDEN_CHROMIUM)"
        );
    }
    eprintln!(
        "SKIPPED: no Chromium on PATH (apt-get install -y chromium); the browser test did not run"
    );
    None
}

/// Runs headless Chromium offline with a fresh profile on `args`; stdout.
fn run_chromium(browser: &Path, args: &[String]) -> String {
    run_chromium_timed(browser, args, true)
}

/// As [`run_chromium`]; `virtual_time` lets timers run ahead (the page's
/// script is synchronous, so only timing measurements turn it off:
/// under virtual time `performance.now()` is not the wall clock).
fn run_chromium_timed(browser: &Path, args: &[String], virtual_time: bool) -> String {
    let profile = TempDir::new().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
        ])
        // Lets the page's script run before the DOM is dumped.
        .args(virtual_time.then_some("--virtual-time-budget=5000"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting Chromium");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    // Not a timing assertion: a guard so a wedged browser cannot hang CI.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "Chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("Chromium did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

fn file_url(path: &Path, hash: &str) -> String {
    format!("file://{}{hash}", path.canonicalize().unwrap().display())
}

/// The rendered DOM of `page` (after its script ran).
fn dump_dom(browser: &Path, page: &Path, hash: &str) -> String {
    let dom = run_chromium(browser, &["--dump-dom".to_owned(), file_url(page, hash)]);
    assert!(dom.contains("</html>"), "no DOM dumped: {dom}");
    dom
}

/// The finding rows of a dumped DOM: (hidden, text content).
fn finding_rows(dom: &str) -> Vec<(bool, String)> {
    dom.split("<tr class=\"finding ")
        .skip(1)
        .map(|part| {
            let row = &part[..part.find("</tr>").unwrap()];
            let open_tag = &row[..row.find('>').unwrap()];
            (open_tag.contains(" hidden"), text_content(row))
        })
        .collect()
}

fn text_content(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn screenshot_path(name: &str) -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp: keep the picture beside it, in target/.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    target.join(name)
}

#[test]
fn in_a_real_browser_counts_match_names_stay_text_and_filters_narrow_the_table() {
    let Some(browser) = chromium() else { return };
    let dir = TempDir::new().unwrap();
    let input = report_with_hostile_names(dir.path());
    let findings = json_findings(dir.path(), &input);
    write_html(dir.path(), &input, &["report", "--output", "report.html"]);
    let page = dir.path().join("report.html");

    let dom = dump_dom(&browser, &page, "");
    // The script ran (the policy let it): the controls it reveals are shown.
    assert!(dom.contains("id=\"controls\""));
    assert!(
        !dom.contains("id=\"controls\" hidden"),
        "the page's script did not run"
    );
    let total = findings.len() as u64;
    assert_eq!(count_after(&dom, "id=\"findings-total\">"), total);
    assert_eq!(count_after(&dom, "<span id=\"shown-count\">"), total);
    let rows = finding_rows(&dom);
    assert_eq!(
        rows.len() as u64,
        first_of_each_rule(&findings, PAGE_ROWS, |_| true)
    );
    assert!(rows.iter().all(|(hidden, _)| !hidden));

    // The hostile names are text: no element came of them, nothing ran.
    assert!(rows.iter().any(|(_, text)| text.contains(HOSTILE_SCRIPT)));
    assert!(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"));
    assert_eq!(dom.matches("<script").count(), 3);
    assert!(!dom.contains("<img"));
    let body_tag = &dom[dom.find("<body").unwrap()..];
    let body_tag = &body_tag[..body_tag.find('>').unwrap()];
    assert!(
        !body_tag.contains("data-pwned"),
        "the image's handler ran: {body_tag}"
    );
    assert!(dom.contains("<title>Groups governance report"));

    // A filter in the address narrows the table to matching rows.
    let filtered = dump_dom(&browser, &page, "#filter=Sales");
    let rows = finding_rows(&filtered);
    let visible: Vec<&String> = rows.iter().filter(|(h, _)| !h).map(|(_, t)| t).collect();
    assert!(
        !visible.is_empty() && (visible.len() as u64) < total,
        "{} of {total}",
        visible.len()
    );
    assert!(visible.iter().all(|t| t.to_lowercase().contains("sales")));
    let expected = findings
        .iter()
        .filter(|f| {
            serde_json::to_string(f)
                .unwrap()
                .to_lowercase()
                .contains("sales")
        })
        .count();
    let matching = count_after(&filtered, "<span id=\"shown-count\">");
    assert!(visible.len() as u64 <= matching && matching <= expected as u64);

    // So does a minimum severity.
    let high = dump_dom(&browser, &page, "#severity=high");
    let expected = findings
        .iter()
        .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
        .count();
    assert_eq!(
        count_after(&high, "<span id=\"shown-count\">"),
        expected as u64
    );
    let shown = finding_rows(&high)
        .iter()
        .filter(|(hidden, _)| !hidden)
        .count() as u64;
    let severe = |f: &serde_json::Value| f["severity"] == "high" || f["severity"] == "critical";
    assert_eq!(shown, first_of_each_rule(&findings, PAGE_ROWS, severe));

    for (name, size) in [
        ("html-report.png", "1280,2000"),
        ("html-report-phone.png", "390,1600"),
    ] {
        let path = screenshot_path(name);
        let _ = std::fs::remove_file(&path);
        run_chromium(
            &browser,
            &[
                format!("--screenshot={}", path.display()),
                format!("--window-size={size}"),
                file_url(&page, ""),
            ],
        );
        let png = std::fs::read(&path).expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    }
}

#[test]
fn report_shows_the_state_and_leaves_the_database_byte_identical() {
    let dir = TempDir::new().unwrap();
    let input = report_with_hostile_names(dir.path());
    // Two stateful scans: the findings are open the second time.
    json_findings(dir.path(), &input);
    json_findings(dir.path(), &input);
    let db = dir.path().join("groupwarden.db");
    let before = std::fs::read(&db).unwrap();
    let page = write_html(dir.path(), &input, &["report", "--output", "r.html"]);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "report wrote to the database"
    );
    assert!(page.contains("First seen"), "no lifecycle columns");
    assert!(page.contains("Open"), "no open status");
    // On another report it still records nothing: nothing resolves.
    let other = write(dir.path(), "other.csv", &format!("{}\n", util::HEADER));
    write_html(dir.path(), &other, &["report", "--output", "empty.html"]);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

// ---- at 100,000 groups ----

/// The page's size limit at any report size.
const PAGE_LIMIT_BYTES: u64 = 8 * 1024 * 1024;
/// Targets in the browser (issue 16): loaded in 2 s, a filter keystroke
/// answered in 100 ms, on a developer's machine. CI runners share slower
/// cores, so the assertions allow this factor; the figures are printed.
const BROWSER_MARGIN: f64 = 3.0;
const LOAD_TARGET_MS: f64 = 2000.0;
const FILTER_TARGET_MS: f64 = 100.0;

const HOSTILE_JSON_BREAK: &str = "Hostile </script><script>document.title='pwned'</script>";

/// 100,000 synthetic groups (see `util::synthetic_report`) and two
/// hostile ones, one of them high on the list (10,000 guests).
fn big_report(dir: &Path) -> PathBuf {
    let synthetic = util::synthetic_report(100_000);
    let hostile = report(&[
        Group {
            name: HOSTILE_JSON_BREAK,
            owner: "",
            external: "10000",
            members: "10001",
            id: "00000000-0000-0000-0000-0000000000b1",
            ..Default::default()
        }
        .csv(),
        Group {
            name: &format!("Hostile {HOSTILE_IMAGE}"),
            owner: "",
            id: "00000000-0000-0000-0000-0000000000b2",
            ..Default::default()
        }
        .csv(),
    ]);
    // First in the report: among the findings the page keeps.
    let rows: String = hostile.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let (header, body) = synthetic.split_once('\n').unwrap();
    write(dir, "big.csv", &format!("{header}\n{rows}{body}"))
}

/// Writes `big.html` (and `big.findings.csv` beside it) for `input`.
fn big_page(dir: &Path, input: &Path) -> PathBuf {
    let started = Instant::now();
    let output = gw(dir)
        .args(["report", "--output", "big.html", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::stderr(&output));
    eprintln!("wrote the 100,000-group page in {:?}", started.elapsed());
    dir.join("big.html")
}

#[test]
fn at_100000_groups_the_page_is_light_counts_everything_and_links_the_full_list() {
    let dir = TempDir::new().unwrap();
    let input = big_report(dir.path());
    let findings = json_findings(dir.path(), &input);
    let page = big_page(dir.path(), &input);
    let size = std::fs::metadata(&page).unwrap().len();
    eprintln!("page: {size} bytes for {} findings", findings.len());
    assert!(size <= PAGE_LIMIT_BYTES, "{size} bytes");
    let html = std::fs::read_to_string(&page).unwrap();

    // Exact counts, and where the rest are.
    let total = findings.len() as u64;
    assert_eq!(count_after(&html, "id=\"findings-total\">"), total);
    assert_eq!(count_after(&html, "<span id=\"total-count\">"), total);
    assert!(html.contains("<a href=\"big.findings.csv\" id=\"full-list\">big.findings.csv</a>"));
    for severity in ["high", "medium", "low"] {
        let expected = findings
            .iter()
            .filter(|f| f["severity"] == severity)
            .count() as u64;
        let marker = format!("data-severity=\"{severity}\"><span class=\"count\">");
        assert_eq!(count_after(&html, &marker), expected, "{severity}");
    }
    let per_rule = |rule: &str| findings.iter().filter(|f| f["rule"] == rule).count() as u64;
    for rule in [
        "inactive-groups",
        "high-external-members",
        "ownerless-groups",
        "deleted-with-storage",
    ] {
        if per_rule(rule) == 0 {
            continue;
        }
        let marker = format!("id=\"rule-{rule}\"");
        let section = &html[html.find(&marker).unwrap_or_else(|| panic!("{rule}"))..];
        assert_eq!(
            count_after(section, "data-total=\""),
            per_rule(rule),
            "{rule}"
        );
    }

    // The full list beside the page has every finding, as `--format csv` would.
    let mut csv = csv::Reader::from_path(dir.path().join("big.findings.csv")).unwrap();
    let keys: Vec<String> = csv
        .records()
        .map(|r| r.unwrap().get(2).unwrap().to_owned())
        .collect();
    assert_eq!(keys.len() as u64, total);
    let mut expected: Vec<String> = findings
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    let mut got = keys;
    expected.sort();
    got.sort();
    assert_eq!(got, expected);

    // Hostile names: escaped in the HTML, \u-escaped in the embedded JSON.
    assert_eq!(html.matches("<script").count(), 3);
    assert!(!html.contains("<img"));
    assert!(html.contains(r"Hostile \u003c/script\u003e\u003cscript\u003edocument.title="));
}

#[test]
fn at_100000_groups_the_page_loads_and_filters_fast_in_a_real_browser() {
    let Some(browser) = chromium() else { return };
    let dir = TempDir::new().unwrap();
    let input = big_report(dir.path());
    let page = big_page(dir.path(), &input);

    // Wall clock of the whole browser run, against a tiny page's: the
    // difference is what the page costs.
    let tiny = write(
        dir.path(),
        "tiny.html",
        "<!DOCTYPE html><title>t</title><p>t</p>",
    );
    let timed = |path: &Path, hash: &str| {
        let started = Instant::now();
        let dom = run_chromium_timed(
            &browser,
            &["--dump-dom".to_owned(), file_url(path, hash)],
            false,
        );
        (started.elapsed(), dom)
    };
    let (baseline, _) = timed(&tiny, "");
    let (wall, dom) = timed(&page, "#selftest=group 4");
    assert!(dom.contains("</html>"), "no DOM dumped");
    let controls = &dom[dom.find("id=\"controls\"").expect("controls")..];
    let controls = &controls[..controls.find('>').unwrap()];
    let attribute = |name: &str| -> String {
        let marker = format!("{name}=\"");
        let start = controls
            .find(&marker)
            .unwrap_or_else(|| panic!("{name} missing: the page's script did not run: {controls}"))
            + marker.len();
        controls[start..start + controls[start..].find('"').unwrap()].to_owned()
    };
    let ready_ms: f64 = attribute("data-ready-ms").parse().unwrap();
    let keystrokes: Vec<f64> = attribute("data-selftest")
        .split(',')
        .map(|t| t.parse().unwrap())
        .collect();
    // Each keystroke's time spent matching, building rows, in layout.
    let split = attribute("data-selftest-split");
    let slowest = keystrokes.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "100,000 groups in Chromium: ready {ready_ms} ms after navigation start; \
         filter keystrokes {keystrokes:?} ms (slowest {slowest}; matching,rows,layout: {split}); \
         browser run {wall:?} against {baseline:?} for an empty page"
    );
    assert_eq!(keystrokes.len(), "group 4".len());
    assert!(
        ready_ms <= LOAD_TARGET_MS * BROWSER_MARGIN,
        "ready after {ready_ms} ms"
    );
    assert!(
        slowest < FILTER_TARGET_MS * BROWSER_MARGIN,
        "a keystroke took {slowest} ms"
    );
    // The typed filter narrowed the tables to matching rows only.
    let rows = finding_rows(&dom);
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|(_, text)| text.to_lowercase().contains("group 4"))
    );

    // Rendered from the JSON, the hostile names are text, nothing ran.
    let hostile = dump_dom(&browser, &page, "#filter=hostile");
    let rows = finding_rows(&hostile);
    assert!(
        rows.iter()
            .any(|(_, text)| text.contains(HOSTILE_JSON_BREAK)),
        "the hostile group is not listed"
    );
    assert!(rows.iter().any(|(_, text)| text.contains(HOSTILE_IMAGE)));
    assert_eq!(hostile.matches("<script").count(), 3);
    assert!(!hostile.contains("<img"));
    assert!(hostile.contains("<title>Groups governance report"));
    // A rule the page holds only in part counts its matches among those held.
    assert!(
        hostile.contains(" here · ") && hostile.contains(" in all</span>"),
        "per-rule counts do not say what they count"
    );
}
