//! Helpers shared by the integration tests: the one launcher of the real
//! binary, temp folders, and small report builders.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The v1.0 header, as Microsoft writes it today.
pub const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period";

/// The repository root (for bundled rules and examples).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The rules that ship with groupwarden.
pub fn bundled_rules() -> PathBuf {
    root().join("rules")
}

/// The binary Cargo built for these tests.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_groupwarden"))
}

/// The binary, run in `dir` so no stray `groupwarden.toml` is picked up,
/// with none of the test machine's `GROUPWARDEN_*` or `AZURE_*` variables
/// (see [`gw_std`]).
pub fn gw(dir: &Path) -> Command {
    Command::from_std(gw_std(dir))
}

/// [`gw`] as a std command, for tests that spawn the binary and read it
/// while it runs. A test that needs a variable sets it on the command:
/// that comes after the removal, so it wins.
pub fn gw_std(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary());
    command.current_dir(dir);
    remove_settings(&mut command, std::env::vars_os());
    command
}

/// Removes from `command` every variable of `environment` that the binary
/// would read as a setting: a machine with `AZURE_TENANT_ID` or
/// `GROUPWARDEN_CONFIG` exported must not change what a test sees.
pub fn remove_settings(
    command: &mut std::process::Command,
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) {
    for (name, _) in environment {
        if is_setting(&name) {
            command.env_remove(name);
        }
    }
}

/// Whether a variable's name is one of the binary's settings (or the Azure
/// SDK convention it follows). Bytes, not UTF-8: a name need not be valid.
fn is_setting(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    // STATE_DIRECTORY: systemd's, read for where the state goes.
    name.starts_with(b"GROUPWARDEN_") || name.starts_with(b"AZURE_") || name == b"STATE_DIRECTORY"
}

/// Writes `content` to `dir/name`, creating folders on the way.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, content).unwrap();
    path
}

/// A v1.0 report row: everything blank/neutral except what is given.
pub struct Group<'a> {
    pub name: &'a str,
    pub deleted: bool,
    pub owner: &'a str,
    pub last_activity: &'a str,
    pub members: &'a str,
    pub external: &'a str,
    pub mailbox_bytes: &'a str,
    pub site_bytes: &'a str,
    pub id: &'a str,
}

impl Default for Group<'_> {
    fn default() -> Self {
        Group {
            name: "Team",
            deleted: false,
            owner: "owner@contoso.com",
            last_activity: "2026-11-20",
            members: "5",
            external: "0",
            mailbox_bytes: "1000",
            site_bytes: "2000",
            id: "00000000-0000-0000-0000-00000000000a",
        }
    }
}

impl Group<'_> {
    /// The row as the report has it.
    pub fn csv(&self) -> String {
        let name = if self.name.contains([',', '"', '\n']) {
            format!("\"{}\"", self.name.replace('"', "\"\""))
        } else {
            self.name.to_owned()
        };
        format!(
            "2026-11-25,{name},{},{},{},Private,{},{},,,,,,10,{},3,{},{},30",
            if self.deleted { "True" } else { "False" },
            self.owner,
            self.last_activity,
            self.members,
            self.external,
            self.mailbox_bytes,
            self.site_bytes,
            self.id
        )
    }
}

/// A report file with a BOM, the v1.0 header and CRLF line ends.
pub fn report(rows: &[String]) -> String {
    let mut text = format!("\u{feff}{HEADER}\r\n");
    for row in rows {
        text.push_str(row);
        text.push_str("\r\n");
    }
    text
}

/// The output's stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The output's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// JSON lines output parsed.
pub fn findings(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A deterministic synthetic report of `rows` groups, with every rule
/// firing somewhere and a bad row every 997 rows.
pub fn synthetic_report(rows: usize) -> String {
    let mut lines = Vec::with_capacity(rows);
    for i in 0..rows {
        if i % 997 == 500 {
            lines.push(format!(
                "2026-11-25,Bad {i},False,,,Private,N/A,0,,,,,,1,1,1,1,id-{i},30"
            ));
            continue;
        }
        let last = match i % 7 {
            0 => String::new(),
            k => format!("2026-{:02}-{:02}", 5 + k, 1 + (i % 25)),
        };
        let id = format!("{i:08x}-0000-4000-8000-000000000000");
        let group = Group {
            name: &format!("Group {i}"),
            deleted: i % 31 == 0,
            owner: if i % 13 == 0 { "" } else { "o@contoso.com" },
            last_activity: &last,
            members: &(i % 40).to_string(),
            external: &(i % 17).to_string(),
            mailbox_bytes: if i % 3 == 0 { "0" } else { "5000" },
            site_bytes: if i % 5 == 0 { "0" } else { "7000" },
            id: &id,
        };
        lines.push(group.csv());
    }
    report(&lines)
}
