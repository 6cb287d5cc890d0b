//! Everything about a configuration that can be checked without
//! contacting a server, as a list of steps (`groupwarden validate` prints
//! them; the daemon runs them before it pins a configuration).
//!
//! Each [`Step`] looks at one thing and says `Ok` (with a one-line
//! summary), lists its problems, or is skipped because an earlier step
//! failed (rules cannot be found without a readable config). Components
//! with something to validate add a step to [`STEPS`]: a function from the
//! [`Context`] (the loaded configuration, the `--rules` flag) to a
//! [`Verdict`]. The `source` step resolves `[source]` as `scan` would,
//! loading the credential (the secret's environment variable, the secret
//! or certificate file) but sending nothing. Expected next: `exemptions`
//! (well-formed, from the state store), `templates` (they render against a
//! sample finding) and the notifier's secrets. A step must never open a
//! network connection.

use std::path::PathBuf;

use crate::config::{DEFAULT_CONFIG_FILE, LoadedConfig};
use crate::engine::config::RulesConfig;
use crate::engine::rule::{RuleError, RuleSet};
use crate::engine::sandbox::build_engine;
use crate::source::config::{
    Credential, ENV_CLIENT_ID, ENV_TENANT_ID, Environment, ProcessEnvironment, ResolvedSource,
    SourceConfig,
};

/// What the steps share.
pub(crate) struct Context {
    /// `--config`, when given.
    pub config_flag: Option<PathBuf>,
    /// `--rules`, when given.
    pub rules_flag: Option<PathBuf>,
    /// The configuration, once the `config` step has read it.
    pub loaded: Option<LoadedConfig>,
}

/// The outcome of one step.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Passed; a one-line summary.
    Ok(String),
    /// Failed; each problem found.
    Problems(Vec<String>),
    /// Not run, because an earlier step failed; says which.
    Skipped(String),
}

/// One thing `validate` checks.
pub(crate) struct Step {
    /// The step's name as `validate` prints it (`config`, `rules`).
    pub name: &'static str,
    /// The check itself.
    pub run: fn(&mut Context) -> Verdict,
}

/// The checks, in order.
pub(crate) const STEPS: &[Step] = &[
    Step {
        name: "config",
        run: check_config,
    },
    Step {
        name: "rules",
        run: check_rules,
    },
    Step {
        name: "source",
        run: check_source,
    },
    Step {
        name: "directory",
        run: check_directory,
    },
    Step {
        name: "exemptions",
        run: check_exemptions,
    },
    Step {
        name: "notify",
        run: check_notify,
    },
];

/// Exemptions are well-formed: reason and expiry given, dates real,
/// selectors valid (in the config and in `[state] exemptions_file`).
fn check_exemptions(context: &mut Context) -> Verdict {
    let Some(loaded) = &context.loaded else {
        return Verdict::Skipped("needs a readable config".into());
    };
    match crate::state::recording::load_exemptions(loaded) {
        Ok(exemptions) => {
            let today = crate::state::recording::today();
            let count = |state| exemptions.in_state(today, state).count();
            use crate::state::exemptions::ExemptionState;
            Verdict::Ok(format!(
                "{} exemptions ({} active, {} expiring within 14 days, {} expired)",
                exemptions.all.len(),
                count(ExemptionState::Active),
                count(ExemptionState::Expiring),
                count(ExemptionState::Expired)
            ))
        }
        Err(error) => Verdict::Problems(vec![error.to_string()]),
    }
}

/// Channels are well-formed, every template renders against a sample
/// digest, and the environment variables holding their secrets are set.
fn check_notify(context: &mut Context) -> Verdict {
    let Some(loaded) = &context.loaded else {
        return Verdict::Skipped("needs a readable config".into());
    };
    let channels = match crate::notify::validate(loaded) {
        Ok(channels) => channels,
        Err(invalid) => {
            return Verdict::Problems(invalid.to_string().lines().map(str::to_owned).collect());
        }
    };
    let mut problems = Vec::new();
    for channel in &channels {
        let config = channel.config();
        for (key, variable) in [
            ("password_env", &config.password_env),
            ("secret_env", &config.secret_env),
            ("url_env", &config.url_env),
        ] {
            if let Some(variable) = variable
                && ProcessEnvironment.var(variable).is_none()
            {
                problems.push(format!(
                    "channel `{}`: environment variable {variable} (its `{key}`) is not set",
                    channel.name()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Verdict::Problems(problems);
    }
    Verdict::Ok(match channels.len() {
        0 => "no [[notify]] channels".to_owned(),
        n => format!("{n} channels; their templates render (nothing sent)"),
    })
}

fn check_config(context: &mut Context) -> Verdict {
    match LoadedConfig::load(context.config_flag.as_deref()) {
        Ok(loaded) => {
            let summary = match &loaded.path {
                Some(path) => path.display().to_string(),
                None => {
                    format!("no config file (no --config, no ./{DEFAULT_CONFIG_FILE}): defaults")
                }
            };
            context.loaded = Some(loaded);
            Verdict::Ok(summary)
        }
        Err(error) => Verdict::Problems(vec![error.to_string()]),
    }
}

fn check_rules(context: &mut Context) -> Verdict {
    let Some(loaded) = &context.loaded else {
        return Verdict::Skipped("needs a readable config".into());
    };
    let dir = super::rules::rules_to_read(context.rules_flag.as_deref(), loaded);
    let config = &loaded.config.rules;
    // Compile with no config first, then check each config entry on its
    // own, so one run lists every problem rather than the first.
    let compile_only = RulesConfig {
        max_operations: config.max_operations,
        ..Default::default()
    };
    let engine = build_engine(&config.limits());
    let rules = match RuleSet::load(&engine, &dir, &compile_only) {
        Ok(rules) => rules,
        Err(RuleError::Compile(diagnostics)) => {
            return Verdict::Problems(diagnostics.iter().map(|d| d.to_string()).collect());
        }
        Err(error) => return Verdict::Problems(vec![error.to_string()]),
    };
    let mut problems = config_problems(&rules, config);
    // Each tenant's own rule parameters and disabled rules, laid over
    // the shared ones as its scan lays them.
    for tenant in &loaded.config.tenants {
        match crate::tenants::resolve(loaded, &tenant.name, None) {
            Ok(resolved) => problems.extend(
                config_problems(&rules, &resolved.config.rules)
                    .into_iter()
                    .filter(|p| !problems.contains(p))
                    .map(|p| format!("tenant {}: {p}", tenant.name))
                    .collect::<Vec<_>>(),
            ),
            Err(error) => problems.push(format!("tenant {}: {error}", tenant.name)),
        }
    }
    if !problems.is_empty() {
        return Verdict::Problems(problems);
    }
    let disabled = config.disabled.len();
    Verdict::Ok(format!(
        "{} rules compiled in {} ({disabled} disabled)",
        rules.rules.len(),
        dir.display()
    ))
}

/// Every `rules.disabled` entry and `rules.params` value that does not fit
/// the rules.
fn config_problems(rules: &RuleSet, config: &RulesConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |key: String, single: RulesConfig| {
        if let Err(error) = RuleSet::from_rules(rules.rules.clone(), &single) {
            problems.push(match error {
                RuleError::Config { message, .. } => format!("config key `{key}`: {message}"),
                other => other.to_string(),
            });
        }
    };
    for (index, id) in config.disabled.iter().enumerate() {
        check(
            format!("rules.disabled[{index}]"),
            RulesConfig {
                disabled: vec![id.clone()],
                ..Default::default()
            },
        );
    }
    for (id, table) in &config.params {
        if table.is_empty() {
            check(
                format!("rules.params.{id}"),
                RulesConfig {
                    params: [(id.clone(), table.clone())].into(),
                    ..Default::default()
                },
            );
        }
        for (name, value) in table {
            let single: toml::Table = [(name.clone(), value.clone())].into_iter().collect();
            check(
                format!("rules.params.{id}.{name}"),
                RulesConfig {
                    params: [(id.clone(), single)].into(),
                    ..Default::default()
                },
            );
        }
    }
    problems
}

/// `[directory]`: when on, the directory needs Graph credentials, from a
/// `[source]` of type graph (or the Azure variables without one).
fn check_directory(context: &mut Context) -> Verdict {
    let Some(loaded) = &context.loaded else {
        return Verdict::Skipped("needs a readable config".into());
    };
    let directory = loaded.config.directory;
    if !directory.enabled {
        return Verdict::Ok("off".into());
    }
    let graph = match &loaded.config.source {
        Some(source) => source.kind == crate::source::config::SourceKind::Graph,
        None => [ENV_TENANT_ID, ENV_CLIENT_ID]
            .iter()
            .all(|name| ProcessEnvironment.var(name).is_some()),
    };
    if !graph {
        return Verdict::Problems(vec![
            "[directory] enabled: the directory comes from Microsoft Graph, but there are no Graph credentials: \
             set [source] type = \"graph\" with the app's credentials (the app needs Group.Read.All)"
                .into(),
        ]);
    }
    Verdict::Ok(format!(
        "on: Microsoft 365 groups from Graph with [source]'s credentials (Group.Read.All), cached for {}",
        directory.max_age
    ))
}

/// `[source]` resolved as `scan` resolves it: every key checked and the
/// credential loaded from its environment variable or file. Nothing is
/// sent; the secret itself is never shown.
fn check_source(context: &mut Context) -> Verdict {
    let Some(loaded) = &context.loaded else {
        return Verdict::Skipped("needs a readable config".into());
    };
    if !loaded.config.tenants.is_empty() {
        return check_tenant_sources(loaded);
    }
    source_verdict(loaded)
}

/// With `[[tenants]]`: each tenant's `[source]`, as its scan resolves it.
fn check_tenant_sources(loaded: &LoadedConfig) -> Verdict {
    let mut summaries = Vec::new();
    let mut problems = Vec::new();
    for tenant in &loaded.config.tenants {
        let verdict = match crate::tenants::resolve(loaded, &tenant.name, None) {
            Ok(resolved) => source_verdict(&resolved),
            Err(error) => Verdict::Problems(vec![error]),
        };
        match verdict {
            Verdict::Ok(summary) => summaries.push(format!("{}: {summary}", tenant.name)),
            Verdict::Problems(found) => problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("tenant {}: {p}", tenant.name)),
            ),
            Verdict::Skipped(why) => summaries.push(format!("{}: {why}", tenant.name)),
        }
    }
    match problems.is_empty() {
        true => Verdict::Ok(format!(
            "{} tenants; {}",
            summaries.len(),
            summaries.join("; ")
        )),
        false => Verdict::Problems(problems),
    }
}

/// One configuration's `[source]`, resolved.
fn source_verdict(loaded: &LoadedConfig) -> Verdict {
    let from_environment = SourceConfig::default();
    let source = match &loaded.config.source {
        Some(source) => source,
        // As `scan` does: the Azure variables alone name an app to fetch with.
        None if [ENV_TENANT_ID, ENV_CLIENT_ID]
            .iter()
            .all(|name| ProcessEnvironment.var(name).is_some()) =>
        {
            &from_environment
        }
        None => return Verdict::Ok("no [source]: reports come from --input".into()),
    };
    match source.resolve(None, &ProcessEnvironment, &|path| loaded.resolve(path)) {
        Ok(ResolvedSource::File(path)) if path.is_file() => {
            Verdict::Ok(format!("file {}", path.display()))
        }
        Ok(ResolvedSource::File(path)) => {
            Verdict::Ok(format!("file {} (not there yet)", path.display()))
        }
        Ok(ResolvedSource::Graph(settings)) => {
            let credential = match settings.credential {
                Credential::Secret(_) => "client secret",
                Credential::Certificate(_) => "certificate",
                Credential::FederatedToken(_) => "federated token file",
                Credential::ManagedIdentity(identity) => {
                    return Verdict::Ok(format!(
                        "Microsoft Graph, signing in as {identity} (not contacted)"
                    ));
                }
            };
            Verdict::Ok(format!(
                "Microsoft Graph, tenant {}, app {}, {credential} loaded (not contacted)",
                settings.tenant_id, settings.client_id
            ))
        }
        Err(error) => Verdict::Problems(vec![error.to_string()]),
    }
}
