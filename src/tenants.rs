//! Many tenants from one installation (`[[tenants]]`): each tenant's
//! configuration resolved from the shared one, its own state file, the
//! selection of tenants a command runs on (`--tenant`, `--all-tenants`,
//! `--shard I/N`) and the bounded fan-out that scans them.
//!
//! A tenant is the shared configuration with its `[[tenants]]` table laid
//! over it: `[source]` keys it sets replace the shared ones (the rest,
//! such as a multi-tenant app's credentials, are inherited), its rule
//! parameters and disabled rules add to `[rules]`, its exemptions to the
//! shared ones, and `notify` picks which `[[notify]]` channels its digests
//! go to. Each tenant records to its own SQLite file, so a finding in one
//! tenant can never resolve, exempt or announce anything in another.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Config, LoadedConfig};
use crate::state::config::ExemptionConfig;

/// Keys of a `[[tenants]]` table that are not `[source]` keys.
const OWN_KEYS: [&str; 4] = ["name", "rules", "notify", "exemptions"];

/// One `[[tenants]]` table as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct TenantConfig {
    /// The tenant's short name: in file names, `--tenant`, outputs and
    /// metrics. Letters, digits, `-`, `_` and `.`, at most 64.
    pub name: String,
    /// `[source]` keys set for this tenant; the others are inherited.
    pub source: toml::Table,
    /// Rule parameters and disabled rules added to `[rules]`.
    pub rules: TenantRules,
    /// The `[[notify]]` channels (by name) this tenant's digests go to;
    /// `None`: every channel.
    pub notify: Option<Vec<String>>,
    /// Exemptions of this tenant, added to the shared ones.
    pub exemptions: Vec<ExemptionConfig>,
}

/// A tenant's `rules` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRules {
    /// Rules not run for this tenant (besides `[rules] disabled`).
    #[serde(default)]
    pub disabled: Vec<String>,
    /// Rule parameters for this tenant, laid over `[rules.params]`.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Table>,
}

impl TryFrom<toml::Table> for TenantConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) => name,
            Some(other) => return Err(format!("`name` must be a string, found {other}")),
            None => return Err("every [[tenants]] needs a `name`".to_owned()),
        };
        check_name(&name)?;
        let field = |table: &mut toml::Table, key: &str| table.remove(key);
        let rules = match field(&mut table, "rules") {
            Some(value) => value
                .try_into::<TenantRules>()
                .map_err(|e| format!("tenant `{name}`: rules: {}", e.message()))?,
            None => TenantRules::default(),
        };
        let notify = match field(&mut table, "notify") {
            Some(value) => Some(value.try_into::<Vec<String>>().map_err(|_| {
                format!("tenant `{name}`: notify must be a list of [[notify]] channel names")
            })?),
            None => None,
        };
        let exemptions = match field(&mut table, "exemptions") {
            Some(value) => value
                .try_into::<Vec<ExemptionConfig>>()
                .map_err(|e| format!("tenant `{name}`: exemptions: {}", e.message()))?,
            None => Vec::new(),
        };
        debug_assert!(OWN_KEYS.iter().all(|key| !table.contains_key(*key)));
        Ok(TenantConfig {
            name,
            source: table,
            rules,
            notify,
            exemptions,
        })
    }
}

/// `[tenants_defaults]`: how many tenants are scanned at once.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TenantsDefaults {
    /// Tenants scanned at the same time (each on its own threads).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for TenantsDefaults {
    fn default() -> Self {
        TenantsDefaults {
            concurrency: default_concurrency(),
        }
    }
}

fn default_concurrency() -> usize {
    4
}

/// A tenant name is used in file names: keep it to a safe alphabet.
fn check_name(name: &str) -> Result<(), String> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(safe) {
        return Err(format!(
            "tenant name `{name}` must be 1 to 64 letters, digits, `-`, `_` or `.` (not starting with `.`): it is part of file names"
        ));
    }
    Ok(())
}

/// Checks the `[[tenants]]` of a parsed file as a whole: names unique,
/// each tenant's `[source]` complete once inherited, channels that exist.
/// `raw` is the file as a TOML table (for `[source]` as written). Errors
/// name the key, as `tenants[2].tenant_id` (counting from 1).
pub(crate) fn check(config: &Config, raw: &toml::Table) -> Result<(), String> {
    if config.tenants_defaults.concurrency == 0 {
        return Err("[tenants_defaults] concurrency must be at least 1".to_owned());
    }
    let mut names = HashSet::new();
    let mut tenant_ids: BTreeMap<String, usize> = BTreeMap::new();
    let shared_source = raw.get("source").and_then(toml::Value::as_table);
    for (index, tenant) in config.tenants.iter().enumerate() {
        let at = index + 1;
        if !names.insert(tenant.name.to_lowercase()) {
            return Err(format!(
                "tenants[{at}].name: `{}` names two tenants (names must differ, in any case)",
                tenant.name
            ));
        }
        let source = merged_source(shared_source, tenant)
            .map_err(|message| format!("tenants[{at}] (`{}`).{message}", tenant.name))?;
        if let Some(id) = source.tenant_id.as_deref().map(str::to_lowercase)
            && let Some(first) = tenant_ids.insert(id.clone(), at)
        {
            return Err(format!(
                "tenants[{at}].tenant_id: `{id}` is also tenants[{first}]'s: set each tenant's own tenant_id (a shared one would scan one tenant twice)"
            ));
        }
        for (position, channel) in tenant.notify.iter().flatten().enumerate() {
            if !config.notify.iter().any(|c| c.name() == channel) {
                let known: Vec<&str> = config.notify.iter().map(|c| c.name()).collect();
                return Err(format!(
                    "tenants[{at}].notify[{}]: no [[notify]] channel is named `{channel}` (channels: {})",
                    position + 1,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
    }
    Ok(())
}

/// The shared `[source]` with the tenant's keys laid over it; an error
/// starts with the key at fault.
fn merged_source(
    shared: Option<&toml::Table>,
    tenant: &TenantConfig,
) -> Result<crate::source::config::SourceConfig, String> {
    let mut table = shared.cloned().unwrap_or_default();
    for (key, value) in &tenant.source {
        table.insert(key.clone(), value.clone());
    }
    // The shared display name belongs to the shared tenant; a tenant
    // without its own is called by its name.
    if !tenant.source.contains_key("tenant_name") {
        table.insert(
            "tenant_name".to_owned(),
            toml::Value::String(tenant.name.clone()),
        );
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|error: toml::de::Error| {
            let message = error.message().to_owned();
            let quoted = |key: &&String| message.contains(&format!("`{key}`"));
            match tenant
                .source
                .keys()
                .filter(quoted)
                .max_by_key(|key| key.len())
            {
                Some(key) => format!("{key}: {message}"),
                None => format!("source: {message}"),
            }
        })
}

/// The configuration a tenant's scan runs with: `name`'s table laid over
/// the shared configuration, its state file set (from `state_flag`, the
/// `--state` given, else `[state] path`, as [`tenant_file`] places it),
/// and no `[[tenants]]` left in it.
pub(crate) fn resolve(
    loaded: &LoadedConfig,
    name: &str,
    state_flag: Option<&Path>,
) -> Result<LoadedConfig, String> {
    let config = &loaded.config;
    let tenant = find(config, name)?;
    let mut resolved: Config = config.clone();
    resolved.source = Some(merged_source(config.raw_source.as_ref(), tenant)?);
    resolved
        .rules
        .disabled
        .extend(tenant.rules.disabled.clone());
    for (rule, params) in &tenant.rules.params {
        let shared = resolved.rules.params.entry(rule.clone()).or_default();
        for (key, value) in params {
            shared.insert(key.clone(), value.clone());
        }
    }
    resolved.exemptions.extend(tenant.exemptions.clone());
    if let Some(channels) = &tenant.notify {
        resolved
            .notify
            .retain(|c| channels.iter().any(|n| n == c.name()));
    }
    let base = crate::state::recording::state_path(state_flag, loaded);
    resolved.state.path = Some(absolute(tenant_file(&base, &tenant.name)));
    resolved.tenant = Some(tenant.name.clone());
    resolved.tenants = Vec::new();
    Ok(LoadedConfig {
        config: resolved,
        path: loaded.path.clone(),
    })
}

fn find<'a>(config: &'a Config, name: &str) -> Result<&'a TenantConfig, String> {
    config
        .tenants
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
            if known.is_empty() {
                format!("--tenant {name}: the config has no [[tenants]]")
            } else {
                format!(
                    "--tenant {name}: no [[tenants]] is named `{name}` (tenants: {})",
                    known.join(", ")
                )
            }
        })
}

fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|dir| dir.join(&path))
        .unwrap_or(path)
}

/// A tenant's own file (its state database; the daemon's findings
/// document), from where the single-tenant one would be:
/// `{tenant}` in the path is replaced by the name; a folder (existing, or
/// written with a trailing `/`) gets `groupwarden-<tenant>.db`; a file
/// gets `-<tenant>` before its extension (`state.db` →
/// `state-<tenant>.db`).
pub fn tenant_file(base: &Path, tenant: &str) -> PathBuf {
    let text = base.to_string_lossy();
    if text.contains("{tenant}") {
        return PathBuf::from(text.replace("{tenant}", tenant));
    }
    if text.ends_with('/') || base.is_dir() {
        return base.join(format!("groupwarden-{tenant}.db"));
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "groupwarden".to_owned());
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{tenant}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{tenant}"),
    };
    base.with_file_name(name)
}

/// One part of a split of the tenants: the `I`th of `N` (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which part, from 1 to `count`.
    pub index: u64,
    /// How many parts.
    pub count: u64,
}

/// The variable a Kubernetes indexed Job sets in each pod (from 0).
pub const JOB_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

impl Shard {
    /// Parses `I/N` (1 ≤ I ≤ N), or `auto/N` for `I` = the Kubernetes
    /// indexed Job's `JOB_COMPLETION_INDEX` + 1.
    pub fn parse(text: &str) -> Result<Shard, String> {
        Self::parse_with(text, &|name| std::env::var(name).ok())
    }

    fn parse_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let usage = || {
            format!(
                "`{text}` is not a shard: write I/N (such as 1/4, from 1 to N) or auto/N (from ${JOB_INDEX_ENV})"
            )
        };
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let count: u64 = count.trim().parse().map_err(|_| usage())?;
        let index: u64 = if index.trim() == "auto" {
            let value = env(JOB_INDEX_ENV).ok_or_else(|| {
                format!("--shard {text}: ${JOB_INDEX_ENV} is not set (it is set in the pods of a Kubernetes indexed Job)")
            })?;
            value.trim().parse::<u64>().map_err(|_| {
                format!("--shard {text}: ${JOB_INDEX_ENV} = `{value}` is not a number")
            })? + 1
        } else {
            index.trim().parse().map_err(|_| usage())?
        };
        if count == 0 || index == 0 || index > count {
            return Err(format!(
                "--shard {text}: the part must be from 1 to N, and N at least 1 (got part {index} of {count})"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the tenant keyed `key` (its tenant id, else its name)
    /// falls in this part: a SHA-256 of the key, so the split is the same
    /// on every machine and release, and a tenant added or removed moves
    /// no other.
    pub fn contains(&self, key: &str) -> bool {
        shard_of(key, self.count) == self.index
    }
}

/// The part (1 to `count`) the tenant keyed `key` falls in.
pub fn shard_of(key: &str, count: u64) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.trim().to_lowercase().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % count + 1
}

/// The key a tenant is sharded by: its tenant id, else its name.
fn shard_key(config: &Config, tenant: &TenantConfig) -> String {
    merged_source(config.raw_source.as_ref(), tenant)
        .ok()
        .and_then(|source| source.tenant_id)
        .unwrap_or_else(|| tenant.name.clone())
}

/// Which tenants a command runs on.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// `--tenant` (repeatable): these by name.
    pub names: Vec<String>,
    /// `--all-tenants`.
    pub all: bool,
    /// `--shard I/N`: only this part of those.
    pub shard: Option<Shard>,
}

impl Selection {
    /// Whether the command named tenants at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.all && self.shard.is_none()
    }
}

/// The tenants `selection` picks, in config order; `None` for a
/// single-tenant run (no `[[tenants]]` and no tenant asked for).
pub(crate) fn select(
    config: &Config,
    selection: &Selection,
) -> Result<Option<Vec<String>>, String> {
    if config.tenants.is_empty() {
        if selection.is_empty() {
            return Ok(None);
        }
        return Err(
            "--tenant, --all-tenants and --shard need [[tenants]] in the config".to_owned(),
        );
    }
    if selection.names.is_empty() && !selection.all {
        let names: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "the config has [[tenants]] ({}): pass --tenant NAME (scan also takes --all-tenants or --shard)",
            names.join(", ")
        ));
    }
    let mut chosen = Vec::new();
    for tenant in &config.tenants {
        let named = selection.all || selection.names.contains(&tenant.name);
        let in_shard = selection
            .shard
            .is_none_or(|shard| shard.contains(&shard_key(config, tenant)));
        if named && in_shard {
            chosen.push(tenant.name.clone());
        }
    }
    for name in &selection.names {
        find(config, name)?;
    }
    Ok(Some(chosen))
}

/// The single tenant a reading command (`findings`, `history`, `trend`,
/// `exemptions`) looks at: its configuration (with its state file), or
/// the configuration as it is without `[[tenants]]`.
pub(crate) fn for_reading(
    loaded: LoadedConfig,
    tenant: Option<&str>,
    state_flag: Option<&Path>,
) -> Result<LoadedConfig, String> {
    match tenant {
        Some(name) => resolve(&loaded, name, state_flag),
        None if loaded.config.tenants.is_empty() => Ok(loaded),
        None => {
            let names: Vec<&str> = loaded
                .config
                .tenants
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            Err(format!(
                "the config has [[tenants]] ({}): pass --tenant NAME to say whose state to read",
                names.join(", ")
            ))
        }
    }
}

/// Runs `work` on each of `tenants`, at most `concurrency` at a time, and
/// hands back each tenant's result in the order given. One tenant's
/// failure (or panic) never stops the others.
pub(crate) fn fan_out<T: Send>(
    tenants: &[String],
    concurrency: usize,
    work: &(dyn Fn(&str) -> T + Sync),
) -> Vec<std::thread::Result<T>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<std::thread::Result<T>>>> = tenants
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, tenants.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = tenants.get(at) else { break };
                    // Every log line of the tenant's scan names it.
                    let _span = tracing::info_span!("tenant", tenant = %name).entered();
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(name)));
                    *results[at].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every tenant was run")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config, String> {
        crate::config::parse(text)
    }

    const TWO: &str = r#"
[source]
type = "graph"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "GW_SECRET"

[[notify]]
name = "a-owners"
type = "webhook"
url = "http://127.0.0.1:1/a"

[[notify]]
name = "msp"
type = "webhook"
url = "http://127.0.0.1:1/msp"

[rules.params.inactive-groups]
days = 90

[[tenants]]
name = "customer-a"
tenant_id = "a.onmicrosoft.com"
notify = ["a-owners", "msp"]
rules.params.inactive-groups.days = 30
rules.disabled = ["ownerless-groups"]

[[tenants]]
name = "customer-b"
tenant_id = "b.onmicrosoft.com"
tenant_name = "Customer B Ltd"
"#;

    #[test]
    fn a_tenant_inherits_and_overrides() {
        let loaded = LoadedConfig {
            config: config(TWO).unwrap(),
            path: Some(PathBuf::from("/etc/gw/groupwarden.toml")),
        };
        let a = resolve(&loaded, "customer-a", None).unwrap().config;
        let source = a.source.as_ref().unwrap();
        assert_eq!(source.tenant_id.as_deref(), Some("a.onmicrosoft.com"));
        assert_eq!(
            source.client_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(source.tenant_name.as_deref(), Some("customer-a"));
        assert_eq!(
            a.rules.params["inactive-groups"]["days"].as_integer(),
            Some(30)
        );
        assert_eq!(a.rules.disabled, ["ownerless-groups"]);
        assert_eq!(a.notify.len(), 2);
        assert_eq!(
            a.state.path.as_deref(),
            Some(Path::new("/etc/gw/groupwarden-customer-a.db"))
        );
        assert!(a.tenants.is_empty());
        let b = resolve(&loaded, "customer-b", None).unwrap().config;
        assert_eq!(
            b.source.unwrap().tenant_name.as_deref(),
            Some("Customer B Ltd")
        );
        assert_eq!(
            b.rules.params["inactive-groups"]["days"].as_integer(),
            Some(90)
        );
        assert!(b.rules.disabled.is_empty());
        assert_eq!(b.notify.len(), 2, "no `notify`: every channel");
    }

    #[test]
    fn errors_name_the_key() {
        let unknown = TWO.replace("tenant_name = \"Customer B Ltd\"", "tenant_idd = \"x\"");
        let err = config(&unknown).unwrap_err();
        assert!(
            err.contains("tenants[2] (`customer-b`).tenant_idd"),
            "{err}"
        );
        let twice = TWO.replace("b.onmicrosoft.com", "A.onmicrosoft.com");
        let err = config(&twice).unwrap_err();
        assert!(err.contains("tenants[2].tenant_id"), "{err}");
        let channel = TWO.replace("\"a-owners\", \"msp\"", "\"a-owners\", \"msq\"");
        let err = config(&channel).unwrap_err();
        assert!(err.contains("tenants[1].notify[2]"), "{err}");
        assert!(err.contains("`msq`"), "{err}");
        let same = TWO.replace("customer-b", "Customer-A");
        let err = config(&same).unwrap_err();
        assert!(err.contains("tenants[2].name"), "{err}");
        let unsafe_name = TWO.replace("customer-b", "../b");
        let err = config(&unsafe_name).unwrap_err();
        assert!(err.contains("part of file names"), "{err}");
        let nameless = TWO.replace("name = \"customer-b\"", "");
        assert!(config(&nameless).unwrap_err().contains("needs a `name`"));
    }

    #[test]
    fn state_files_sit_where_the_single_database_would() {
        let p = |s: &str| tenant_file(Path::new(s), "acme");
        assert_eq!(
            p("/var/lib/gw/state.db"),
            Path::new("/var/lib/gw/state-acme.db")
        );
        assert_eq!(
            p("/var/lib/gw/"),
            Path::new("/var/lib/gw/groupwarden-acme.db")
        );
        assert_eq!(p("/s/{tenant}/gw.db"), Path::new("/s/acme/gw.db"));
        assert_eq!(p("gw"), Path::new("gw-acme"));
    }

    #[test]
    fn a_selection_needs_a_flag_when_tenants_exist() {
        let config = config(TWO).unwrap();
        let err = select(&config, &Selection::default()).unwrap_err();
        assert!(
            err.contains("pass --tenant NAME (scan also takes --all-tenants"),
            "{err}"
        );
        let all = Selection {
            all: true,
            ..Selection::default()
        };
        assert_eq!(
            select(&config, &all).unwrap().unwrap(),
            ["customer-a", "customer-b"]
        );
        let unknown = Selection {
            names: vec!["customer-c".into()],
            ..Selection::default()
        };
        assert!(
            select(&config, &unknown)
                .unwrap_err()
                .contains("customer-c")
        );
        let single = Config::default();
        assert_eq!(select(&single, &Selection::default()).unwrap(), None);
    }

    #[test]
    fn shards_are_disjoint_complete_and_stable() {
        let names: Vec<String> = (0..1000).map(|i| format!("tenant-{i}")).collect();
        for count in [1, 2, 3, 7, 16] {
            let mut seen = vec![0u32; names.len()];
            let mut sizes = Vec::new();
            for index in 1..=count {
                let shard = Shard { index, count };
                let mut size = 0;
                for (at, name) in names.iter().enumerate() {
                    if shard.contains(name) {
                        seen[at] += 1;
                        size += 1;
                    }
                }
                sizes.push(size);
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "every tenant in exactly one of {count}"
            );
            let even = 1000 / count as usize;
            assert!(
                sizes.iter().all(|&s| s > even / 2 && s < even * 2),
                "{count} shards: {sizes:?}"
            );
        }
        // Stable across releases: the split is part of deployments.
        assert_eq!(
            shard_of("contoso.onmicrosoft.com", 4),
            shard_of("CONTOSO.onmicrosoft.com", 4)
        );
        let pinned: Vec<u64> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| shard_of(k, 8))
            .collect();
        assert_eq!(pinned, PINNED_SHARDS);
    }

    /// `shard_of` of "a".."d" over 8 parts, as first released.
    const PINNED_SHARDS: [u64; 4] = [3, 3, 3, 2];

    #[test]
    fn shards_parse() {
        let env = |v: Option<&'static str>| move |_: &str| v.map(str::to_owned);
        assert_eq!(
            Shard::parse_with("2/4", &env(None)).unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert_eq!(
            Shard::parse_with("auto/4", &env(Some("3"))).unwrap(),
            Shard { index: 4, count: 4 }
        );
        assert!(Shard::parse_with("auto/4", &env(Some("4"))).is_err());
        assert!(
            Shard::parse_with("auto/4", &env(None))
                .unwrap_err()
                .contains(JOB_INDEX_ENV)
        );
        assert!(Shard::parse_with("0/4", &env(None)).is_err());
        assert!(Shard::parse_with("5/4", &env(None)).is_err());
        assert!(Shard::parse_with("x", &env(None)).is_err());
    }

    #[test]
    fn fan_out_keeps_going_after_a_failure() {
        let names: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let running = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let results = fan_out(&names, 3, &|name| {
            use std::sync::atomic::Ordering::SeqCst;
            let now = running.fetch_add(1, SeqCst) + 1;
            most.fetch_max(now, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            running.fetch_sub(1, SeqCst);
            if name == "4" {
                panic!("tenant 4 broke");
            }
            name.parse::<u32>().unwrap()
        });
        assert_eq!(results.len(), 10);
        assert!(results[4].is_err());
        assert_eq!(*results[9].as_ref().unwrap(), 9);
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 3);
    }
}
