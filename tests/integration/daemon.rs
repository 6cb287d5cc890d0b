//! `groupwarden run`: the real binary on a schedule of every second, its
//! JSON log read line by line, signals sent with `kill`, and its health
//! endpoint asked over loopback.
//!
//! Scans that must stay running (a skipped tick, a shutdown mid-scan) read
//! their report from a named pipe: the scan blocks until the test writes
//! the report, so nothing depends on how fast the machine is.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{gw, gw_std, root, write};

/// How long to wait for something that should happen within a few
/// seconds before calling the test failed (a safety net, not a timing).
const PATIENCE: Duration = Duration::from_secs(90);

/// A folder with the bundled rules, the sample report and a config.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        for entry in std::fs::read_dir(root().join("rules")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rhai") {
                std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::copy(
            root().join("examples/sample-report.csv"),
            dir.path().join("report.csv"),
        )
        .unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A config reading `report` with `schedule` lines under `[schedule]`.
    fn config(&self, report: &str, schedule: &str) -> PathBuf {
        write(
            self.dir.path(),
            "groupwarden.toml",
            &format!(
                "[rules]\ndir = \"rules\"\n\n[source]\ntype = \"file\"\npath = \"{report}\"\n\n\
                 [schedule]\n{schedule}\n\n[health]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
    }

    /// A named pipe the scans read their report from.
    fn pipe(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        let status = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success());
        path
    }

    fn start(&self) -> Daemon {
        Daemon::start(self.dir.path(), &self.path("groupwarden.toml"))
    }

    /// What a one-shot `groupwarden scan` finds in the sample report.
    fn one_shot_findings(&self) -> u64 {
        let output = gw(self.dir.path())
            .args([
                "scan",
                "--input",
                "report.csv",
                "--rules",
                "rules",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(output.status.success());
        let document: Value = serde_json::from_slice(&output.stdout).unwrap();
        document["summary"]["findings"].as_u64().unwrap()
    }
}

/// The running daemon and its log.
pub(crate) struct Daemon {
    child: Child,
    lines: Receiver<String>,
    /// Every log line read so far, JSON or not.
    log: Vec<String>,
    health: Option<String>,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, config: &Path) -> Daemon {
        let mut child = gw_std(dir)
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            lines,
            log: Vec::new(),
            health: None,
        };
        let listening =
            daemon.wait_for(|e| message(e) == "health endpoint listening: /healthz, /metrics");
        daemon.health = Some(listening["fields"]["address"].as_str().unwrap().to_owned());
        // Signal handlers are in place once it says it started.
        daemon.wait_for(|e| message(e) == "groupwarden run started");
        daemon
    }

    /// The next log event (JSON line) that `wanted` accepts; earlier ones
    /// are kept in `log`.
    fn wait_for(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if let Ok(event) = serde_json::from_str::<Value>(&line)
                        && wanted(&event)
                    {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "the awaited log line did not come; log so far:\n{}",
                        self.log.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the daemon ended; its log:\n{}", self.log.join("\n"))
                }
            }
        }
    }

    /// The next successful scan's log event.
    pub(crate) fn next_scan_success(&mut self) -> Value {
        let event = self.wait_for(|e| message(e) == "scan finished" || message(e) == "scan failed");
        assert_eq!(event["fields"]["outcome"], "success", "{event}");
        event
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.health.as_ref().unwrap());
        let response = reqwest::blocking::get(url).unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    /// Waits for the process to end, reading the rest of its log.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.log.push(line);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // The rest of the log, up to the pipe's end.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.log.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop; log:\n{}",
                self.log.join("\n")
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn logged(&self, text: &str) -> bool {
        self.log.iter().any(|line| line.contains(text))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn message(event: &Value) -> &str {
    event["fields"]["message"].as_str().unwrap_or_default()
}

/// Opens the pipe for writing on a thread: the call returns once a scan
/// opens it for reading.
fn open_pipe_when_read(pipe: &Path) -> File {
    let (sender, receiver) = channel();
    let pipe = pipe.to_owned();
    thread::spawn(move || {
        let file = std::fs::OpenOptions::new().write(true).open(pipe).unwrap();
        let _ = sender.send(file);
    });
    receiver
        .recv_timeout(PATIENCE)
        .expect("no scan opened the report pipe")
}

/// Feeds the report to every scan that opens the pipe from now on.
fn keep_feeding(pipe: &Path, report: Vec<u8>) {
    let pipe = pipe.to_owned();
    thread::spawn(move || {
        loop {
            let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(&pipe) else {
                return;
            };
            if file.write_all(&report).is_err() {
                return;
            }
        }
    });
}

fn sample_report() -> Vec<u8> {
    std::fs::read(root().join("examples/sample-report.csv")).unwrap()
}

pub(crate) fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
pub(crate) fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain sample"),
        })
}

#[test]
fn an_every_second_schedule_scans_twice_and_metrics_count_them() {
    let setup = Setup::new();
    setup.config(
        "report.csv",
        "cron = \"* * * * * *\"\noutput = \"findings.json\"",
    );
    let expected_findings = setup.one_shot_findings();
    let mut daemon = setup.start();

    let first = daemon.next_scan_success();
    let second = daemon.next_scan_success();
    for scan in [&first, &second] {
        assert_eq!(scan["fields"]["trigger"], "schedule");
        assert_eq!(scan["fields"]["rows"], 305);
        assert_eq!(scan["fields"]["findings"], expected_findings);
        assert!(scan["fields"]["duration_ms"].is_u64());
    }

    let (code, text) = daemon.get("/metrics");
    assert_eq!(code, 200);
    let scrape = scrape(&text);
    // Every sample line parsed, and each family is typed.
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "{text}");
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| !matches!(s.value, prometheus_parse::Value::Untyped(_))),
        "{text}"
    );
    assert!(
        sample(
            &scrape,
            "groupwarden_scans_total",
            &[("outcome", "success")]
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        sample(
            &scrape,
            "groupwarden_scans_total",
            &[("outcome", "failure")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&scrape, "groupwarden_last_scan_rows", &[]),
        Some(305.0)
    );
    assert_eq!(
        sample(&scrape, "groupwarden_last_scan_success", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "groupwarden_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // Findings by rule add up to the scan's findings.
    let by_rule: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "groupwarden_findings")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => panic!("groupwarden_findings is a gauge"),
        })
        .sum();
    assert_eq!(by_rule, expected_findings as f64);
    assert!(
        sample(
            &scrape,
            "groupwarden_findings",
            &[("rule", "inactive-groups")]
        )
        .is_some()
    );
    assert!(sample(&scrape, "groupwarden_last_scan_duration_seconds", &[]).is_some());
    assert!(sample(&scrape, "groupwarden_last_scan_timestamp_seconds", &[]).unwrap() > 1.7e9);

    let (code, body) = daemon.get("/healthz");
    assert_eq!(code, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["last_scan"]["outcome"], "success");
    assert_eq!(daemon.get("/nothing").0, 404);

    // The last completed scan's findings document is whole.
    let document: Value =
        serde_json::from_slice(&std::fs::read(setup.path("findings.json")).unwrap()).unwrap();
    assert_eq!(
        document["findings"].as_array().unwrap().len() as u64,
        expected_findings
    );

    daemon.signal("TERM");
    assert!(daemon.wait_exit().success(), "{}", daemon.log.join("\n"));
}

#[test]
fn a_time_that_comes_while_a_scan_runs_is_skipped() {
    let setup = Setup::new();
    let pipe = setup.pipe("report.pipe");
    setup.config("report.pipe", "cron = \"* * * * * *\"");
    let mut daemon = setup.start();

    // The first scan waits on the pipe until the report is written.
    let mut report = open_pipe_when_read(&pipe);
    let skipped = daemon.wait_for(|e| message(e).starts_with("scan skipped"));
    assert_eq!(skipped["fields"]["trigger"], "schedule");
    assert_eq!(skipped["level"], "WARN");
    report.write_all(&sample_report()).unwrap();
    drop(report);
    let finished = daemon.next_scan_success();
    assert_eq!(finished["fields"]["rows"], 305);

    let scrape = scrape(&daemon.get("/metrics").1);
    assert!(sample(&scrape, "groupwarden_scan_ticks_skipped_total", &[]).unwrap() >= 1.0);

    keep_feeding(&pipe, sample_report());
    daemon.signal("TERM");
    assert!(daemon.wait_exit().success(), "{}", daemon.log.join("\n"));
}

#[test]
fn sigterm_mid_scan_waits_for_the_scan_and_loses_nothing() {
    let setup = Setup::new();
    let pipe = setup.pipe("report.pipe");
    // Only the scan at start: the schedule's time is far away.
    setup.config(
        "report.pipe",
        "cron = \"0 0 1 1 *\"\nrun_on_start = true\noutput = \"findings.json\"",
    );
    let expected_findings = setup.one_shot_findings();
    let mut daemon = setup.start();

    let mut writer = open_pipe_when_read(&pipe);
    let report = sample_report();
    let (head, tail) = report.split_at(report.len() / 2);
    writer.write_all(head).unwrap();
    writer.flush().unwrap();

    daemon.signal("TERM");
    let stopping = daemon.wait_for(|e| message(e).starts_with("stopping"));
    assert_eq!(stopping["fields"]["signal"], "SIGTERM");
    assert!(message(&stopping).contains("waiting for the running scan"));
    writer.write_all(tail).unwrap();
    drop(writer);

    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", daemon.log.join("\n"));
    assert!(daemon.logged("stopped after the running scan finished"));
    assert!(daemon.logged("\"trigger\":\"start\",\"outcome\":\"success\""));
    let document: Value =
        serde_json::from_slice(&std::fs::read(setup.path("findings.json")).unwrap()).unwrap();
    assert_eq!(document["summary"]["rows"], 305);
    assert_eq!(
        document["findings"].as_array().unwrap().len() as u64,
        expected_findings
    );
}

#[test]
fn the_grace_period_bounds_the_wait_for_a_scan() {
    let setup = Setup::new();
    setup.pipe("report.pipe");
    setup.config(
        "report.pipe",
        "cron = \"0 0 1 1 *\"\nrun_on_start = true\ngrace_period = \"1s\"",
    );
    let mut daemon = setup.start();
    daemon.wait_for(|e| message(e) == "scan started");
    // Nobody writes the report: the scan never ends.
    daemon.signal("INT");
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(2));
    assert!(
        daemon.logged("did not finish within the grace period (1s)"),
        "{}",
        daemon.log.join("\n")
    );
}

#[test]
fn sighup_reloads_and_keeps_the_old_configuration_when_the_new_one_is_broken() {
    let setup = Setup::new();
    let config = setup.config("report.csv", "cron = \"* * * * * *\"");
    let mut daemon = setup.start();
    let before = daemon.next_scan_success();
    let rules_before = before["fields"]["findings_by_rule"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(rules_before.contains("inactive-groups="));

    // A typo in a key: refused, with the key named; scans go on as before.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("cron =", "jiter = \"5s\"\ncron =")).unwrap();
    daemon.signal("HUP");
    let refused = daemon.wait_for(|e| message(e).starts_with("reload refused"));
    assert_eq!(refused["level"], "ERROR");
    assert!(
        message(&refused).contains("unknown key `jiter` in [schedule]; did you mean `jitter`?"),
        "{refused}"
    );
    assert!(message(&refused).contains("line 9"), "{refused}");
    let after = daemon.next_scan_success();
    assert_eq!(after["fields"]["findings_by_rule"], rules_before.as_str());

    // A broken rule: refused, naming the file; the pinned rules still run.
    std::fs::write(&config, &good).unwrap();
    write(
        setup.dir.path(),
        "rules/broken.rhai",
        "fn check(row) { row.member_count + }\n",
    );
    daemon.signal("HUP");
    let refused = daemon.wait_for(|e| message(e).starts_with("reload refused"));
    assert!(message(&refused).contains("broken.rhai"), "{refused}");
    assert_eq!(
        daemon.next_scan_success()["fields"]["findings_by_rule"],
        rules_before.as_str()
    );

    // A good change is taken.
    std::fs::remove_file(setup.path("rules/broken.rhai")).unwrap();
    std::fs::write(
        &config,
        good.replace(
            "dir = \"rules\"",
            "dir = \"rules\"\ndisabled = [\"inactive-groups\"]",
        ),
    )
    .unwrap();
    daemon.signal("HUP");
    daemon.wait_for(|e| message(e) == "configuration reloaded");
    // A scan already running at the reload finishes with the old rules.
    daemon.wait_for(|e| message(e) == "scan started");
    let reloaded = daemon.next_scan_success();
    let rules_after = reloaded["fields"]["findings_by_rule"].as_str().unwrap();
    assert!(!rules_after.contains("inactive-groups"), "{rules_after}");

    let scrape = scrape(&daemon.get("/metrics").1);
    assert_eq!(
        sample(
            &scrape,
            "groupwarden_config_reloads_total",
            &[("outcome", "failure")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "groupwarden_config_reloads_total",
            &[("outcome", "success")]
        ),
        Some(1.0)
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit().success());
}

#[test]
fn a_failed_scan_is_logged_retried_and_shown_by_healthz() {
    let setup = Setup::new();
    // The report is not there yet; the scheduled time is far away, so the
    // scan that succeeds is the retry.
    setup.config(
        "later.csv",
        "cron = \"0 0 1 1 *\"\nrun_on_start = true\nretry_after = \"1s\"",
    );
    let mut daemon = setup.start();
    let failed = daemon.wait_for(|e| message(e) == "scan failed");
    assert_eq!(failed["fields"]["outcome"], "failure");
    assert!(
        failed["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("later.csv"),
        "{failed}"
    );
    let (code, body) = daemon.get("/healthz");
    assert_eq!(code, 503, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "failing");
    assert!(
        health["last_scan"]["error"]
            .as_str()
            .unwrap()
            .contains("later.csv")
    );

    std::fs::copy(setup.path("report.csv"), setup.path("later.csv")).unwrap();
    let retried =
        daemon.wait_for(|e| message(e) == "scan finished" && e["fields"]["trigger"] == "retry");
    assert_eq!(retried["fields"]["rows"], 305);
    assert_eq!(daemon.get("/healthz").0, 200);
    daemon.signal("TERM");
    assert!(daemon.wait_exit().success());
}

#[test]
fn a_bad_config_refuses_to_start_and_names_the_key() {
    let setup = Setup::new();
    let cases: BTreeMap<&str, (&str, &str)> = [
        (
            "bad cron",
            (
                "cron = \"0 25 * * *\"",
                "`0 25 * * *` is not a cron pattern",
            ),
        ),
        (
            "unknown zone",
            (
                "cron = \"0 6 * * *\"\ntimezone = \"Mars/Olympus\"",
                "unknown time zone `Mars/Olympus`",
            ),
        ),
        ("no pattern", ("run_on_start = true", "`schedule.cron`")),
        (
            "typo",
            (
                "cron = \"0 6 * * *\"\nretry_afer = \"1m\"",
                "did you mean `retry_after`?",
            ),
        ),
    ]
    .into();
    for (case, (schedule, expected)) in cases {
        setup.config("report.csv", schedule);
        let output = gw(setup.dir.path())
            .args(["run", "--config", "groupwarden.toml"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(
            stderr.contains("groupwarden run did not start"),
            "{case}: {stderr}"
        );
        assert!(stderr.contains(expected), "{case}: {stderr}");
    }

    write(
        setup.dir.path(),
        "groupwarden.toml",
        "[rules]\ndir = \"rules\"\n",
    );
    let output = gw(setup.dir.path())
        .args(["run", "--config", "groupwarden.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("`schedule`: groupwarden run needs a [schedule]"),
        "{stderr}"
    );
    assert!(stderr.contains("`source`"), "{stderr}");
}

#[test]
fn a_taken_health_port_refuses_to_start() {
    let setup = Setup::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    setup.config("report.csv", "cron = \"0 6 * * *\"");
    let config = std::fs::read_to_string(setup.path("groupwarden.toml"))
        .unwrap()
        .replace("127.0.0.1:0", &address.to_string());
    write(setup.dir.path(), "groupwarden.toml", &config);
    let output = gw(setup.dir.path())
        .args(["run", "--config", "groupwarden.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("config key `health.listen`: cannot listen on"),
        "{stderr}"
    );
}

/// Workload identity federation (Kubernetes, GitHub Actions): every
/// scheduled scan signs in with the token file as it is then, so the
/// issuer can replace it between scans.
#[tokio::test(flavor = "multi_thread")]
async fn scheduled_scans_from_graph_sign_in_with_the_current_federated_token() {
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/contoso.onmicrosoft.com/oauth2/v2.0/token"))
        .and(body_string_contains(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": "graph-access-token"
        })))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v1.0/reports/getOffice365GroupsActivityDetail(period='D30')",
        ))
        .and(header("authorization", "Bearer graph-access-token"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(sample_report()))
        .mount(&graph)
        .await;

    let setup = Setup::new();
    write(
        setup.dir.path(),
        "token.jwt",
        "eyJhbGciOiJSUzI1NiJ9.first.sig\n",
    );
    let uri = graph.uri();
    write(
        setup.dir.path(),
        "groupwarden.toml",
        &format!(
            "[rules]\ndir = \"rules\"\n\n[source]\ntype = \"graph\"\ntenant_id = \"contoso.onmicrosoft.com\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\nfederated_token_file = \"token.jwt\"\n\
             authority_url = \"{uri}\"\ngraph_url = \"{uri}\"\n\n[schedule]\ncron = \"* * * * * *\"\n\n\
             [health]\nlisten = \"127.0.0.1:0\"\n"
        ),
    );
    let mut daemon = tokio::task::block_in_place(|| {
        let mut daemon = setup.start();
        assert_eq!(daemon.next_scan_success()["fields"]["rows"], 305);
        // The issuer replaces the token; a scan that starts later uses it.
        write(
            setup.dir.path(),
            "token.jwt",
            "eyJhbGciOiJSUzI1NiJ9.second.sig\n",
        );
        daemon.next_scan_success();
        assert_eq!(daemon.next_scan_success()["fields"]["rows"], 305);
        daemon
    });

    let assertions: Vec<String> = graph
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        assertions
            .iter()
            .all(|body| !body.contains("client_secret"))
    );
    assert!(assertions[0].contains("client_assertion=eyJhbGciOiJSUzI1NiJ9.first.sig"));
    assert!(
        assertions
            .last()
            .unwrap()
            .contains("client_assertion=eyJhbGciOiJSUzI1NiJ9.second.sig"),
        "{assertions:?}"
    );
    // The token file's content never reaches the log.
    tokio::task::block_in_place(|| {
        daemon.signal("TERM");
        assert!(daemon.wait_exit().success());
    });
    assert!(!daemon.logged("first.sig") && !daemon.logged("second.sig"));
}
