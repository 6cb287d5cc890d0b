//! Hostile files and full disks, end to end with the real binary: the
//! commands that only read open the state database read-only (a 0444 file
//! in a 0555 folder stays byte-identical), a write names the file and the
//! fix, records over `[scan] max_record_bytes` are row errors that never
//! fill memory (a 200 MB line, an unclosed quote near the top), and a full
//! disk names the file it could not write (state database, outbox,
//! output, `--save-report`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use crate::util::*;

/// Runs as root (as CI may): the commands must then run as an ordinary
/// user, or the permission bits would not stop them.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `setpriv` arguments that run a program as `nobody`.
const AS_NOBODY: [&str; 4] = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

/// The binary as `nobody` can run it: where it was built, or, when a
/// folder above it is closed to others (a checkout in root's home), a
/// copy in a folder of its own.
fn binary_for_nobody() -> PathBuf {
    static COPY: std::sync::OnceLock<(Option<TempDir>, PathBuf)> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let runs = Command::new("setpriv")
            .args(AS_NOBODY)
            .arg(binary())
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if runs {
            return (None, binary().to_owned());
        }
        let dir = TempDir::new().unwrap();
        set_mode(dir.path(), 0o755);
        let copy = dir.path().join("groupwarden");
        std::fs::copy(binary(), &copy).unwrap();
        (Some(dir), copy)
    })
    .1
    .clone()
}

/// groupwarden with `args` in `dir`, as `nobody` when the tests run as root.
fn gw_unprivileged(dir: &Path, args: &[&str]) -> Output {
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command.args(AS_NOBODY).arg(binary_for_nobody());
        command
    } else {
        Command::new(binary())
    };
    remove_settings(&mut command, std::env::vars_os());
    command
        .current_dir(dir)
        .args(args)
        .env("GROUPWARDEN_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A tenant whose database was made by one stateful scan, then made
/// read-only: the file 0444 in a 0555 folder.
struct ReadOnlyTenant {
    dir: TempDir,
    db: PathBuf,
}

impl ReadOnlyTenant {
    fn new() -> ReadOnlyTenant {
        let dir = TempDir::new().unwrap();
        set_mode(dir.path(), 0o755);
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        set_mode(&out, 0o777);
        let rows: Vec<String> = (0..20)
            .map(|n| {
                let id = format!("{n:08x}-0000-4000-8000-000000000000");
                let owner = if n % 2 == 0 { "" } else { "o@contoso.com" };
                Group {
                    name: &format!("Group {n}"),
                    owner,
                    id: &id,
                    ..Default::default()
                }
                .csv()
            })
            .collect();
        write(dir.path(), "r.csv", &report(&rows));
        // The rules where `nobody` may read them, whatever the checkout's
        // permissions.
        for rule in std::fs::read_dir(bundled_rules()).unwrap() {
            let rule = rule.unwrap().path();
            write(
                dir.path(),
                &format!("rules/{}", rule.file_name().unwrap().to_string_lossy()),
                &std::fs::read_to_string(&rule).unwrap(),
            );
        }
        // The next report: one more ownerless group, for the preview.
        let mut next = rows.clone();
        next.push(
            Group {
                name: "Newly ownerless",
                owner: "",
                id: "000000ff-0000-4000-8000-000000000000",
                ..Default::default()
            }
            .csv(),
        );
        write(dir.path(), "r2.csv", &report(&next));
        write(
            dir.path(),
            "groupwarden.toml",
            &format!(
                "[rules]\ndir = \"{}/rules\"\n\n[state]\npath = \"state/gw.db\"\n\n\
                 [[exemptions]]\nrule = \"ownerless-groups\"\ngroup_id = \"00000000-0000-4000-8000-000000000000\"\n\
                 reason = \"Legal hold\"\nexpires = \"2099-01-01\"\n\n\
                 [[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
                dir.path().display()
            ),
        );
        // Queued for a channel that is down: the outbox has a message.
        let made = gw(dir.path())
            .args(["scan", "--input", "r.csv", "--format", "jsonl"])
            .output()
            .unwrap();
        assert!(
            std::fs::metadata(dir.path().join("state/gw.db")).is_ok(),
            "{}",
            stderr(&made)
        );
        let db = dir.path().join("state/gw.db");
        set_mode(&db, 0o444);
        set_mode(&dir.path().join("state"), 0o555);
        ReadOnlyTenant { dir, db }
    }
}

impl Drop for ReadOnlyTenant {
    fn drop(&mut self) {
        // So that TempDir can remove it when the tests do not run as root.
        set_mode(&self.dir.path().join("state"), 0o755);
    }
}

#[test]
fn read_only_commands_read_a_read_only_database_and_leave_it_byte_identical() {
    let tenant = ReadOnlyTenant::new();
    let dir = tenant.dir.path();
    let before = std::fs::read(&tenant.db).unwrap();
    let files_before = listing(&dir.join("state"));
    for args in [
        &["findings", "--format", "json"][..],
        &["findings", "--status", "exempted"],
        &["history", "00000000-0000-4000-8000-000000000000"],
        &["exemptions"],
        &["report", "--input", "r.csv", "--output", "out/page.html"],
        &["notify", "--dead-letters"],
        &["notify", "--dry-run", "--input", "r2.csv"],
    ] {
        let out = gw_unprivileged(dir, args);
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(1),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("read-only"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(&tenant.db).unwrap(),
            before,
            "{args:?} changed the database"
        );
        assert_eq!(listing(&dir.join("state")), files_before, "{args:?}");
    }
    // The preview is the next scan's message: the one new group only.
    let preview = gw_unprivileged(dir, &["notify", "--dry-run", "--input", "r2.csv"]);
    assert!(
        stdout(&preview).contains("==> message 1 of 1"),
        "{}",
        stdout(&preview)
    );
    assert!(
        stdout(&preview).contains("Newly ownerless"),
        "{}",
        stdout(&preview)
    );
    assert!(
        !stdout(&preview).contains("Group 2\""),
        "{}",
        stdout(&preview)
    );
    let findings = gw_unprivileged(dir, &["findings", "--format", "json"]);
    assert!(
        stdout(&findings).contains("ownerless-groups"),
        "{}",
        stdout(&findings)
    );
    let page = std::fs::read_to_string(dir.join("out/page.html")).unwrap();
    assert!(
        page.contains("Legal hold"),
        "the page shows the state's exemptions"
    );
}

#[test]
fn a_write_to_a_read_only_database_names_the_file_and_the_fix() {
    let tenant = ReadOnlyTenant::new();
    let dir = tenant.dir.path();
    let before = std::fs::read(&tenant.db).unwrap();
    for args in [
        &["scan", "--input", "r.csv", "--format", "jsonl"][..],
        &["notify", "--discard", "1"],
    ] {
        let out = gw_unprivileged(dir, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("state/gw.db"), "{args:?}: {err}");
        assert!(
            err.contains("cannot write to it") || err.contains("is read-only"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("cannot create it"), "{args:?}: {err}");
        assert!(
            err.contains("set [state] path") || err.contains("point --state or [state] path"),
            "{args:?}: a fix: {err}"
        );
        assert_eq!(std::fs::read(&tenant.db).unwrap(), before, "{args:?}");
    }
}

#[test]
fn a_lock_that_cannot_be_taken_on_an_existing_database_is_not_a_failure_to_create_it() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "r.csv", &report(&[Group::default().csv()]));
    let scan = |dir: &Path| {
        gw(dir)
            .args([
                "scan", "--input", "r.csv", "--format", "jsonl", "--state", "gw.db", "--rules",
            ])
            .arg(bundled_rules())
            .output()
            .unwrap()
    };
    assert_eq!(scan(dir.path()).status.code(), Some(0));
    // The lock file's name taken by a folder: the lock cannot be opened.
    let lock = dir.path().join("gw.db.lock");
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir(&lock).unwrap();
    let out = scan(dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("gw.db: cannot write to it"), "{err}");
    assert!(!err.contains("cannot create it"), "{err}");
}

// ------------------------------------------------------- record bounds

/// The peak resident memory of a command run under `/usr/bin/time -v`, in
/// KiB, and its output.
fn peak_rss_kib(stderr_text: &str) -> u64 {
    stderr_text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .expect("/usr/bin/time -v reports the peak")
        .trim()
        .parse()
        .unwrap()
}

/// Scans a report streamed to standard input: a header, 150 good rows,
/// `line` written `repeat` times (never held whole), a line break, 150
/// good rows. Returns the output and the child's peak RSS in MiB.
fn scan_streamed(head: &[u8], chunk: &[u8], repeat: usize) -> (Output, u64) {
    let dir = TempDir::new().unwrap();
    let mut child = Command::new("/usr/bin/time");
    child
        .arg("-v")
        .arg(binary())
        .args([
            "scan",
            "--no-state",
            "--format",
            "jsonl",
            "--input",
            "-",
            "--rules",
        ])
        .arg(bundled_rules())
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    remove_settings(&mut child, std::env::vars_os());
    let mut child = child.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let good = Group::default().csv();
    let (head, chunk) = (head.to_vec(), chunk.to_vec());
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        stdin.write_all(format!("\u{feff}{HEADER}\r\n").as_bytes())?;
        for _ in 0..150 {
            stdin.write_all(format!("{good}\r\n").as_bytes())?;
        }
        stdin.write_all(&head)?;
        for _ in 0..repeat {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(b"\r\n")?;
        for _ in 0..150 {
            stdin.write_all(format!("{good}\r\n").as_bytes())?;
        }
        Ok(())
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let peak = peak_rss_kib(&String::from_utf8_lossy(&output.stderr)) / 1024;
    (output, peak)
}

#[test]
fn a_200_mb_line_quoted_or_not_is_one_row_error_within_a_few_hundred_mib() {
    let chunk = vec![b'x'; 1 << 20];
    for (what, head, message) in [
        (
            "plain",
            &b""[..],
            "line 152: a line longer than 1048576 bytes",
        ),
        (
            "quoted",
            &b"2026-11-25,\"open"[..],
            "line 152: a record with a quoted field that is not closed within 1048576 bytes",
        ),
    ] {
        let (out, peak_mib) = scan_streamed(head, &chunk, 200);
        let err = stderr(&out);
        eprintln!("{what} 200 MB line: peak RSS {peak_mib} MiB");
        assert_eq!(out.status.code(), Some(0), "{what}: {err}");
        assert!(err.contains(message), "{what}: {err}");
        assert!(err.contains("301 rows read"), "{what}: {err}");
        // The error quotes at most 200 bytes of the line.
        let line = err.lines().find(|l| l.contains(message)).unwrap();
        assert!(line.len() < 700, "{what}: {} bytes: {line}", line.len());
        assert!(peak_mib < 300, "{what}: peak RSS {peak_mib} MiB");
    }
}

#[test]
fn an_unclosed_quote_near_the_top_costs_one_row_and_the_rest_is_read() {
    let dir = TempDir::new().unwrap();
    let mut rows =
        vec!["2026-11-25,\"never closed,False,,,Private,5,0,,,,,,10,1,3,1,2,30".to_owned()];
    rows.extend((0..300).map(|n| {
        Group {
            name: &format!("Group {n}"),
            owner: "",
            id: &format!("{n:08x}-0000-4000-8000-000000000000"),
            ..Default::default()
        }
        .csv()
    }));
    write(dir.path(), "r.csv", &report(&rows));
    let out = gw(dir.path())
        .args([
            "scan",
            "--no-state",
            "--format",
            "jsonl",
            "--input",
            "r.csv",
            "--rules",
        ])
        .arg(bundled_rules())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("line 2: a quote that opens a field on this line is never closed"),
        "{err}"
    );
    assert!(err.contains("301 rows read"), "{err}");
    // Every ownerless group after it was read and reported.
    assert_eq!(
        findings(&out)
            .iter()
            .filter(|f| f["rule"] == "ownerless-groups")
            .count(),
        300
    );
}

#[test]
fn the_record_cap_is_configurable() {
    let dir = TempDir::new().unwrap();
    let long = format!(
        "2026-11-25,{},False,,,Private,5,0,,,,,,10,1,3,1,2,30",
        "x".repeat(5000)
    );
    let mut rows: Vec<String> = (0..200).map(|_| Group::default().csv()).collect();
    rows.insert(10, long);
    write(dir.path(), "r.csv", &report(&rows));
    let scan = |config: &str| {
        write(dir.path(), "groupwarden.toml", config);
        gw(dir.path())
            .args([
                "scan",
                "--no-state",
                "--format",
                "jsonl",
                "--input",
                "r.csv",
                "--rules",
            ])
            .arg(bundled_rules())
            .output()
            .unwrap()
    };
    let out = scan("[scan]\nmax_record_bytes = 4096\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("line 12: a line longer than 4096 bytes"),
        "{}",
        stderr(&out)
    );
    let out = scan("");
    assert!(!stderr(&out).contains("longer than"), "{}", stderr(&out));
    let out = scan("[scan]\nmax_record_bytes = 10\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[scan] max_record_bytes must be"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dev_zero_ends_with_exit_2() {
    let dir = TempDir::new().unwrap();
    let out = gw(dir.path())
        .args(["scan", "--no-state", "--input", "/dev/zero", "--rules"])
        .arg(bundled_rules())
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/zero"), "{}", stderr(&out));
}

// ------------------------------------------------------------ full disks

/// Runs groupwarden in `dir` with a 256 KiB tmpfs mounted on `dir/full`
/// in a mount namespace of its own (nothing is left mounted); `None`
/// where this machine cannot mount (not root, no user namespaces).
fn with_small_disk(dir: &Path, args: &[&str]) -> Option<Output> {
    std::fs::create_dir_all(dir.join("full")).unwrap();
    let script = "mount -t tmpfs -o size=256k tmpfs full || exit 99; exec \"$@\"";
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--map-root-user", "sh", "-c", script, "sh"])
        .arg(binary())
        .args(args)
        .current_dir(dir);
    if is_root() {
        // Root may mount without a user namespace.
        command = Command::new("unshare");
        command
            .args(["--mount", "sh", "-c", script, "sh"])
            .arg(binary())
            .args(args)
            .current_dir(dir);
    }
    remove_settings(&mut command, std::env::vars_os());
    let out = command.output().unwrap();
    if out.status.code() == Some(99)
        || (out.status.code() == Some(1) && stderr(&out).contains("unshare"))
    {
        eprintln!("skipped: cannot mount a tmpfs here: {}", stderr(&out));
        return None;
    }
    Some(out)
}

#[test]
fn a_full_disk_names_the_state_database_the_output_and_the_saved_report() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "r.csv", &synthetic_report(3000));
    let rules = bundled_rules().display().to_string();
    let cases: [(&str, Vec<&str>); 3] = [
        (
            "full/gw.db",
            vec![
                "scan",
                "--input",
                "r.csv",
                "--format",
                "jsonl",
                "--output",
                "/dev/null",
                "--state",
                "full/gw.db",
                "--rules",
                &rules,
            ],
        ),
        (
            "full/out.jsonl",
            vec![
                "scan",
                "--no-state",
                "--input",
                "r.csv",
                "--format",
                "jsonl",
                "--output",
                "full/out.jsonl",
                "--rules",
                &rules,
            ],
        ),
        (
            "--save-report full",
            vec![
                "scan",
                "--no-state",
                "--input",
                "r.csv",
                "--format",
                "jsonl",
                "--output",
                "/dev/null",
                "--save-report",
                "full",
                "--rules",
                &rules,
            ],
        ),
    ];
    for (names, args) in cases {
        let Some(out) = with_small_disk(dir.path(), &args) else {
            return;
        };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{names}: {err}");
        assert!(err.contains(names), "{names}: {err}");
        assert!(
            err.contains("No space left on device") || err.contains("disk is full"),
            "{names}: {err}"
        );
    }
}
