//! Delivery: render a planned message, send it through its channel's
//! [`Notifier`](super::notifier::Notifier), retry what is worth retrying,
//! and say what failed.
//!
//! A message that fails is reported, never dropped: the state store keeps
//! it in the outbox for the next run, and the command exits 2 after every
//! other channel was tried.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::channel::{Channel, GRAPH_URL, check_http_url};
use super::config::ChannelKind;
use super::email::{self, EmailNotifier, SmtpTransport};
use super::graph_mail::{AccessToken, GraphMailNotifier, send_mail_body, send_mail_url};
use super::notifier::{Failure, SendError, send_with_retries};
use super::render::{EmailContent, RenderError, Rendered, render};
use super::route::Planned;
use super::secrets::read_secret;
use super::webhook::{WebhookNotifier, extra_headers};

/// A planned message that was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The message names a channel the configuration no longer has (it
    /// was planned under an older configuration).
    #[error("channel `{channel}`: no such channel in the configuration")]
    UnknownChannel {
        /// The channel name the message was planned for.
        channel: String,
    },
    /// The channel's templates could not turn the message into something
    /// to send.
    #[error("channel `{channel}`: {source}")]
    Render {
        /// The channel's name.
        channel: String,
        /// What went wrong with the templates.
        source: RenderError,
    },
    /// The channel cannot send at all: a missing secret, no Graph
    /// credentials, an unusable address.
    #[error("channel `{channel}`: {message}")]
    Setup {
        /// The channel's name.
        channel: String,
        /// What is missing or wrong, for the operator.
        message: String,
    },
    /// Sending was tried and failed: refused for good, or still failing
    /// after its retries.
    #[error("channel `{channel}` to {recipient}: {}", describe(.failure))]
    Failed {
        /// The channel's name.
        channel: String,
        /// Who the message was for, as in [`Planned::recipient`].
        recipient: String,
        /// The last error and how many attempts were made.
        failure: Failure,
    },
    /// Not tried: the channel had already failed in this run in a way
    /// that would fail this message too (see [`Courier::deliver_all`]).
    #[error(
        "channel `{channel}` to {recipient}: not tried, the channel failed earlier in this run"
    )]
    Skipped {
        /// The channel's name.
        channel: String,
        /// Who the message was for, as in [`Planned::recipient`].
        recipient: String,
    },
}

fn describe(failure: &Failure) -> String {
    match &failure.error {
        SendError::Permanent { message } => format!("refused: {message}"),
        SendError::Transient { message, .. } if failure.attempts == 1 => {
            format!("failed: {message}")
        }
        SendError::Transient { message, .. } => {
            format!("gave up after {} attempts: {message}", failure.attempts)
        }
    }
}

impl DeliveryError {
    /// Whether the channel refused the message for good (an SMTP 5xx
    /// reply, an HTTP 4xx other than 408, 425 and 429): trying it again
    /// will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DeliveryError::Failed {
                failure: Failure {
                    error: SendError::Permanent { .. },
                    ..
                },
                ..
            }
        )
    }

    /// Whether the message was tried at all (not [`DeliveryError::Skipped`]).
    pub fn was_tried(&self) -> bool {
        !matches!(self, DeliveryError::Skipped { .. })
    }

    /// Sending attempts this error stands for: the retries of a failed
    /// send, none for a skipped message, one for a message that could not
    /// be rendered or set up.
    pub fn attempts(&self) -> u32 {
        match self {
            DeliveryError::Failed { failure, .. } => failure.attempts,
            DeliveryError::Skipped { .. } => 0,
            _ => 1,
        }
    }

    /// Whether the channel as a whole is unusable for now, so its other
    /// messages need not wait for the same timeouts.
    fn downs_the_channel(&self) -> bool {
        match self {
            DeliveryError::Failed { failure, .. } => {
                matches!(failure.error, SendError::Transient { .. })
            }
            _ => true,
        }
    }
}

/// What one [`Courier::deliver_all`] did, message by message.
#[derive(Debug, Default)]
pub struct DeliveryReport {
    /// One result per planned message, in the order given.
    pub results: Vec<Result<(), DeliveryError>>,
}

impl DeliveryReport {
    /// How many messages were delivered.
    pub fn delivered(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }

    /// The messages that were not delivered, and why.
    pub fn failures(&self) -> impl Iterator<Item = &DeliveryError> {
        self.results.iter().filter_map(|r| r.as_ref().err())
    }
}

/// Sends planned messages with one HTTP client; [`Courier::deliver_all`]
/// keeps one SMTP connection pool per channel for the run.
pub struct Courier {
    http: reqwest::Client,
    graph_token: Option<Arc<dyn AccessToken>>,
}

/// SMTP pools by channel name. Lives inside one async call: lettre's pool
/// spawns a task when dropped, which needs the runtime.
type SmtpPools = HashMap<String, SmtpTransport>;

impl Courier {
    /// A courier without Graph credentials (see
    /// [`Courier::with_graph_token`]); fails only when the HTTP client
    /// cannot be set up.
    pub fn new() -> Result<Courier, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("groupwarden/", env!("CARGO_PKG_VERSION")))
            // A redirect could lead a signed payload somewhere else, or to http.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Courier {
            http,
            graph_token: None,
        })
    }

    /// Where graph-mail channels get their token.
    pub fn with_graph_token(mut self, token: Arc<dyn AccessToken>) -> Courier {
        self.graph_token = Some(token);
        self
    }

    /// Delivers every planned message, going on after failures; a channel
    /// that fails for a reason other than one recipient's refusal is not
    /// tried again in this run (its messages fail as `Skipped`).
    pub async fn deliver_all(&self, channels: &[Channel], planned: &[Planned]) -> DeliveryReport {
        let mut down: BTreeSet<&str> = BTreeSet::new();
        let mut pools = SmtpPools::new();
        let mut report = DeliveryReport::default();
        for message in planned {
            if down.contains(message.channel.as_str()) {
                let skipped = DeliveryError::Skipped {
                    channel: message.channel.clone(),
                    recipient: message.recipient.clone(),
                };
                report.results.push(Err(skipped));
                continue;
            }
            let result = match channels.iter().find(|c| c.name() == message.channel) {
                Some(channel) => self.deliver_with(&mut pools, channel, message).await,
                None => Err(DeliveryError::UnknownChannel {
                    channel: message.channel.clone(),
                }),
            };
            match &result {
                Ok(()) => {
                    tracing::info!(channel = %message.channel, recipient = %message.recipient, "notification delivered")
                }
                Err(error) => {
                    tracing::error!("{error}");
                    if error.downs_the_channel() {
                        down.insert(message.channel.as_str());
                    }
                }
            }
            report.results.push(result);
        }
        report
    }

    /// Renders and sends one planned message through `channel`.
    pub async fn deliver(&self, channel: &Channel, planned: &Planned) -> Result<(), DeliveryError> {
        self.deliver_with(&mut SmtpPools::new(), channel, planned)
            .await
    }

    async fn deliver_with(
        &self,
        pools: &mut SmtpPools,
        channel: &Channel,
        planned: &Planned,
    ) -> Result<(), DeliveryError> {
        let name = channel.name();
        let setup = |message: String| DeliveryError::Setup {
            channel: name.to_owned(),
            message,
        };
        let planned = &with_delivery_id(planned);
        let delivery_id = planned.delivery_id.as_deref().unwrap_or_default();
        let rendered = render(channel, planned).map_err(|source| DeliveryError::Render {
            channel: name.to_owned(),
            source,
        })?;
        let policy = channel.config().retry_policy();
        let timeout = channel.config().timeout();
        let outcome = match (channel.config().kind, rendered) {
            (ChannelKind::Email, Rendered::Email(content)) => {
                let message = email::message(channel, &planned.recipient, &content, delivery_id)
                    .map_err(setup)?;
                let notifier = EmailNotifier {
                    transport: smtp_transport(pools, channel).map_err(setup)?,
                };
                send_with_retries(&notifier, &message, &policy, name).await
            }
            (ChannelKind::GraphMail, Rendered::Email(content)) => {
                let (notifier, body) = self
                    .graph_mail(channel, &planned.recipient, &content, timeout, delivery_id)
                    .map_err(setup)?;
                send_with_retries(&notifier, &body, &policy, name).await
            }
            (ChannelKind::Webhook, Rendered::Webhook(webhook)) => {
                let notifier = self.webhook(channel, timeout, delivery_id).map_err(setup)?;
                send_with_retries(&notifier, &webhook.body, &policy, name).await
            }
            (kind, _) => unreachable!("render() renders a {} channel as its kind", kind.as_str()),
        };
        outcome
            .map(|_attempts| ())
            .map_err(|failure| DeliveryError::Failed {
                channel: name.to_owned(),
                recipient: planned.recipient.clone(),
                failure,
            })
    }

    fn graph_mail<'a>(
        &'a self,
        channel: &Channel,
        recipients: &str,
        content: &EmailContent,
        timeout: Duration,
        delivery_id: &str,
    ) -> Result<(GraphMailNotifier<'a>, String), String> {
        let config = channel.config();
        let token = self.graph_token.as_deref().ok_or(
            "graph-mail needs Microsoft Graph credentials (the source's app registration with Mail.Send); none were given",
        )?;
        let from = config.from.as_deref().ok_or("`from` is not set")?;
        let url = send_mail_url(config.graph_url.as_deref().unwrap_or(GRAPH_URL), from)?;
        let recipients: Vec<String> = recipients
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        let body = send_mail_body(&recipients, content, delivery_id);
        Ok((
            GraphMailNotifier {
                http: &self.http,
                url,
                token,
                timeout,
            },
            body,
        ))
    }

    fn webhook(
        &self,
        channel: &Channel,
        timeout: Duration,
        delivery_id: &str,
    ) -> Result<WebhookNotifier<'_>, String> {
        let config = channel.config();
        let url = match (&config.url, &config.url_env) {
            (Some(url), _) => url.clone(),
            (None, Some(env)) => super::config::SecretUrl::new(
                secrecy::ExposeSecret::expose_secret(
                    &read_secret(Some(env), None)?.expect("an env secret or an error"),
                )
                .to_owned(),
            ),
            (None, None) => return Err("`url` is not set".into()),
        };
        let url = check_http_url(url.expose())
            .map_err(|problem| format!("webhook URL {}: {problem}", url.redacted()))?;
        let signing_key = read_secret(config.secret_env.as_deref(), channel.secret_file())?;
        let headers = extra_headers(&config.headers)?;
        Ok(WebhookNotifier {
            http: &self.http,
            url,
            headers,
            signing_key,
            timeout,
            delivery_id: delivery_id.to_owned(),
        })
    }
}

/// `planned` with a delivery id: its own (an outbox message's), or a new
/// one for a message sent straight away (`notify --digest`, `--test`),
/// kept for every attempt of this run.
fn with_delivery_id(planned: &Planned) -> Cow<'_, Planned> {
    match planned.delivery_id {
        Some(_) => Cow::Borrowed(planned),
        None => Cow::Owned(Planned {
            delivery_id: Some(fresh_delivery_id()),
            ..planned.clone()
        }),
    }
}

/// `gw-direct-<32 hex digits>`: 128 random bits, unique enough, and
/// dot-atom text, so it makes a valid `Message-ID`.
pub(crate) fn fresh_delivery_id() -> String {
    format!("gw-direct-{:032x}", fastrand::u128(..))
}

fn smtp_transport(pools: &mut SmtpPools, channel: &Channel) -> Result<SmtpTransport, String> {
    if let Some(transport) = pools.get(channel.name()) {
        return Ok(transport.clone());
    }
    let transport = email::transport(channel)?;
    pools.insert(channel.name().to_owned(), transport.clone());
    Ok(transport)
}

/// Delivers one planned message with a fresh [`Courier`] (no Graph
/// credentials). Runs must share a `Courier` instead.
pub async fn deliver(channel: &Channel, planned: &Planned) -> Result<(), DeliveryError> {
    let courier = Courier::new().map_err(|message| DeliveryError::Setup {
        channel: channel.name().to_owned(),
        message,
    })?;
    courier.deliver(channel, planned).await
}
