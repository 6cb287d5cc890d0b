//! Email over SMTP with lettre: one multipart message per planned
//! message, plain text and HTML (multipart/alternative), inside
//! multipart/mixed with the CSV attachment when there is one. Headers:
//! `Message-ID` (the delivery id), `Date`, `Auto-Submitted` and `List-Id`.

use lettre::message::{Attachment, Mailbox, Mailboxes, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::Channel;
use super::config::SmtpTls;
use super::notifier::{Notifier, SendError};
use super::render::EmailContent;
use super::secrets::read_secret;

/// lettre's SMTP transport (with its connection pool), run on Tokio.
pub(crate) type SmtpTransport = AsyncSmtpTransport<Tokio1Executor>;

/// Sends emails through one channel's SMTP server.
pub(crate) struct EmailNotifier {
    /// The channel's SMTP connection (pool), set up by [`transport`].
    pub transport: SmtpTransport,
}

impl Notifier for EmailNotifier {
    type Message = Message;

    async fn send(&self, message: &Message) -> Result<(), SendError> {
        match self.transport.send(message.clone()).await {
            Ok(_) => Ok(()),
            // 5xx replies (unknown mailbox, refused login) will not change on retry.
            Err(error) if error.is_permanent() => Err(SendError::Permanent {
                message: error.to_string(),
            }),
            Err(error) => Err(SendError::transient(error.to_string())),
        }
    }
}

/// The channel's SMTP connection settings. TLS certificates are always
/// verified; plain text is only configurable for a server on this machine.
/// Must run inside a Tokio runtime (lettre's pool spawns a task).
pub(crate) fn transport(channel: &Channel) -> Result<SmtpTransport, String> {
    let config = channel.config();
    let host = config
        .smtp_host
        .as_deref()
        .ok_or("`smtp_host` is not set")?;
    let builder = match config.smtp_tls() {
        SmtpTls::Starttls => SmtpTransport::starttls_relay(host).map_err(|e| e.to_string())?,
        SmtpTls::Tls => SmtpTransport::relay(host).map_err(|e| e.to_string())?,
        SmtpTls::None => SmtpTransport::builder_dangerous(host),
    };
    let mut builder = builder
        .port(config.smtp_port.unwrap_or(config.smtp_tls().default_port()))
        .timeout(Some(config.timeout()));
    if let Some(username) = &config.username {
        let password = read_secret(config.password_env.as_deref(), channel.password_file())?
            .ok_or("`username` is set but no password is configured")?;
        builder = builder.credentials(Credentials::new(
            username.clone(),
            secrecy::ExposeSecret::expose_secret(&password).to_owned(),
        ));
    }
    Ok(builder.build())
}

/// The message for `recipients` (addresses separated by `,`), with
/// `Message-ID: <delivery id@groupwarden>`: the same on every attempt and
/// run, so a mail system (or a person's filter) can drop duplicates.
pub(crate) fn message(
    channel: &Channel,
    recipients: &str,
    content: &EmailContent,
    delivery_id: &str,
) -> Result<Message, String> {
    let from: Mailbox = channel
        .config()
        .from
        .as_deref()
        .ok_or("`from` is not set")?
        .parse()
        .map_err(|e| format!("`from`: {e}"))?;
    let to: Mailboxes = recipients
        .parse()
        .map_err(|e| format!("recipients `{recipients}`: {e}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(content.subject.clone())
        .message_id(Some(message_id(delivery_id)));
    for mailbox in to {
        builder = builder.to(mailbox);
    }
    let alternative = MultiPart::alternative_plain_html(content.text.clone(), content.html.clone());
    let body = if content.attachments.is_empty() {
        alternative
    } else {
        // multipart/mixed: the text and HTML as alternatives, then the files.
        let mut mixed = MultiPart::mixed().multipart(alternative);
        for file in &content.attachments {
            let content_type = header::ContentType::parse(file.content_type)
                .map_err(|e| format!("attachment {}: {e}", file.filename))?;
            mixed = mixed.singlepart(
                Attachment::new(file.filename.clone()).body(file.content.clone(), content_type),
            );
        }
        mixed
    };
    builder
        .date_now()
        .header(AutoSubmitted)
        .header(ListId(content.list_id.clone()))
        .multipart(body)
        .map_err(|e| e.to_string())
}

/// `<delivery id@groupwarden>`: a valid RFC 5322 msg-id as long as the
/// id is dot-atom text, which the outbox's `gw-<n>-<hex>` ids are.
pub(crate) fn message_id(delivery_id: &str) -> String {
    format!("<{delivery_id}@groupwarden>")
}

/// `List-Id` (RFC 2919): mail rules can file every message of the
/// channel together.
#[derive(Clone)]
struct ListId(String);

impl header::Header for ListId {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Id")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListId(text.to_owned()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): out-of-office replies and
/// other robots leave automatic messages alone.
#[derive(Clone)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}
