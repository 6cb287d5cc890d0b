//! The ready-made deployments under `examples/deploy/` and the
//! `Dockerfile`: each parses, passes the platform's own checker where
//! this machine has it (`systemd-analyze`, `hadolint`), and holds the
//! properties the docs promise (hardening, no stored secret, one run at a
//! time). Their groupwarden configs are checked with groupwarden's parser.

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
        Path::new("/run/credentials/groupwarden.service/client-secret")
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
