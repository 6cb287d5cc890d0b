//! The `[source]` section: where the report comes from.
//!
//! ```toml
//! [source]
//! type = "graph"
//! tenant_id = "contoso.onmicrosoft.com"
//! client_id = "11111111-2222-3333-4444-555555555555"
//! client_secret_env = "GROUPWARDEN_CLIENT_SECRET"
//! period = "D30"
//! ```
//!
//! [`SourceConfig::resolve`] checks the section as a whole (which keys go
//! with which `type`, one credential, the environment fallbacks) and loads
//! the credential, so a mistake is reported before any request is made.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use jiff::civil::Date;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use super::assertion::CertificateCredential;
use super::cloud::Cloud;
use super::error::SourceError;
use super::managed_identity::ManagedIdentity;
use crate::duration::ConfigDuration;
use crate::retry::RetryPolicy;

/// Environment variables read when the config leaves a credential out,
/// as the Azure SDKs read them.
pub(crate) const ENV_TENANT_ID: &str = "AZURE_TENANT_ID";
/// The app registration's client (application) id.
pub(crate) const ENV_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// The app's client secret.
pub(crate) const ENV_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
/// A PEM file with the app's certificate and private key.
pub(crate) const ENV_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
/// Set by Kubernetes workload identity (and by hand elsewhere).
pub(crate) const ENV_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// Where the report comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `"file"` (a CSV exported earlier; set `path`) or `"graph"` (fetch
    /// it from Microsoft Graph with an app registration).
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// `type = "file"`: the report CSV, relative to the config file's folder.
    pub path: Option<PathBuf>,
    /// The tenant: its GUID or a verified domain such as
    /// `contoso.onmicrosoft.com`. Default: `$AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// The tenant's name as people know it (`Contoso`): what email
    /// subjects and bodies call the tenant. Either source type. Default:
    /// `tenant_id` when it is a domain, else the domain of the owners'
    /// addresses.
    pub tenant_name: Option<String>,
    /// The app registration's Application (client) ID. Default: `$AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// The name of the environment variable that holds the client secret.
    pub client_secret_env: Option<String>,
    /// A file holding the client secret (a mounted secret, for example).
    /// Surrounding whitespace is ignored.
    pub client_secret_file: Option<PathBuf>,
    /// A PEM file with the app's certificate and its unencrypted private
    /// key (RSA), used instead of a secret. Default, when no secret is set
    /// anywhere: `$AZURE_CLIENT_CERTIFICATE_PATH`.
    pub certificate_file: Option<PathBuf>,
    /// A file holding a federated identity token (a JWT issued by
    /// Kubernetes, GitHub Actions or another identity provider the app
    /// registration trusts), sent instead of a secret: workload identity
    /// federation. Read again for every sign-in, as the issuer replaces it.
    /// Default, when no other credential is set anywhere:
    /// `$AZURE_FEDERATED_TOKEN_FILE`.
    pub federated_token_file: Option<PathBuf>,
    /// How groupwarden signs in: `"client-secret"`, `"certificate"`,
    /// `"workload-identity"` (the app registration's credential of that
    /// kind) or `"managed-identity"` (the Azure resource's own identity:
    /// no app registration, no credential). Default: whichever app
    /// credential is configured (or found in the environment).
    pub auth: Option<AuthKind>,
    /// `auth = "managed-identity"`: the client id of a user-assigned
    /// managed identity. Default: the system-assigned identity.
    pub managed_identity_client_id: Option<String>,
    /// The report period: `D7`, `D30`, `D90` or `D180`. Default `D30`.
    /// `--period` overrides it.
    pub period: Option<Period>,
    /// One day's report instead of a period (`2026-11-20`); Graph serves
    /// only the past 28 days. `--date` overrides it.
    #[serde(default, deserialize_with = "deserialize_date")]
    pub date: Option<Date>,
    /// The Microsoft cloud: `global`, `usgov`, `usgov-dod` or `china`.
    /// Sets the sign-in and Graph hosts. Default `global`.
    #[serde(default)]
    pub cloud: Cloud,
    /// Overrides the sign-in host of `cloud` (proxies, tests). `https://`
    /// except for a loopback address.
    pub authority_url: Option<String>,
    /// Overrides the Graph host of `cloud` (proxies, tests). `https://`
    /// except for a loopback address.
    pub graph_url: Option<String>,
    /// The Graph API version: `v1.0` (the report as CSV) or `beta` (the
    /// report as JSON pages). Default `v1.0`, except in the national
    /// clouds that serve the report only under `beta`
    /// ([`Cloud::serves_v1_report`]), where it is `beta`.
    #[serde(default)]
    pub api_version: Option<ApiVersion>,
    /// Tries at most this many times before giving up (throttling, server
    /// and network faults). Default 5.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Gives up retrying when the next try would start after this long
    /// (`"10m"`, `"90s"`). It bounds the wait for the download to start,
    /// not the download itself (see `stall_timeout`). Default `10m`.
    #[serde(default = "default_deadline")]
    pub deadline: ConfigDuration,
    /// The first wait between tries when the server does not say
    /// (`Retry-After`); it doubles each time, with jitter. Default `2s`.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: ConfigDuration,
    /// The longest wait between tries chosen by the backoff. Default `60s`.
    #[serde(default = "default_retry_max_delay")]
    pub retry_max_delay: ConfigDuration,
    /// How long a connection may take to open. Default `30s`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long an answer or the download may go without a byte before it
    /// counts as stalled. Default `120s`.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: ConfigDuration,
}

impl Default for SourceConfig {
    /// Graph, with everything else from the environment and defaults: what
    /// `fetch` uses when the config has no `[source]`.
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Graph,
            path: None,
            tenant_id: None,
            tenant_name: None,
            client_id: None,
            client_secret_env: None,
            client_secret_file: None,
            certificate_file: None,
            federated_token_file: None,
            auth: None,
            managed_identity_client_id: None,
            period: None,
            date: None,
            cloud: Cloud::default(),
            authority_url: None,
            graph_url: None,
            api_version: None,
            max_attempts: default_max_attempts(),
            deadline: default_deadline(),
            retry_delay: default_retry_delay(),
            retry_max_delay: default_retry_max_delay(),
            connect_timeout: default_connect_timeout(),
            stall_timeout: default_stall_timeout(),
        }
    }
}

fn default_max_attempts() -> u32 {
    5
}
fn default_deadline() -> ConfigDuration {
    ConfigDuration::from_secs(600)
}
fn default_retry_delay() -> ConfigDuration {
    ConfigDuration::from_secs(2)
}
fn default_retry_max_delay() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}
fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}
fn default_stall_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(120)
}

/// `[source] type`: where the report comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A CSV (or JSON) file named by `path`.
    File,
    /// Microsoft Graph's reports API.
    Graph,
}

/// `[source] auth`: how groupwarden signs in to Microsoft Graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// The app registration's client secret (`client_secret_env`,
    /// `client_secret_file` or `$AZURE_CLIENT_SECRET`).
    ClientSecret,
    /// The app registration's certificate (`certificate_file` or
    /// `$AZURE_CLIENT_CERTIFICATE_PATH`).
    Certificate,
    /// A federated token the app registration trusts
    /// (`federated_token_file` or `$AZURE_FEDERATED_TOKEN_FILE`).
    WorkloadIdentity,
    /// The managed identity of the Azure resource groupwarden runs on,
    /// from its identity endpoint (App Service, Container Apps, Functions)
    /// or the instance metadata service (VMs, scale sets).
    ManagedIdentity,
}

impl AuthKind {
    /// The value as the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::ClientSecret => "client-secret",
            AuthKind::Certificate => "certificate",
            AuthKind::WorkloadIdentity => "workload-identity",
            AuthKind::ManagedIdentity => "managed-identity",
        }
    }
}

/// The periods Graph offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ValueEnum)]
pub enum Period {
    /// The last 7 days.
    #[serde(rename = "D7")]
    #[value(name = "D7", help = None)]
    D7,
    /// The last 30 days.
    #[serde(rename = "D30")]
    #[value(name = "D30", help = None)]
    D30,
    /// The last 90 days.
    #[serde(rename = "D90")]
    #[value(name = "D90", help = None)]
    D90,
    /// The last 180 days.
    #[serde(rename = "D180")]
    #[value(name = "D180", help = None)]
    D180,
}

impl Period {
    /// The period as Graph's `period=` parameter writes it (`D30`).
    pub fn as_str(self) -> &'static str {
        match self {
            Period::D7 => "D7",
            Period::D30 => "D30",
            Period::D90 => "D90",
            Period::D180 => "D180",
        }
    }
}

/// Which report to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportRequest {
    /// The activity of a period ending at the refresh date.
    Period(Period),
    /// One day's activity (within the past 28 days).
    Date(Date),
}

impl ReportRequest {
    /// The function call in the Graph path.
    pub fn function(&self) -> String {
        match self {
            ReportRequest::Period(period) => format!(
                "getOffice365GroupsActivityDetail(period='{}')",
                period.as_str()
            ),
            ReportRequest::Date(date) => format!("getOffice365GroupsActivityDetail(date={date})"),
        }
    }

    /// The period as the report's `Report Period` column writes it, with a
    /// `D`: a one-day report is `D1`.
    pub fn period_label(&self) -> &'static str {
        match self {
            ReportRequest::Period(period) => period.as_str(),
            ReportRequest::Date(_) => "D1",
        }
    }
}

impl fmt::Display for ReportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportRequest::Period(period) => write!(f, "period {}", period.as_str()),
            ReportRequest::Date(date) => write!(f, "date {date}"),
        }
    }
}

/// The Graph API version the report is asked from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ApiVersion {
    /// `v1.0`: the report as CSV.
    #[default]
    #[serde(rename = "v1.0")]
    V1,
    /// `beta`: the report as JSON pages.
    #[serde(rename = "beta")]
    Beta,
}

impl ApiVersion {
    /// The version as it stands in the request path.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// A date as a TOML string (`"2026-11-20"`) or a bare TOML date.
fn deserialize_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Date>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Toml(toml::value::Datetime),
    }
    let text = match Written::deserialize(deserializer)? {
        Written::Text(text) => text,
        Written::Toml(datetime) => datetime.to_string(),
    };
    Date::from_str(&text).map(Some).map_err(|_| {
        serde::de::Error::custom(format!("expected a date as YYYY-MM-DD, found \"{text}\""))
    })
}

/// The source, checked and ready to use.
#[derive(Debug)]
pub enum ResolvedSource {
    /// Read this file.
    File(PathBuf),
    /// Fetch from Graph with these settings.
    Graph(Box<GraphSettings>),
}

/// Everything needed to fetch the report from Graph.
#[derive(Debug)]
pub struct GraphSettings {
    /// The Entra tenant (directory) id; with a managed identity, what
    /// `tenant_id` or `$AZURE_TENANT_ID` says, else empty (the identity's
    /// own tenant is used).
    pub tenant_id: String,
    /// The app registration's client id; empty with a managed identity
    /// (whose client id, if user-assigned, is in the credential).
    pub client_id: String,
    /// How the app signs in (its secret is never shown).
    pub credential: Credential,
    /// The period or day to ask for.
    pub request: ReportRequest,
    /// `v1.0` (CSV) or `beta` (JSON pages).
    pub api_version: ApiVersion,
    /// Without a trailing slash.
    pub authority_url: String,
    /// Without a trailing slash.
    pub graph_url: String,
    /// How often and how long to retry a failed request.
    pub retry: RetryPolicy,
    /// The longest wait for a connection.
    pub connect_timeout: Duration,
    /// The longest wait for the next byte of a download.
    pub stall_timeout: Duration,
}

/// How the app proves who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A client secret.
    Secret(SecretString),
    /// A certificate and its private key (a signed assertion per token).
    Certificate(Arc<CertificateCredential>),
    /// Workload identity federation: the file's token is the assertion.
    FederatedToken(PathBuf),
    /// The Azure resource's managed identity: tokens from its identity
    /// endpoint, no app registration.
    ManagedIdentity(ManagedIdentity),
}

/// What the environment offers, so tests need not change the process
/// environment.
pub trait Environment {
    /// The variable's value; `None` when unset or empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment; empty values count as unset.
pub(crate) struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    }
}

/// An environment of the given variables, for tests.
#[cfg(test)]
pub(crate) struct FakeEnv(pub(crate) std::collections::HashMap<&'static str, &'static str>);

#[cfg(test)]
impl FakeEnv {
    /// The environment holding `pairs`.
    pub(crate) fn of(pairs: &[(&'static str, &'static str)]) -> FakeEnv {
        FakeEnv(pairs.iter().copied().collect())
    }
}

#[cfg(test)]
impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

/// Keys that only `type = "graph"` uses, for the file-type check.
const GRAPH_ONLY_KEYS: [&str; 12] = [
    "tenant_id",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "certificate_file",
    "federated_token_file",
    "auth",
    "managed_identity_client_id",
    "period",
    "date",
    "authority_url",
    "graph_url",
];

impl SourceConfig {
    /// Checks the section and loads the credential. `request` (from
    /// `--period`/`--date`) wins over the file's `period`/`date`;
    /// `resolve_path` makes a path relative to the config file's folder.
    pub fn resolve(
        &self,
        request: Option<ReportRequest>,
        env: &dyn Environment,
        resolve_path: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<ResolvedSource, SourceError> {
        match self.kind {
            SourceKind::File => self.resolve_file(resolve_path),
            SourceKind::Graph => Ok(ResolvedSource::Graph(Box::new(self.resolve_graph(
                request,
                env,
                resolve_path,
            )?))),
        }
    }

    fn resolve_file(
        &self,
        resolve_path: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<ResolvedSource, SourceError> {
        if let Some(key) = self.graph_keys_set().first() {
            return Err(config_error(
                key,
                "applies only to type = \"graph\"".to_owned(),
            ));
        }
        let path = self
            .path
            .as_deref()
            .ok_or_else(|| config_error("path", "is required with type = \"file\"".to_owned()))?;
        Ok(ResolvedSource::File(resolve_path(path)))
    }

    fn graph_keys_set(&self) -> Vec<&'static str> {
        let set = [
            self.tenant_id.is_some(),
            self.client_id.is_some(),
            self.client_secret_env.is_some(),
            self.client_secret_file.is_some(),
            self.certificate_file.is_some(),
            self.federated_token_file.is_some(),
            self.auth.is_some(),
            self.managed_identity_client_id.is_some(),
            self.period.is_some(),
            self.date.is_some(),
            self.authority_url.is_some(),
            self.graph_url.is_some(),
        ];
        GRAPH_ONLY_KEYS
            .iter()
            .zip(set)
            .filter(|(_, set)| *set)
            .map(|(key, _)| *key)
            .collect()
    }

    fn resolve_graph(
        &self,
        request: Option<ReportRequest>,
        env: &dyn Environment,
        resolve_path: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<GraphSettings, SourceError> {
        if self.path.is_some() {
            return Err(config_error(
                "path",
                "applies only to type = \"file\"".to_owned(),
            ));
        }
        let (tenant_id, client_id, credential) = if self.auth == Some(AuthKind::ManagedIdentity) {
            self.managed_identity(env)?
        } else {
            if self.managed_identity_client_id.is_some() {
                return Err(config_error(
                    "managed_identity_client_id",
                    "applies only with auth = \"managed-identity\"".to_owned(),
                ));
            }
            let tenant_id = required(&self.tenant_id, "tenant_id", ENV_TENANT_ID, env)?;
            check_tenant_id(&tenant_id)?;
            let client_id = required(&self.client_id, "client_id", ENV_CLIENT_ID, env)?;
            let credential = self.load_credential(env, resolve_path)?;
            (tenant_id, client_id, credential)
        };
        let retry = RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            deadline: Some(self.deadline.0),
            initial_delay: self.retry_delay.0,
            max_delay: self.retry_max_delay.0.max(self.retry_delay.0),
            jitter: true,
            // The deadline bounds every wait, the server's included.
            max_retry_after: None,
        };
        Ok(GraphSettings {
            tenant_id,
            client_id,
            credential,
            request: self.request(request)?,
            api_version: self.api_version(),
            authority_url: base_url(
                self.authority_url.as_deref(),
                self.cloud.authority_url(),
                "authority_url",
            )?,
            graph_url: base_url(
                self.graph_url.as_deref(),
                self.cloud.graph_url(),
                "graph_url",
            )?,
            retry,
            connect_timeout: self.connect_timeout.0,
            stall_timeout: self.stall_timeout.0,
        })
    }

    /// `api_version` as set, else `beta` in a cloud whose v1.0 has no
    /// report, else `v1.0`. Either choice in those clouds is logged.
    fn api_version(&self) -> ApiVersion {
        let cloud = self.cloud.as_str();
        match (self.api_version, self.cloud.serves_v1_report()) {
            (Some(ApiVersion::V1), false) => {
                tracing::warn!(
                    "[source] cloud = \"{cloud}\": the v1.0 report is not available in this cloud, \
                     but api_version = \"v1.0\" is set; remove it to use beta"
                );
                ApiVersion::V1
            }
            (Some(version), _) => version,
            (None, false) => {
                tracing::info!(
                    "[source] cloud = \"{cloud}\": the v1.0 report is not available in this cloud; using beta"
                );
                ApiVersion::Beta
            }
            (None, true) => ApiVersion::V1,
        }
    }

    fn request(&self, overridden: Option<ReportRequest>) -> Result<ReportRequest, SourceError> {
        if let Some(request) = overridden {
            return Ok(request);
        }
        match (self.period, self.date) {
            (Some(_), Some(_)) => Err(config_error(
                "date",
                "and `period` are both set; keep one".to_owned(),
            )),
            (_, Some(date)) => Ok(ReportRequest::Date(date)),
            (period, None) => Ok(ReportRequest::Period(period.unwrap_or(Period::D30))),
        }
    }

    /// `auth = "managed-identity"`: no app credential and no app
    /// registration; the endpoint comes from the environment the Azure
    /// host sets.
    fn managed_identity(
        &self,
        env: &dyn Environment,
    ) -> Result<(String, String, Credential), SourceError> {
        let app_keys = [
            ("client_id", self.client_id.is_some()),
            ("client_secret_env", self.client_secret_env.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
            ("certificate_file", self.certificate_file.is_some()),
            ("federated_token_file", self.federated_token_file.is_some()),
        ];
        if let Some((key, _)) = app_keys.iter().find(|(_, set)| *set) {
            let advice = if *key == "client_id" {
                "; for a user-assigned identity set `managed_identity_client_id`"
            } else {
                ""
            };
            return Err(config_error(
                key,
                format!(
                    "belongs to an app registration and does not go with auth = \"managed-identity\"{advice}"
                ),
            ));
        }
        let client_id = self
            .managed_identity_client_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        if self.managed_identity_client_id.is_some() && client_id.is_none() {
            return Err(config_error(
                "managed_identity_client_id",
                "is empty: set the user-assigned identity's client id, or remove the key for the system-assigned one".to_owned(),
            ));
        }
        // Only informative with a managed identity (the token names the
        // identity's tenant), but still checked when given.
        let tenant_id = self
            .tenant_id
            .clone()
            .or_else(|| env.var(ENV_TENANT_ID))
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        if !tenant_id.is_empty() {
            check_tenant_id(&tenant_id)?;
        }
        let identity = ManagedIdentity::from_environment(client_id, env)?;
        Ok((
            tenant_id,
            String::new(),
            Credential::ManagedIdentity(identity),
        ))
    }

    /// The one configured app credential (of the kind `auth` names, if
    /// set), else `AZURE_CLIENT_SECRET`, else
    /// `AZURE_CLIENT_CERTIFICATE_PATH`, else `AZURE_FEDERATED_TOKEN_FILE`.
    fn load_credential(
        &self,
        env: &dyn Environment,
        resolve_path: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Credential, SourceError> {
        let configured = [
            (
                "client_secret_env",
                AuthKind::ClientSecret,
                self.client_secret_env.is_some(),
            ),
            (
                "client_secret_file",
                AuthKind::ClientSecret,
                self.client_secret_file.is_some(),
            ),
            (
                "certificate_file",
                AuthKind::Certificate,
                self.certificate_file.is_some(),
            ),
            (
                "federated_token_file",
                AuthKind::WorkloadIdentity,
                self.federated_token_file.is_some(),
            ),
        ];
        if let Some(auth) = self.auth
            && let Some((key, _, _)) = configured
                .iter()
                .find(|(_, kind, set)| *set && *kind != auth)
        {
            return Err(config_error(
                key,
                format!("does not go with auth = \"{}\"", auth.as_str()),
            ));
        }
        if configured.iter().filter(|(_, _, set)| *set).count() > 1 {
            return Err(config_error(
                "client_secret_env",
                "`client_secret_env`, `client_secret_file`, `certificate_file` and `federated_token_file` are alternatives: set one".to_owned(),
            ));
        }
        if let Some(name) = &self.client_secret_env {
            let secret = env.var(name).ok_or_else(|| {
                config_error(
                    "client_secret_env",
                    format!("names ${name}, which is not set"),
                )
            })?;
            return Ok(Credential::Secret(SecretString::from(secret)));
        }
        let file = |key: &'static str, path: &Path| -> Result<PathBuf, SourceError> {
            Ok(resolve_path(&in_credentials_directory(key, path, env)?))
        };
        if let Some(path) = &self.client_secret_file {
            return read_secret_file(&file("client_secret_file", path)?).map(Credential::Secret);
        }
        if let Some(path) = &self.certificate_file {
            return Ok(Credential::Certificate(Arc::new(
                CertificateCredential::from_pem_file(&file("certificate_file", path)?)?,
            )));
        }
        if let Some(path) = &self.federated_token_file {
            return federated_token(file("federated_token_file", path)?);
        }
        let wanted = |kind: AuthKind| self.auth.is_none_or(|auth| auth == kind);
        if wanted(AuthKind::ClientSecret)
            && let Some(secret) = env.var(ENV_CLIENT_SECRET)
        {
            return Ok(Credential::Secret(SecretString::from(secret)));
        }
        if wanted(AuthKind::Certificate)
            && let Some(path) = env.var(ENV_CLIENT_CERTIFICATE_PATH)
        {
            return Ok(Credential::Certificate(Arc::new(
                CertificateCredential::from_pem_file(Path::new(&path))?,
            )));
        }
        if wanted(AuthKind::WorkloadIdentity)
            && let Some(path) = env.var(ENV_FEDERATED_TOKEN_FILE)
        {
            return federated_token(PathBuf::from(path));
        }
        Err(self.no_credential())
    }

    /// What to set when no credential was found, for `auth` as set.
    fn no_credential(&self) -> SourceError {
        let (key, message) = match self.auth {
            Some(AuthKind::ClientSecret) => (
                "client_secret_env",
                format!(
                    "auth = \"client-secret\" but no secret: set `client_secret_env` or `client_secret_file`, \
                     or the environment variable {ENV_CLIENT_SECRET}"
                ),
            ),
            Some(AuthKind::Certificate) => (
                "certificate_file",
                format!(
                    "auth = \"certificate\" but no certificate: set `certificate_file`, \
                     or the environment variable {ENV_CLIENT_CERTIFICATE_PATH}"
                ),
            ),
            Some(AuthKind::WorkloadIdentity) => (
                "federated_token_file",
                format!(
                    "auth = \"workload-identity\" but no token file: set `federated_token_file`, \
                     or the environment variable {ENV_FEDERATED_TOKEN_FILE}"
                ),
            ),
            Some(AuthKind::ManagedIdentity) | None => (
                "client_secret_env",
                format!(
                    "no credential: set one of `client_secret_env`, `client_secret_file`, `certificate_file` or \
                     `federated_token_file`, or the environment variable {ENV_CLIENT_SECRET}, \
                     {ENV_CLIENT_CERTIFICATE_PATH} or {ENV_FEDERATED_TOKEN_FILE}; \
                     on Azure, auth = \"managed-identity\" needs none"
                ),
            ),
        };
        config_error(key, message)
    }
}

/// systemd's folder of the credentials `LoadCredential=` hands a unit.
pub(crate) const ENV_CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A credential file's path with a leading `$CREDENTIALS_DIRECTORY/` (or
/// `${CREDENTIALS_DIRECTORY}/`) replaced by that variable: systemd names
/// the folder after the unit, so one config serves every unit that loads
/// the credential. Any other path is as written.
fn in_credentials_directory(
    key: &'static str,
    path: &Path,
    env: &dyn Environment,
) -> Result<PathBuf, SourceError> {
    let Some(text) = path.to_str() else {
        return Ok(path.to_owned());
    };
    let rest = ["$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix));
    let Some(rest) = rest else {
        return Ok(path.to_owned());
    };
    let dir = env.var(ENV_CREDENTIALS_DIRECTORY).ok_or_else(|| {
        config_error(
            key,
            format!(
                "\"{text}\" names ${ENV_CREDENTIALS_DIRECTORY}, which is not set: systemd sets it for a unit \
                 with LoadCredential=; elsewhere name the file itself"
            ),
        )
    })?;
    Ok(Path::new(&dir).join(rest))
}

fn config_error(key: &'static str, message: String) -> SourceError {
    SourceError::Config { key, message }
}

fn required(
    value: &Option<String>,
    key: &'static str,
    env_name: &str,
    env: &dyn Environment,
) -> Result<String, SourceError> {
    value
        .as_ref()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| env.var(env_name).map(|v| v.trim().to_owned()))
        .ok_or_else(|| {
            config_error(
                key,
                format!("is required (or set the environment variable {env_name})"),
            )
        })
}

/// The tenant goes into the token endpoint's path: a GUID or a domain name.
fn check_tenant_id(tenant_id: &str) -> Result<(), SourceError> {
    let valid = tenant_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(config_error(
            "tenant_id",
            format!("\"{tenant_id}\" is neither a tenant GUID nor a domain name"),
        ))
    }
}

/// A federated token credential, checked once now (the file is there and
/// holds something) and read again at every sign-in.
fn federated_token(path: PathBuf) -> Result<Credential, SourceError> {
    read_federated_token(&path)?;
    Ok(Credential::FederatedToken(path))
}

/// The token in a federated token file, as sent in `client_assertion`.
pub(crate) fn read_federated_token(path: &Path) -> Result<SecretString, SourceError> {
    read_secret_file(path).map_err(|error| match error {
        SourceError::SecretFile { path, error } => SourceError::FederatedTokenFile { path, error },
        other => other,
    })
}

fn read_secret_file(path: &Path) -> Result<SecretString, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|error| SourceError::SecretFile {
        path: path.to_owned(),
        error,
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        let error = std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty");
        return Err(SourceError::SecretFile {
            path: path.to_owned(),
            error,
        });
    }
    Ok(SecretString::from(secret.to_owned()))
}

/// A base URL from the config or the cloud's default, without a trailing
/// slash. Plain `http://` is refused except on loopback, where tests run:
/// the client secret and tokens must not cross a network in clear text.
fn base_url(
    configured: Option<&str>,
    default: &str,
    key: &'static str,
) -> Result<String, SourceError> {
    let Some(text) = configured else {
        return Ok(default.to_owned());
    };
    let url = reqwest::Url::parse(text)
        .map_err(|e| config_error(key, format!("\"{text}\" is not a URL: {e}")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(config_error(
                key,
                format!("\"{text}\" must use https:// (http:// is allowed only for localhost)"),
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(
            key,
            format!("\"{text}\" must not have a query or fragment"),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {

    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> FakeEnv {
        FakeEnv::of(pairs)
    }

    fn section(text: &str) -> Result<SourceConfig, String> {
        #[derive(Deserialize)]
        struct File {
            source: SourceConfig,
        }
        toml::from_str::<File>(text)
            .map(|f| f.source)
            .map_err(|e| e.to_string())
    }

    fn graph(text: &str, env: &FakeEnv) -> Result<GraphSettings, SourceError> {
        match section(text)
            .unwrap()
            .resolve(None, env, &|p| p.to_owned())?
        {
            ResolvedSource::Graph(settings) => Ok(*settings),
            ResolvedSource::File(_) => panic!("expected graph"),
        }
    }

    const GRAPH: &str = "[source]\ntype = \"graph\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"app\"\n";

    #[test]
    fn secret_comes_from_the_named_variable() {
        let text = format!("{GRAPH}client_secret_env = \"MY_SECRET\"\n");
        let settings = graph(&text, &env(&[("MY_SECRET", "s3cret")])).unwrap();
        match settings.credential {
            Credential::Secret(secret) => assert_eq!(secret.expose_secret(), "s3cret"),
            _ => panic!("expected a secret"),
        }
        assert_eq!(settings.request, ReportRequest::Period(Period::D30));
        assert_eq!(settings.graph_url, "https://graph.microsoft.com");
    }

    #[test]
    fn national_clouds_use_beta_unless_v1_is_set() {
        let secret = env(&[("S", "x")]);
        let version = |extra: &str| {
            let text = format!("{GRAPH}client_secret_env = \"S\"\n{extra}");
            graph(&text, &secret).unwrap().api_version
        };
        assert_eq!(version(""), ApiVersion::V1);
        assert_eq!(version("api_version = \"beta\"\n"), ApiVersion::Beta);
        for cloud in ["usgov", "usgov-dod", "china"] {
            let cloud = format!("cloud = \"{cloud}\"\n");
            assert_eq!(version(&cloud), ApiVersion::Beta, "{cloud}");
            let explicit = format!("{cloud}api_version = \"v1.0\"\n");
            assert_eq!(version(&explicit), ApiVersion::V1, "{cloud}");
        }
    }

    #[test]
    fn unset_secret_variable_names_the_key_and_variable() {
        let text = format!("{GRAPH}client_secret_env = \"MY_SECRET\"\n");
        let err = graph(&text, &env(&[])).unwrap_err().to_string();
        assert_eq!(
            err,
            "[source] client_secret_env: names $MY_SECRET, which is not set"
        );
    }

    #[test]
    fn everything_can_come_from_the_azure_variables() {
        let vars = env(&[
            (ENV_TENANT_ID, "tid"),
            (ENV_CLIENT_ID, "cid"),
            (ENV_CLIENT_SECRET, "sec"),
        ]);
        let settings = graph("[source]\ntype = \"graph\"\n", &vars).unwrap();
        assert_eq!(
            (settings.tenant_id.as_str(), settings.client_id.as_str()),
            ("tid", "cid")
        );
    }

    #[test]
    fn missing_tenant_names_the_key_and_the_variable() {
        let err = graph("[source]\ntype = \"graph\"\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "[source] tenant_id: is required (or set the environment variable AZURE_TENANT_ID)"
        );
    }

    #[test]
    fn period_or_date_and_the_command_line_wins() {
        let vars = env(&[(ENV_CLIENT_SECRET, "x")]);
        let date = graph(&format!("{GRAPH}date = 2026-11-20\n"), &vars).unwrap();
        assert_eq!(
            date.request,
            ReportRequest::Date(jiff::civil::date(2026, 11, 20))
        );
        assert_eq!(
            date.request.function(),
            "getOffice365GroupsActivityDetail(date=2026-11-20)"
        );
        let both = graph(
            &format!("{GRAPH}date = \"2026-11-20\"\nperiod = \"D7\"\n"),
            &vars,
        )
        .unwrap_err();
        assert!(both.to_string().contains("[source] date"), "{both}");
        let config = section(&format!("{GRAPH}period = \"D7\"\n")).unwrap();
        let cli = ReportRequest::Period(Period::D180);
        let ResolvedSource::Graph(settings) =
            config.resolve(Some(cli), &vars, &|p| p.to_owned()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            settings.request.function(),
            "getOffice365GroupsActivityDetail(period='D180')"
        );
    }

    #[test]
    fn bad_values_name_the_line() {
        let err = section(&format!("{GRAPH}period = \"D14\"\n")).unwrap_err();
        assert!(err.contains("line 5"), "{err}");
        let err = section(&format!("{GRAPH}deadline = \"soon\"\n")).unwrap_err();
        assert!(err.contains("expected a duration"), "{err}");
        let err = section(&format!("{GRAPH}tenant = \"x\"\n")).unwrap_err();
        assert!(err.contains("unknown field `tenant`"), "{err}");
    }

    #[test]
    fn durations_are_friendly() {
        let config = section(&format!(
            "{GRAPH}deadline = \"1m 30s\"\nretry_delay = \"10ms\"\nstall_timeout = 5\nconnect_timeout = \"1d\"\n"
        ))
        .unwrap();
        assert_eq!(config.deadline.0, Duration::from_secs(90));
        assert_eq!(config.connect_timeout.0, Duration::from_secs(86_400));
        assert_eq!(config.retry_delay.0, Duration::from_millis(10));
        assert_eq!(config.stall_timeout.0, Duration::from_secs(5));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let vars = env(&[(ENV_CLIENT_SECRET, "x")]);
        let ok = graph(
            &format!("{GRAPH}graph_url = \"http://127.0.0.1:8080/\"\n"),
            &vars,
        )
        .unwrap();
        assert_eq!(ok.graph_url, "http://127.0.0.1:8080");
        let err = graph(
            &format!("{GRAPH}authority_url = \"http://login.example.com\"\n"),
            &vars,
        )
        .unwrap_err();
        assert!(err.to_string().contains("must use https://"), "{err}");
    }

    #[test]
    fn file_type_needs_a_path_and_no_graph_keys() {
        let resolve = |text: &str| {
            section(text)
                .unwrap()
                .resolve(None, &env(&[]), &|p| Path::new("/cfg").join(p))
        };
        let ResolvedSource::File(path) =
            resolve("[source]\ntype = \"file\"\npath = \"r.csv\"\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(path, Path::new("/cfg/r.csv"));
        let err = resolve("[source]\ntype = \"file\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "[source] path: is required with type = \"file\""
        );
        let err = resolve("[source]\ntype = \"file\"\npath = \"r.csv\"\ntenant_id = \"t\"\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[source] tenant_id: applies only to type = \"graph\""
        );
    }

    #[test]
    fn a_federated_token_file_comes_from_the_key_or_the_workload_identity_variable() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "eyJhbGciOi.federated.jwt\n").unwrap();
        let from_key = graph(
            &format!("{GRAPH}federated_token_file = \"{}\"\n", token.display()),
            &env(&[]),
        )
        .unwrap();
        assert!(matches!(&from_key.credential, Credential::FederatedToken(p) if *p == token));
        let path = token.to_str().unwrap().to_owned().leak();
        let from_env = graph(GRAPH, &env(&[(ENV_FEDERATED_TOKEN_FILE, path)])).unwrap();
        assert!(matches!(&from_env.credential, Credential::FederatedToken(p) if *p == token));
        // A secret in the environment wins over the variable, as in the Azure SDKs.
        let both = graph(
            GRAPH,
            &env(&[(ENV_FEDERATED_TOKEN_FILE, path), (ENV_CLIENT_SECRET, "s")]),
        )
        .unwrap();
        assert!(matches!(both.credential, Credential::Secret(_)));
        assert_eq!(
            read_federated_token(&token).unwrap().expose_secret(),
            "eyJhbGciOi.federated.jwt"
        );
    }

    #[test]
    fn a_federated_token_file_must_hold_a_token_and_stand_alone() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        let err = graph(
            &format!("{GRAPH}federated_token_file = \"{}\"\n", empty.display()),
            &env(&[]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the federated token file"),
            "{err}"
        );
        let err = graph(
            &format!("{GRAPH}federated_token_file = \"t\"\nclient_secret_env = \"S\"\n"),
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("are alternatives"), "{err}");
    }

    #[test]
    fn a_tenant_cannot_smuggle_a_path() {
        let err = graph(
            "[source]\ntype = \"graph\"\ntenant_id = \"x/../y\"\nclient_id = \"c\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("[source] tenant_id:"), "{err}");
    }

    #[test]
    fn auth_picks_the_kind_and_refuses_keys_of_another() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "jwt").unwrap();
        let path = token.to_str().unwrap().to_owned().leak();
        // Without `auth` a secret in the environment wins; with it, the named kind.
        let vars = env(&[(ENV_FEDERATED_TOKEN_FILE, path), (ENV_CLIENT_SECRET, "s")]);
        let chosen = graph(&format!("{GRAPH}auth = \"workload-identity\"\n"), &vars).unwrap();
        assert!(matches!(chosen.credential, Credential::FederatedToken(_)));
        let err = graph(
            &format!("{GRAPH}auth = \"certificate\"\nclient_secret_env = \"S\"\n"),
            &vars,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[source] client_secret_env: does not go with auth = \"certificate\""
        );
        let err = graph(&format!("{GRAPH}auth = \"certificate\"\n"), &vars).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "[source] certificate_file: auth = \"certificate\" but no certificate"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_managed_identity_needs_no_app_and_no_credential() {
        let text = "[source]\ntype = \"graph\"\nauth = \"managed-identity\"\nmanaged_identity_client_id = \" uai \"\n";
        let settings = graph(text, &env(&[])).unwrap();
        let Credential::ManagedIdentity(identity) = &settings.credential else {
            panic!("expected a managed identity");
        };
        assert_eq!(
            identity.to_string(),
            "the user-assigned managed identity with client id uai, from the Azure instance metadata service (IMDS) at 169.254.169.254"
        );
        assert_eq!(
            (settings.tenant_id.as_str(), settings.client_id.as_str()),
            ("", "")
        );
        let err = graph(
            &format!("{GRAPH}managed_identity_client_id = \"x\"\n"),
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[source] managed_identity_client_id: applies only with auth = \"managed-identity\""
        );
        let err = graph(
            "[source]\ntype = \"graph\"\nauth = \"managed-identity\"\nfederated_token_file = \"t\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("[source] federated_token_file: belongs to an app registration"),
            "{err}"
        );
        let err =
            section("[source]\ntype = \"file\"\npath = \"r.csv\"\nauth = \"managed-identity\"\n")
                .unwrap()
                .resolve(None, &env(&[]), &|p| p.to_owned())
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[source] auth: applies only to type = \"graph\""
        );
    }

    #[test]
    fn a_credential_file_can_be_in_systemds_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-secret"), "s3cret\n").unwrap();
        let folder = dir.path().to_str().unwrap().to_owned().leak();
        for written in [
            "$CREDENTIALS_DIRECTORY/client-secret",
            "${CREDENTIALS_DIRECTORY}/client-secret",
        ] {
            let text = format!("{GRAPH}client_secret_file = \"{written}\"\n");
            let settings = graph(&text, &env(&[(ENV_CREDENTIALS_DIRECTORY, folder)])).unwrap();
            let Credential::Secret(secret) = settings.credential else {
                panic!("expected a secret");
            };
            assert_eq!(secret.expose_secret(), "s3cret");
            let err = graph(&text, &env(&[])).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "[source] client_secret_file: \"{written}\" names $CREDENTIALS_DIRECTORY, which is not set"
                )),
                "{err}"
            );
        }
    }
}
