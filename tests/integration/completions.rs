//! Shell completions and the manual page, as a package would install them.

use std::process::Command;

use crate::util::{gw, stdout};

#[test]
fn completion_scripts_are_valid_for_their_shells() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = gw(dir.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = stdout(&out);
        assert!(
            script.contains("scan") && script.contains("--input"),
            "{shell}"
        );
    }
    // bash itself parses the bash script and completes a subcommand.
    let out = gw(dir.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let path = dir.path().join("groupwarden.bash");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(groupwarden sc) COMP_CWORD=1 && _groupwarden groupwarden sc groupwarden && echo \"${{COMPREPLY[@]}}\"",
            path.display()
        ))
        .output()
        .unwrap();
    let replies = String::from_utf8_lossy(&check.stdout);
    assert!(
        replies.contains("scan"),
        "{replies} {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn the_manual_page_is_roff_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = gw(dir.path()).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH groupwarden 1"), "{page}");
    assert!(page.contains("scan"), "{page}");
}
