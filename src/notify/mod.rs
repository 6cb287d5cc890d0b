//! Telling people: digests by email, Microsoft Graph mail and webhooks
//! (JSON, Slack, Teams).
//!
//! ```text
//!  Digest ──plan()──▶ [Planned] ──(outbox)──▶ Courier::deliver() ──▶ render ──▶ Notifier + retries
//!  (one scan)          per channel             (state store)            (templates)  (email | graph-mail | webhook)
//!                      and recipient
//! ```
//!
//! A scan's changes arrive as one [`Digest`]. [`plan`] cuts it per
//! channel ([`config`] holds the `[[notify]]` keys; [`validate`] checks
//! them and loads the templates): each channel gets one digest of the
//! rules and severities it routes, or, with `to = "group-owners"`, one per
//! owner about their own groups. Planning is pure, so the state store can
//! do it in the transaction that records the scan and keep every
//! [`Planned`] message in its outbox. [`Courier`] then renders each one
//! ([`render`](mod@render), [`templates`]) and sends it through the channel's
//! [`notifier::Notifier`] under one shared retry loop; what fails is
//! reported, never dropped.
//!
//! A stateful scan does not plan from its changes alone: [`accounting`]
//! queues, per channel, what the channel routes minus what it already
//! accepted, so a failing channel, a cap or a channel added late never
//! makes a finding count as announced to a channel that was not told.

pub mod accounting;
pub(crate) mod announce;
pub mod channel;
pub mod config;
pub mod deliver;
pub mod digest;
pub(crate) mod email;
pub mod email_view;
pub(crate) mod error;
pub(crate) mod graph_mail;
mod http;
pub(crate) mod notifier;
pub mod render;
pub mod route;
pub(crate) mod sample;
pub(crate) mod secrets;
pub(crate) mod templates;
pub(crate) mod token;
pub mod webhook;

pub use channel::{Channel, InvalidChannels, validate};
pub use config::ChannelConfig;
pub use deliver::{Courier, DeliveryError, DeliveryReport, deliver};
pub use digest::{Capped, Counts, Digest, DigestItem, ExpiringExemption, ItemStatus, ScanInfo};
pub use error::NotifyError;
pub use graph_mail::{AccessToken, StaticToken};
pub use render::{Rendered, render};
pub use route::{Planned, plan};
