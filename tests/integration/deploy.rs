//! The ready-made deployments under `examples/deploy/` and the
//! `Dockerfile`: each parses, passes the platform's own checker where
//! this machine has it (`systemd-analyze`, `hadolint`), and holds the
//! properties the docs promise (hardening, no stored secret, one run at a
//! time). Their groupwarden configs are checked with groupwarden's parser.
//! Then each is run as its platform runs it (its own command line, config
//! and environment; an unprivileged user; a read-only config folder; a
//! Graph stand-in), twice, and must keep its state in its data folder
//! (see docs/deployment.md, "What the tests check").

use std::path::{Path, PathBuf};
use std::process::Command;

use groupwarden::daemon::config::CronPattern;
use serde_yaml_ng::Value;

use crate::util::{binary, root};

fn deploy(path: &str) -> PathBuf {
    root().join("examples/deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A field by a `.`-separated path; numbers index lists.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |value, key| {
        let next = match key.parse::<usize>() {
            Ok(index) => value.get(index),
            Err(_) => value.get(key),
        };
        next.unwrap_or_else(|| panic!("no `{key}` on the way to `{path}` in {value:?}"))
    })
}

fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not text"))
}

fn is_on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Under CI a missing checker is a failure (`.ci/run` installs it);
/// elsewhere the structural checks alone run.
fn checker_available(tool: &str) -> bool {
    let available = is_on_path(tool);
    assert!(
        available || std::env::var_os("CI").is_none(),
        "{tool} is required under CI"
    );
    if !available {
        eprintln!("{tool} not installed: only the structural checks ran");
    }
    available
}

// --- systemd -------------------------------------------------------------

/// `Key=value` lines per `[Section]`, comments and blanks skipped.
fn unit_file(path: &Path) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for (number, line) in read(path).lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: not Key=value", path.display(), number + 1));
        assert!(
            !section.is_empty(),
            "{}: key before a section",
            path.display()
        );
        entries.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    entries
}

fn unit_value<'a>(
    entries: &'a [(String, String, String)],
    section: &str,
    key: &str,
) -> Option<&'a str> {
    entries
        .iter()
        .rev()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
}

#[test]
fn the_systemd_units_are_hardened_and_pass_systemd_analyze() {
    let service = unit_file(&deploy("systemd/groupwarden.service"));
    let daemon = unit_file(&deploy("systemd/groupwarden-daemon.service"));
    for (name, unit) in [
        ("groupwarden.service", &service),
        ("groupwarden-daemon.service", &daemon),
    ] {
        for (key, value) in [
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
            ("StateDirectory", "groupwarden"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            (
                "LoadCredential",
                "client-secret:/etc/groupwarden/client-secret",
            ),
        ] {
            assert_eq!(
                unit_value(unit, "Service", key),
                Some(value),
                "{name}: {key}"
            );
        }
    }
    assert_eq!(unit_value(&service, "Service", "Type"), Some("oneshot"));
    assert!(
        unit_value(&daemon, "Service", "ExecStart")
            .unwrap()
            .contains(" run ")
    );
    assert_eq!(
        unit_value(&daemon, "Service", "ExecReload"),
        Some("/bin/kill -HUP $MAINPID")
    );
    let timer = unit_file(&deploy("systemd/groupwarden.timer"));
    assert_eq!(
        unit_value(&timer, "Timer", "Unit"),
        Some("groupwarden.service")
    );
    assert!(unit_value(&timer, "Timer", "OnCalendar").is_some());
    assert_eq!(
        unit_value(&timer, "Install", "WantedBy"),
        Some("timers.target")
    );

    // The config the units read points at the credential LoadCredential makes.
    let config = groupwarden::config::parse(&read(&deploy("systemd/groupwarden.toml"))).unwrap();
    let source = config.source.unwrap();
    assert_eq!(
        source.client_secret_file.unwrap(),
        Path::new("$CREDENTIALS_DIRECTORY/client-secret")
    );

    if checker_available("systemd-analyze") {
        systemd_analyze_verify();
    }
}

/// `systemd-analyze verify` wants ExecStart to exist: the units are
/// checked in a copy that runs the binary just built.
fn systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "groupwarden.service",
        "groupwarden.timer",
        "groupwarden-daemon.service",
    ] {
        let unit = read(&deploy(&format!("systemd/{name}")))
            .replace("/usr/local/bin/groupwarden", binary().to_str().unwrap());
        std::fs::write(dir.path().join(name), unit).unwrap();
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(
            [
                "groupwarden.service",
                "groupwarden.timer",
                "groupwarden-daemon.service",
            ]
            .map(|n| dir.path().join(n)),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Unknown keys are only warned about: any warning fails the test.
    assert!(stderr.trim().is_empty(), "{stderr}");

    // Exposure 2.0 or lower on systemd's 0-10 scale ("OK").
    for name in ["groupwarden.service", "groupwarden-daemon.service"] {
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

// --- Kubernetes ----------------------------------------------------------

#[test]
fn the_kubernetes_cronjob_forbids_overlap_and_wires_config_secret_and_state() {
    let configmap = yaml(&deploy("kubernetes/configmap.yaml"));
    let secret = yaml(&deploy("kubernetes/secret.yaml"));
    let pvc = yaml(&deploy("kubernetes/pvc.yaml"));
    let cronjob = yaml(&deploy("kubernetes/cronjob.yaml"));
    assert_eq!(text(&configmap, "kind"), "ConfigMap");
    assert_eq!(text(&secret, "kind"), "Secret");
    assert_eq!(text(&pvc, "kind"), "PersistentVolumeClaim");
    assert_eq!(text(&cronjob, "kind"), "CronJob");
    assert_eq!(text(&cronjob, "apiVersion"), "batch/v1");

    let spec = at(&cronjob, "spec");
    assert_eq!(text(spec, "concurrencyPolicy"), "Forbid");
    CronPattern::parse(text(spec, "schedule")).unwrap();
    jiff::tz::TimeZone::get(text(spec, "timeZone")).unwrap();

    let pod = at(spec, "jobTemplate.spec.template.spec");
    assert_eq!(text(pod, "restartPolicy"), "Never");
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_ne!(at(pod, "securityContext.runAsUser").as_u64(), Some(0));
    let container = at(pod, "containers.0");
    assert_eq!(
        at(container, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        at(container, "securityContext.allowPrivilegeEscalation").as_bool(),
        Some(false)
    );
    assert_eq!(
        text(container, "securityContext.capabilities.drop.0"),
        "ALL"
    );

    // Each volume comes from one of the other manifests.
    let volume = |name: &str| {
        at(pod, "volumes")
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| text(v, "name") == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(
        text(volume("config"), "configMap.name"),
        text(&configmap, "metadata.name")
    );
    assert_eq!(
        text(volume("credentials"), "secret.secretName"),
        text(&secret, "metadata.name")
    );
    assert_eq!(
        text(volume("state"), "persistentVolumeClaim.claimName"),
        text(&pvc, "metadata.name")
    );
    let mount = |name: &str| {
        let mount = at(container, "volumeMounts")
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| text(m, "name") == name)
            .unwrap_or_else(|| panic!("no mount {name}"));
        PathBuf::from(text(mount, "mountPath"))
    };

    // The config parses, and its paths lead into the mounts.
    let args: Vec<&str> = at(container, "args")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "scan");
    let flag = |name: &str| Path::new(args[args.iter().position(|a| *a == name).unwrap() + 1]);
    let config_file = flag("--config");
    assert!(config_file.starts_with(mount("config")));
    let key = config_file.file_name().unwrap().to_str().unwrap();
    let data = at(&configmap, "data")
        .get(key)
        .and_then(Value::as_str)
        .unwrap();
    let config = groupwarden::config::parse(data).unwrap();
    let secret_file = config.source.unwrap().client_secret_file.unwrap();
    assert!(secret_file.starts_with(mount("credentials")));
    let secret_key = secret_file.file_name().unwrap().to_str().unwrap();
    // The Secret has the key, and no value is shipped.
    let value = at(&secret, "stringData")
        .get(secret_key)
        .and_then(Value::as_str);
    assert_eq!(value, Some(""));
    assert!(flag("--output").starts_with(mount("state")));

    let kustomization = yaml(&deploy("kubernetes/kustomization.yaml"));
    let resources: Vec<&str> = at(&kustomization, "resources")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for resource in &resources {
        assert!(deploy("kubernetes").join(resource).is_file(), "{resource}");
    }
    assert!(resources.contains(&"cronjob.yaml"));
}

// --- GitHub Actions ------------------------------------------------------

#[test]
fn the_github_workflow_signs_in_with_a_federated_token_and_stores_no_secret() {
    let path = deploy("github-actions/groupwarden.yml");
    let raw = read(&path);
    let workflow = yaml(&path);
    CronPattern::parse(text(&workflow, "on.schedule.0.cron")).unwrap();
    assert_eq!(text(&workflow, "permissions.id-token"), "write");
    assert_eq!(text(&workflow, "permissions.contents"), "read");
    assert_eq!(
        at(&workflow, "concurrency.cancel-in-progress").as_bool(),
        Some(false)
    );
    assert!(
        !raw.contains("secrets."),
        "the workflow must not need a stored secret"
    );
    assert!(!raw.contains("client_secret"));

    let steps = at(&workflow, "jobs.scan.steps").as_sequence().unwrap();
    let runs: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.get("run")?.as_str())
        .collect();
    let token_step = runs
        .iter()
        .position(|r| r.contains("AZURE_FEDERATED_TOKEN_FILE="))
        .expect("a step exports AZURE_FEDERATED_TOKEN_FILE");
    assert!(runs[token_step].contains("audience=api://AzureADTokenExchange"));
    let scan_step = runs
        .iter()
        .position(|r| r.contains("bin/groupwarden\" scan --config"))
        .expect("a scan step");
    assert!(
        token_step < scan_step,
        "the token is fetched right before the scan"
    );

    // The config the workflow uses leaves the credential to the environment.
    let config =
        groupwarden::config::parse(&read(&deploy("github-actions/groupwarden.toml"))).unwrap();
    let source = config.source.unwrap();
    assert!(source.client_secret_env.is_none() && source.client_secret_file.is_none());
    assert!(source.federated_token_file.is_none() && source.certificate_file.is_none());
}

// --- Dockerfile ----------------------------------------------------------

#[test]
fn the_dockerfile_builds_in_stages_runs_as_non_root_and_bakes_in_no_secret() {
    let path = root().join("Dockerfile");
    let dockerfile = read(&path);
    let instructions: Vec<(String, String)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (word, rest) = l.split_once(' ')?;
            Some((word.to_uppercase(), rest.to_owned()))
        })
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (word, _))| word == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage");
    let last_stage = &instructions[*stages.last().unwrap()..];
    assert!(
        last_stage
            .iter()
            .any(|(word, rest)| word == "COPY" && rest.starts_with("--from=build")),
        "the final image copies the binary from the build stage"
    );
    let user = last_stage
        .iter()
        .rev()
        .find(|(word, _)| word == "USER")
        .map(|(_, rest)| rest.as_str())
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&uid), "USER {user}");
    for (word, rest) in &instructions {
        if word == "ENV" || word == "ARG" {
            let upper = rest.to_uppercase();
            for secret in ["SECRET", "PASSWORD", "TOKEN", "KEY"] {
                assert!(
                    !upper.contains(secret),
                    "{word} {rest}: no secrets in the image"
                );
            }
        }
    }
    let ignored = read(&root().join(".dockerignore"));
    for pattern in ["target/", ".git/"] {
        assert!(
            ignored.lines().any(|l| l.trim() == pattern),
            ".dockerignore: {pattern}"
        );
    }

    if checker_available("hadolint") {
        let output = Command::new("hadolint").arg(&path).output().unwrap();
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

// --- docs ------------------------------------------------------------------

#[test]
fn the_toml_examples_in_the_deployment_guide_parse() {
    let guide = read(&root().join("docs/deployment.md"));
    let blocks: Vec<&str> = guide
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty());
    for block in blocks {
        let config = groupwarden::config::parse(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        if let Some(schedule) = config.schedule {
            assert!(!schedule.patterns().is_empty());
        }
    }
}

// --- Run as the platform runs them ---------------------------------------
//
// Each shipped deployment's own command line, config and environment,
// taken from its files, run with the real binary: in a folder standing in
// for the file system root (every absolute path the files name is mapped
// under it), as the platform's unprivileged user (dropped with `setpriv`
// when the tests run as root, as CI does), with the config folder
// read-only, the platform's environment variables and nothing else
// (`env_clear`: no variable of the machine running the tests reaches the
// binary), and a loopback stand-in for Microsoft Entra and Graph. Each
// scans twice; the state must be in the platform's data folder, the second
// scan must see the first, and the config folder must be left as it was.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use wiremock::matchers::{body_string_contains, header, method, path as url_path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_SECRET: &str = "deploy-test-client-secret~value";
const ACCESS_TOKEN: &str = "eyJ0eXAi.deploy-access-token.sig";
const REPORT_PATH: &str = "/v1.0/reports/getOffice365GroupsActivityDetail(period='D30')";
/// The platforms' search path; nothing else is inherited.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The report Graph serves: one ownerless group (a finding), one fine.
fn served_report() -> String {
    crate::util::report(&[
        crate::util::Group {
            name: "Orphans",
            owner: "",
            id: "22222222-2222-2222-2222-222222222222",
            ..Default::default()
        }
        .csv(),
        crate::util::Group {
            name: "Sales",
            id: "11111111-1111-1111-1111-111111111111",
            ..Default::default()
        }
        .csv(),
    ])
}

/// Microsoft Entra's token endpoint (for `tenant`, accepting a request
/// whose form carries `credential`) and Graph serving the report, on one
/// loopback server.
async fn graph_stand_in(tenant: &str, credential: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(url_path(format!("/{tenant}/oauth2/v2.0/token")))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(credential))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": ACCESS_TOKEN,
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(url_path(REPORT_PATH))
        .and(header("authorization", format!("Bearer {ACCESS_TOKEN}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(served_report().into_bytes(), "application/octet-stream"),
        )
        .mount(&server)
        .await;
    server
}

/// `[source]` pointed at the stand-in with the two keys docs/graph.md
/// gives for that (`authority_url`, `graph_url`), the rest as shipped.
fn point_at(config: &str, server: &MockServer) -> String {
    let uri = server.uri();
    assert!(config.contains("\n[source]\n"), "no [source] in {config}");
    config.replacen(
        "\n[source]\n",
        &format!("\n[source]\nauthority_url = \"{uri}\"\ngraph_url = \"{uri}\"\n"),
        1,
    )
}

/// A folder standing in for `/`.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        // Traversable by the unprivileged user, writable only by root.
        set_mode(dir.path(), 0o755);
        Root { dir }
    }

    /// Where the platform's absolute `path` is.
    fn at(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// `text` with each of the platform's absolute `paths` mapped.
    fn map(&self, text: &str, paths: &[&str]) -> String {
        paths.iter().fold(text.to_owned(), |text, path| {
            text.replace(path, self.at(path).to_str().unwrap())
        })
    }

    /// Creates the folder `path` (and its parents, root-owned 0755).
    fn mkdir(&self, path: &str, mode: u32) -> PathBuf {
        let dir = self.at(path);
        let mut parent = dir.parent();
        let mut missing = Vec::new();
        while let Some(p) = parent.filter(|p| !p.exists()) {
            missing.push(p.to_owned());
            parent = p.parent();
        }
        std::fs::create_dir_all(&dir).unwrap();
        for p in missing {
            set_mode(&p, 0o755);
        }
        set_mode(&dir, mode);
        dir
    }

    /// The binary installed at the platform's `path`.
    fn install_binary(&self, path: &str) -> PathBuf {
        let target = self.at(path);
        self.mkdir(Path::new(path).parent().unwrap().to_str().unwrap(), 0o755);
        if std::fs::hard_link(binary(), &target).is_err() {
            std::fs::copy(binary(), &target).unwrap();
        }
        set_mode(&target, 0o755);
        target
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Gives `path` to the platform's user; as another user the test's own
/// files are already what an unprivileged user owns.
fn chown(path: &Path, uid: u32, gid: u32) {
    if running_as_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// Every file under `dir` with its size, mode and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u32, i64, i64)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let meta = std::fs::metadata(&dir).unwrap();
        files.insert(
            dir.clone(),
            (0, meta.mode(), meta.mtime(), meta.mtime_nsec()),
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                files.insert(
                    entry.path(),
                    (meta.len(), meta.mode(), meta.mtime(), meta.mtime_nsec()),
                );
            }
        }
    }
    files
}

/// `program args` as `uid:gid` (with the supplementary `groups`) in a
/// clean environment of exactly `env`, with `umask` when given.
fn as_platform(
    (uid, gid, groups): (u32, u32, &[u32]),
    umask: Option<&str>,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    dir: &Path,
) -> std::process::Output {
    let mut argv: Vec<String> = Vec::new();
    if running_as_root() {
        argv.extend([
            "setpriv".to_owned(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
        ]);
        if groups.is_empty() {
            argv.push("--clear-groups".to_owned());
        } else {
            let list: Vec<String> = groups.iter().map(u32::to_string).collect();
            argv.push(format!("--groups={}", list.join(",")));
        }
    } else {
        eprintln!(
            "not root: running as the current user, whose config folder is just as read-only (0555)"
        );
    }
    if let Some(umask) = umask {
        argv.extend([
            "sh".to_owned(),
            "-c".to_owned(),
            format!("umask {umask} && exec \"$0\" \"$@\""),
        ]);
    }
    argv.push(program.to_str().unwrap().to_owned());
    argv.extend(args.iter().cloned());
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir);
    command.output().unwrap()
}

/// The findings document a scan wrote, and its statuses by group.
fn statuses(findings_file: &Path) -> BTreeMap<String, String> {
    let document: serde_json::Value =
        serde_json::from_str(&read(findings_file)).unwrap_or_else(|e| panic!("{e}"));
    document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["group_name"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn assert_ran(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What two scans must show: state in `data_dir` (the database named
/// `db`), `new` then `open`, and the config folder untouched.
fn assert_two_scans_kept_state(
    outputs: &[std::process::Output],
    findings: &[BTreeMap<String, String>],
    db: &Path,
    data_dir: &Path,
) {
    for (n, output) in outputs.iter().enumerate() {
        assert_ran(output, &format!("scan {}", n + 1));
    }
    assert!(db.starts_with(data_dir), "{}", db.display());
    assert!(db.is_file(), "no state database at {}", db.display());
    let first = &findings[0];
    let second = &findings[1];
    assert_eq!(
        first.get("Orphans").map(String::as_str),
        Some("new"),
        "{first:?}"
    );
    assert_eq!(
        second.get("Orphans").map(String::as_str),
        Some("open"),
        "the second scan did not see the first: {second:?}"
    );
    let log = String::from_utf8_lossy(&outputs[1].stderr);
    assert!(log.contains("(scan 2)"), "{log}");
}

/// A systemd unit installed as its header says, and what systemd does
/// when it starts it.
struct InstalledUnit {
    root: Root,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    working_dir: PathBuf,
    umask: String,
    config_dir: PathBuf,
    data_dir: PathBuf,
}

/// DynamicUser=: an unprivileged uid of systemd's choosing.
const UNIT_USER: (u32, u32) = (65534, 65534);

fn install_unit(name: &str, server: &MockServer) -> InstalledUnit {
    let unit = unit_file(&deploy(&format!("systemd/{name}")));
    let value = |key: &str| {
        unit_value(&unit, "Service", key).unwrap_or_else(|| panic!("{name}: no {key}="))
    };
    let root = Root::new();
    let mapped = [
        "/usr/local/bin",
        "/etc/groupwarden",
        "/var/lib/groupwarden",
        "/run/credentials",
    ];
    let (uid, gid) = UNIT_USER;
    assert!(
        !value("ExecStart").contains(['"', '\'', '$']),
        "split as systemd would only without quotes or variables"
    );
    let exec: Vec<String> = root
        .map(value("ExecStart"), &mapped)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    // The install steps of the units' header: binary, config, rules, secret.
    let program = root.install_binary("/usr/local/bin/groupwarden");
    assert_eq!(Path::new(&exec[0]), program);
    let config_dir = root.mkdir("/etc/groupwarden", 0o755);
    let config = point_at(&read(&deploy("systemd/groupwarden.toml")), server);
    std::fs::write(
        config_dir.join("groupwarden.toml"),
        root.map(&config, &mapped),
    )
    .unwrap();
    copy_rules(&config_dir.join("rules"));
    std::fs::write(
        config_dir.join("client-secret"),
        format!("{CLIENT_SECRET}\n"),
    )
    .unwrap();
    set_mode(&config_dir.join("client-secret"), 0o600);
    make_read_only(&config_dir);

    // What systemd does at start: StateDirectory= (owned by the user,
    // StateDirectoryMode=), LoadCredential= (a copy for this unit alone,
    // in a folder named after it).
    let data_dir = root.mkdir(
        &format!("/var/lib/{}", value("StateDirectory")),
        u32::from_str_radix(value("StateDirectoryMode"), 8).unwrap(),
    );
    chown(&data_dir, uid, gid);
    let credentials = root.mkdir(&format!("/run/credentials/{name}"), 0o500);
    chown(&credentials, uid, gid);
    let (credential, source) = value("LoadCredential").split_once(':').unwrap();
    let credential = credentials.join(credential);
    std::fs::copy(root.at(source), &credential).unwrap();
    set_mode(&credential, 0o400);
    chown(&credential, uid, gid);

    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), "/".into()),
        ("USER".into(), name.trim_end_matches(".service").into()),
        ("LOGNAME".into(), name.trim_end_matches(".service").into()),
        ("SHELL".into(), "/usr/sbin/nologin".into()),
        (
            "INVOCATION_ID".into(),
            "0123456789abcdef0123456789abcdef".into(),
        ),
        ("STATE_DIRECTORY".into(), data_dir.to_str().unwrap().into()),
        (
            "CREDENTIALS_DIRECTORY".into(),
            credentials.to_str().unwrap().into(),
        ),
    ];
    for (_, _, assignment) in unit
        .iter()
        .filter(|(s, k, _)| s == "Service" && k == "Environment")
    {
        let (name, value) = assignment.split_once('=').unwrap();
        env.push((name.into(), value.into()));
    }
    InstalledUnit {
        working_dir: root.at(value("WorkingDirectory")),
        umask: value("UMask").to_owned(),
        program,
        args: exec[1..].to_vec(),
        env,
        config_dir,
        data_dir,
        root,
    }
}

#[tokio::test]
async fn the_systemd_service_scans_twice_as_its_dynamic_user_keeping_state_in_its_state_directory()
{
    let server = graph_stand_in(
        TENANT,
        &format!("client_secret={}", CLIENT_SECRET.replace('~', "%7E")),
    )
    .await;
    let unit = install_unit("groupwarden.service", &server);
    let before = snapshot(&unit.config_dir);

    let mut outputs = Vec::new();
    let mut findings = Vec::new();
    let findings_file = unit.root.at("/var/lib/groupwarden/findings.json");
    for _ in 0..2 {
        outputs.push(as_platform(
            (UNIT_USER.0, UNIT_USER.1, &[]),
            Some(&unit.umask),
            &unit.program,
            &unit.args,
            &unit.env,
            &unit.working_dir,
        ));
        assert_ran(outputs.last().unwrap(), "groupwarden.service");
        findings.push(statuses(&findings_file));
    }

    let data_dir = &unit.data_dir;
    assert_two_scans_kept_state(
        &outputs,
        &findings,
        &data_dir.join("groupwarden.db"),
        data_dir,
    );
    assert!(
        unit.root.at("/var/lib/groupwarden/reports").is_dir(),
        "--save-report"
    );
    assert_eq!(
        before,
        snapshot(&unit.config_dir),
        "the config folder was written to"
    );
    let secret_shown = outputs.iter().any(|o| {
        String::from_utf8_lossy(&o.stderr).contains(CLIENT_SECRET)
            || String::from_utf8_lossy(&o.stdout).contains(CLIENT_SECRET)
    });
    assert!(!secret_shown);
    // docs/deployment.md's check from a root shell (here: the test's user).
    let validate = Command::new(&unit.program)
        .args(["validate", "--config"])
        .arg(unit.config_dir.join("groupwarden.toml"))
        .env_clear()
        .env("PATH", PATH)
        .env("CREDENTIALS_DIRECTORY", &unit.config_dir)
        .current_dir(unit.root.at("/"))
        .output()
        .unwrap();
    assert_ran(
        &validate,
        "CREDENTIALS_DIRECTORY=/etc/groupwarden groupwarden validate",
    );
    if running_as_root() {
        let db = std::fs::metadata(data_dir.join("groupwarden.db")).unwrap();
        assert_eq!(db.uid(), UNIT_USER.0, "written by the unit's user");
        assert_eq!(db.mode() & 0o077, 0, "UMask=0077 keeps it private");
    }
}

/// The daemon unit's schedule is hours away: the test runs its command
/// line until it has passed its start-up checks (config, rules, `[source]`
/// with the credential systemd hands this unit) and serves /healthz, then
/// stops it as `systemctl stop` does.
#[tokio::test]
async fn the_systemd_daemon_unit_starts_with_the_same_config_and_its_own_credential() {
    let server = graph_stand_in(TENANT, "client_secret=").await;
    let mut unit = install_unit("groupwarden-daemon.service", &server);
    // The shipped [health] port may be taken on the machine running the
    // tests: the listen address is the one change to the config copy.
    let config = unit.config_dir.join("groupwarden.toml");
    let text = read(&config);
    assert!(text.contains("listen = \"127.0.0.1:9464\""));
    set_mode(&unit.config_dir, 0o755);
    set_mode(&config, 0o644);
    std::fs::write(&config, text.replace("127.0.0.1:9464", "127.0.0.1:0")).unwrap();
    make_read_only(&unit.config_dir);
    unit.env.push(("GROUPWARDEN_LOG".into(), "info".into()));
    let mut command = Command::new(if running_as_root() { "setpriv" } else { "env" });
    if running_as_root() {
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    }
    let mut child = command
        .arg(&unit.program)
        .args(&unit.args)
        .env_clear()
        .envs(unit.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&unit.working_dir)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let started = lines.by_ref().take(50).any(|line| {
        let line = line.unwrap_or_default();
        log.push_str(&line);
        log.push('\n');
        line.contains("health endpoint listening")
    });
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    log.extend(lines.map_while(Result::ok).map(|l| l + "\n"));
    let status = child.wait().unwrap();
    assert!(started, "the daemon did not start:\n{log}");
    assert!(status.success(), "{status}\n{log}");
    assert!(!log.contains(CLIENT_SECRET));
}

/// The bundled rules, copied as the install steps do.
fn copy_rules(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(crate::util::bundled_rules()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The folder and everything in it without write permission for anyone
/// (a folder 0555, a file its mode less the write bits).
fn make_read_only(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            make_read_only(&path);
        } else {
            let mode = std::fs::metadata(&path).unwrap().mode() & 0o7777;
            set_mode(&path, mode & !0o222);
        }
    }
    set_mode(dir, 0o555);
}

#[tokio::test]
async fn the_kubernetes_cronjob_scans_twice_as_its_pod_keeping_state_on_its_volume() {
    let configmap = yaml(&deploy("kubernetes/configmap.yaml"));
    let cronjob = yaml(&deploy("kubernetes/cronjob.yaml"));
    let secret = yaml(&deploy("kubernetes/secret.yaml"));
    let pod = at(&cronjob, "spec.jobTemplate.spec.template.spec");
    let container = at(pod, "containers.0");
    let security = at(pod, "securityContext");
    let id = |key: &str| at(security, key).as_u64().unwrap() as u32;
    let (uid, gid, fs_group) = (id("runAsUser"), id("runAsGroup"), id("fsGroup"));
    let server = graph_stand_in(
        TENANT,
        &format!("client_secret={}", CLIENT_SECRET.replace('~', "%7E")),
    )
    .await;
    let root = Root::new();
    let mapped = [
        "/usr/local/bin",
        "/usr/share/groupwarden",
        "/etc/groupwarden",
        "/var/lib/groupwarden",
        "/var/run/secrets/groupwarden",
    ];

    // The image: the binary at its ENTRYPOINT, the rules, ENV and WORKDIR
    // of the Dockerfile's final stage.
    let image = image_settings();
    let program = root.install_binary(&image.entrypoint);
    copy_rules(&root.mkdir("/usr/share/groupwarden/rules", 0o755));

    // The volumes, as the kubelet mounts them.
    let volumes = at(pod, "volumes").as_sequence().unwrap();
    let mut mounts = BTreeMap::new();
    let mut data_dir = None;
    for mount in at(container, "volumeMounts").as_sequence().unwrap() {
        let mount_path = text(mount, "mountPath");
        let volume = volumes
            .iter()
            .find(|v| text(v, "name") == text(mount, "name"))
            .unwrap();
        let dir = root.mkdir(mount_path, 0o755);
        if let Some(name) = volume.get("configMap").and_then(|c| c.get("name")) {
            assert_eq!(name, at(&configmap, "metadata.name"));
            for (key, value) in at(&configmap, "data").as_mapping().unwrap() {
                let config = point_at(value.as_str().unwrap(), &server);
                std::fs::write(dir.join(key.as_str().unwrap()), root.map(&config, &mapped))
                    .unwrap();
            }
        } else if let Some(name) = volume.get("secret").and_then(|s| s.get("secretName")) {
            assert_eq!(name, at(&secret, "metadata.name"));
            let mode = secret_mode(&read(&deploy("kubernetes/cronjob.yaml")));
            for (key, _) in at(&secret, "stringData").as_mapping().unwrap() {
                // `kubectl create secret … --from-file`: the value is filled in.
                let file = dir.join(key.as_str().unwrap());
                std::fs::write(&file, format!("{CLIENT_SECRET}\n")).unwrap();
                // With fsGroup the kubelet gives the group read access.
                set_mode(&file, mode | 0o040);
                chown(&file, 0, fs_group);
            }
        } else if volume.get("persistentVolumeClaim").is_some() {
            // fsGroup: the volume's group, group-writable, setgid.
            set_mode(&dir, 0o2775);
            chown(&dir, 0, fs_group);
            data_dir = Some(dir.clone());
        } else {
            set_mode(&dir, 0o1777);
        }
        if mount.get("readOnly").and_then(Value::as_bool) == Some(true) {
            make_read_only(&dir);
        }
        mounts.insert(mount_path.to_owned(), dir);
    }
    let data_dir = data_dir.expect("a volume for the state");
    let config_dir = &mounts["/etc/groupwarden"];

    let args: Vec<String> = at(container, "args")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| root.map(a.as_str().unwrap(), &mapped))
        .collect();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), "/".into()),
        ("HOSTNAME".into(), "groupwarden-29406360-x7k2p".into()),
        ("KUBERNETES_SERVICE_HOST".into(), "10.0.0.1".into()),
        ("KUBERNETES_SERVICE_PORT".into(), "443".into()),
    ];
    env.extend(
        image
            .env
            .iter()
            .map(|(k, v)| (k.clone(), root.map(v, &mapped))),
    );
    for variable in at(container, "env").as_sequence().unwrap() {
        env.push((
            text(variable, "name").into(),
            text(variable, "value").into(),
        ));
    }
    let working_dir = root.at(&image.workdir);
    let before = snapshot(config_dir);
    let image_before = [
        snapshot(&root.at("/usr/local/bin")),
        snapshot(&root.at("/usr/share/groupwarden")),
    ];

    let findings_flag = args.iter().position(|a| a == "--output").unwrap() + 1;
    let findings_file = PathBuf::from(&args[findings_flag]);
    let mut outputs = Vec::new();
    let mut findings = Vec::new();
    for _ in 0..2 {
        outputs.push(as_platform(
            (uid, gid, &[fs_group]),
            None,
            &program,
            &args,
            &env,
            &working_dir,
        ));
        assert_ran(outputs.last().unwrap(), "the CronJob's container");
        findings.push(statuses(&findings_file));
    }

    assert_two_scans_kept_state(
        &outputs,
        &findings,
        &data_dir.join("groupwarden.db"),
        &data_dir,
    );
    assert_eq!(
        before,
        snapshot(config_dir),
        "the ConfigMap mount was written to"
    );
    // readOnlyRootFilesystem: the image's files are as they were.
    let image_after = [
        snapshot(&root.at("/usr/local/bin")),
        snapshot(&root.at("/usr/share/groupwarden")),
    ];
    assert_eq!(image_before, image_after);
}

/// The secret volume's `defaultMode`, written in octal as Kubernetes reads
/// it (YAML 1.1: a leading 0 is octal), which a YAML 1.2 parser does not.
fn secret_mode(cronjob: &str) -> u32 {
    let written = cronjob
        .lines()
        .find_map(|l| l.trim().strip_prefix("defaultMode:"))
        .expect("defaultMode")
        .trim();
    assert!(
        written.starts_with('0'),
        "defaultMode {written}: write it in octal"
    );
    u32::from_str_radix(written, 8).unwrap()
}

/// The final stage of the `Dockerfile`: what the container starts with.
struct Image {
    entrypoint: String,
    workdir: String,
    env: Vec<(String, String)>,
}

fn image_settings() -> Image {
    let dockerfile = read(&root().join("Dockerfile"));
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let mut image = Image {
        entrypoint: String::new(),
        workdir: "/".into(),
        env: Vec::new(),
    };
    for line in last_stage.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("ENV ") {
            let (name, value) = rest.split_once('=').unwrap();
            image.env.push((name.trim().into(), value.trim().into()));
        } else if let Some(rest) = line.strip_prefix("WORKDIR ") {
            image.workdir = rest.trim().into();
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            let list: Vec<String> = serde_json::from_str(rest).unwrap();
            assert_eq!(list.len(), 1, "an ENTRYPOINT of the binary alone");
            image.entrypoint = list[0].clone();
        }
    }
    assert!(!image.entrypoint.is_empty());
    image
}

#[tokio::test]
async fn the_github_workflow_runs_its_steps_twice_carrying_the_state_in_the_cache() {
    let workflow = yaml(&deploy("github-actions/groupwarden.yml"));
    if !(checker_available("curl") && checker_available("jq") && checker_available("bash")) {
        eprintln!("the workflow's token step needs curl, jq and bash: not run");
        return;
    }
    const REQUEST_TOKEN: &str = "actions-id-token-request-token";
    const FEDERATED_TOKEN: &str = "eyJhbGciOi.github-oidc-token.sig";
    const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
    let server = graph_stand_in(TENANT, &format!("client_assertion={FEDERATED_TOKEN}")).await;
    // GitHub's OIDC token service, as the runner offers it.
    Mock::given(method("GET"))
        .and(url_path("/oidc/token"))
        .and(wiremock::matchers::query_param(
            "audience",
            "api://AzureADTokenExchange",
        ))
        .and(header("authorization", format!("bearer {REQUEST_TOKEN}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": FEDERATED_TOKEN})),
        )
        .mount(&server)
        .await;
    let vars = BTreeMap::from([
        ("vars.AZURE_TENANT_ID", TENANT.to_owned()),
        ("vars.AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        (
            "vars.GROUPWARDEN_GIT",
            "https://git.example.com/groupwarden.git".to_owned(),
        ),
        ("github.run_id", "4242".to_owned()),
    ]);
    let expand = |text: &str| {
        vars.iter().fold(text.to_owned(), |text, (name, value)| {
            text.replace(&format!("${{{{ {name} }}}}"), value)
        })
    };
    let root = Root::new();
    // The hosted runner's user; its workspace and temp are its own.
    let (uid, gid) = (1001, 1001);
    let cache = root.mkdir("/cache", 0o700);
    let steps = at(&workflow, "jobs.scan.steps").as_sequence().unwrap();

    let mut findings = Vec::new();
    let mut outputs = Vec::new();
    for run in 1..=2 {
        // A fresh runner for each run: only the cache carries over.
        let home = root.mkdir(&format!("/runner{run}/home"), 0o755);
        let workspace = root.mkdir(&format!("/runner{run}/work/repo"), 0o755);
        let runner_temp = root.mkdir(&format!("/runner{run}/temp"), 0o755);
        for dir in [&home, &workspace, &runner_temp] {
            chown(dir, uid, gid);
        }
        let github_env = runner_temp.join("github_env");
        std::fs::write(&github_env, "").unwrap();
        chown(&github_env, uid, gid);
        let env: Vec<(String, String)> = vec![
            ("PATH".into(), PATH.into()),
            ("HOME".into(), home.to_str().unwrap().into()),
            ("CI".into(), "true".into()),
            ("GITHUB_ACTIONS".into(), "true".into()),
            ("GITHUB_RUN_ID".into(), vars["github.run_id"].clone()),
            (
                "GITHUB_WORKSPACE".into(),
                workspace.to_str().unwrap().into(),
            ),
            ("GITHUB_ENV".into(), github_env.to_str().unwrap().into()),
            ("RUNNER_TEMP".into(), runner_temp.to_str().unwrap().into()),
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
                format!("{}/oidc/token?api-version=2.0", server.uri()),
            ),
            (
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
                REQUEST_TOKEN.into(),
            ),
        ];
        for step in steps {
            let name = step.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(action) = step.get("uses").and_then(Value::as_str) {
                run_action(action, step, &workspace, &cache, &server, (uid, gid));
                continue;
            }
            let script = text(step, "run");
            if script.contains("cargo install") {
                // The install step builds groupwarden from source: the binary
                // under test stands in for what it installs.
                assert!(
                    script.contains("--root \"$RUNNER_TEMP/groupwarden\""),
                    "{script}"
                );
                let bin = runner_temp.join("groupwarden/bin");
                std::fs::create_dir_all(&bin).unwrap();
                if std::fs::hard_link(binary(), bin.join("groupwarden")).is_err() {
                    std::fs::copy(binary(), bin.join("groupwarden")).unwrap();
                }
                continue;
            }
            let mut step_env = env.clone();
            // What earlier steps appended to $GITHUB_ENV, then the step's own env.
            for line in read(&github_env).lines().filter(|l| !l.is_empty()) {
                let (k, v) = line.split_once('=').unwrap();
                step_env.push((k.into(), v.into()));
            }
            if let Some(vars) = step.get("env").and_then(Value::as_mapping) {
                for (k, v) in vars {
                    step_env.push((k.as_str().unwrap().into(), expand(v.as_str().unwrap())));
                }
            }
            let script_file = runner_temp.join(format!("step-{}.sh", outputs.len()));
            std::fs::write(&script_file, script).unwrap();
            set_mode(&script_file, 0o644);
            let args = [
                "--noprofile",
                "--norc",
                "-eo",
                "pipefail",
                script_file.to_str().unwrap(),
            ]
            .map(str::to_owned);
            let output = as_platform(
                (uid, gid, &[]),
                None,
                Path::new("/bin/bash"),
                &args,
                &step_env,
                &workspace,
            );
            assert_ran(&output, &format!("run {run}, step {name:?}"));
            if name == "Scan" {
                findings.push(statuses(&workspace.join("out/findings.json")));
                outputs.push(output);
            }
        }
        assert!(
            workspace.join("out/report.html").is_file(),
            "run {run}: the HTML report step"
        );
        // The runs wrote only the state (which the cache carries) and out/.
        let mut written: Vec<String> = std::fs::read_dir(&workspace)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| !["groupwarden.toml", "rules", "out"].contains(&name.as_str()))
            .collect();
        written.sort();
        assert_eq!(
            written,
            ["groupwarden.db", "groupwarden.db.lock"],
            "run {run}"
        );
    }

    let state = at(&workflow, "jobs.scan.steps")
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|s| Some(s.get("with")?.get("path")?.as_str()?.to_owned()))
        .unwrap();
    assert_two_scans_kept_state(&outputs, &findings, &cache.join(&state), &cache);
}

/// The actions the workflow uses, as they behave: the cache keyed by run
/// with the newest restored, the checkout of the repository holding the
/// config and rules, the artifact upload of a path that must exist.
fn run_action(
    action: &str,
    step: &Value,
    workspace: &Path,
    cache: &Path,
    server: &MockServer,
    (uid, gid): (u32, u32),
) {
    let with_path = || text(step, "with.path").to_owned();
    match action.split('@').next().unwrap() {
        "actions/checkout" => {
            let config = point_at(&read(&deploy("github-actions/groupwarden.toml")), server);
            std::fs::write(workspace.join("groupwarden.toml"), config).unwrap();
            copy_rules(&workspace.join("rules"));
            for path in [workspace.join("groupwarden.toml"), workspace.join("rules")] {
                chown(&path, uid, gid);
            }
        }
        "actions/cache/restore" => {
            assert!(text(step, "with.restore-keys").starts_with("groupwarden-state-"));
            let cached = cache.join(with_path());
            if cached.exists() {
                std::fs::copy(&cached, workspace.join(with_path())).unwrap();
                chown(&workspace.join(with_path()), uid, gid);
            }
        }
        "actions/cache/save" => {
            assert_eq!(text(step, "if"), "always()");
            let saved = workspace.join(with_path());
            assert!(saved.is_file(), "nothing to cache at {}", saved.display());
            std::fs::copy(&saved, cache.join(with_path())).unwrap();
        }
        "actions/upload-artifact" => {
            assert!(
                workspace.join(with_path()).is_dir(),
                "artifact {}",
                with_path()
            );
        }
        other => panic!("the workflow uses {other}, which this test does not know"),
    }
}
