//! Getting the report: a local CSV file, or Microsoft Graph.
//!
//! Every source ends as a byte stream (`Read`) that the report reader
//! consumes as it arrives, so a report is never held whole in memory.
//!
//! ```text
//!  [source] config ──resolve──▶ ResolvedSource::File(path)  ──▶ File
//!                              └▶ ResolvedSource::Graph ──▶ GraphClient::open_report
//!                                                             │ token (TokenSource, cached)
//!                                                             │ GET …/getOffice365GroupsActivityDetail(…)
//!                                                             │   200: the CSV itself
//!                                                             │   302: Location → download client (no Authorization)
//!                                                             │ beta: …?$format=application/json, a JSON page;
//!                                                             │   each @odata.nextLink is requested the same way,
//!                                                             │   and shape::json_pages_as_csv makes the pages one CSV
//!                                                             ▼
//!                                                           Download (Read: length check, stall timeout, progress)
//!                                                             ▼
//!                                                           SavedCopy (optional tee for --save-report)
//! ```
//!
//! - [`config`]: the `[source]` section and its validation into settings.
//! - [`cloud`]: the national clouds, their endpoints, and which of them
//!   serve the report only under `beta`.
//! - [`token`]: the [`token::TokenSource`] trait and the OAuth2 client
//!   credentials grant (secret or certificate), with its cache.
//! - [`assertion`]: the signed JWT a certificate credential sends.
//! - [`managed_identity`]: tokens from the Azure resource's managed
//!   identity (App Service's identity endpoint or IMDS).
//! - [`graph`]: the report request, redirects, error answers, and the
//!   `beta` JSON pages.
//! - [`directory`]: the tenant's Microsoft 365 groups and their owners
//!   (`[directory]`), joined to the report's rows.
//! - [`retry`]: which errors are retried under the shared
//!   [`crate::retry`] policy, and the error when the fetch gives up.
//! - [`download`]: the body as a `Read` that refuses to end early.
//! - [`save`]: keeping the raw CSV under its refresh date (`--save-report`).
//! - [`error`]: what goes wrong, worded so the reader knows what to do.
//!
//! Secrets (client secret, access token, the pre-authenticated download
//! URL) live in `secrecy` types and are never formatted into logs or
//! errors.

pub(crate) mod assertion;
pub(crate) mod cloud;
pub(crate) mod config;
pub(crate) mod directory;
pub(crate) mod download;
pub(crate) mod error;
pub(crate) mod graph;
pub(crate) mod managed_identity;
pub(crate) mod retry;
pub(crate) mod save;
pub(crate) mod token;
