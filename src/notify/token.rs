//! Where graph-mail channels get their access token.

use std::sync::Arc;

use crate::config::LoadedConfig;
use crate::source::config::{ProcessEnvironment, ResolvedSource};
use crate::source::graph::http_client;
use crate::source::token::{TokenSource, token_source};

use super::NotifyError;
use super::config::ChannelKind;
use super::graph_mail::TokenFuture;
use super::{AccessToken, Channel, StaticToken};

/// A bearer token for graph-mail channels, taking precedence over the
/// source's app registration (see docs/notifications.md).
pub(crate) const GRAPH_TOKEN_ENV: &str = "GROUPWARDEN_GRAPH_TOKEN";

/// Where graph-mail channels get their token: `GROUPWARDEN_GRAPH_TOKEN`
/// if set, else the credential of the `[source]` (or of the Azure
/// environment variables) that fetches the report: its app registration
/// or its managed identity.
pub(crate) fn graph_token(
    channels: &[Channel],
    loaded: &LoadedConfig,
) -> Result<Option<Arc<dyn AccessToken>>, NotifyError> {
    if let Ok(token) = std::env::var(GRAPH_TOKEN_ENV) {
        return Ok(Some(Arc::new(StaticToken(token.into()))));
    }
    if !channels
        .iter()
        .any(|c| c.config().kind == ChannelKind::GraphMail)
    {
        return Ok(None);
    }
    let source = loaded.config.source.clone().unwrap_or_default();
    let needs = |e: crate::source::error::SourceError| {
        NotifyError::Setup(format!(
            "graph-mail sends with the app registration of [source], which is not usable: {e}"
        ))
    };
    let settings = match source
        .resolve(None, &ProcessEnvironment, &|path| loaded.resolve(path))
        .map_err(needs)?
    {
        ResolvedSource::Graph(settings) => settings,
        ResolvedSource::File(_) => return Ok(None),
    };
    // The source's own credential: an app registration or a managed identity.
    let credentials =
        token_source(http_client(&settings).map_err(needs)?, &settings).map_err(needs)?;
    Ok(Some(Arc::new(SourceToken(Arc::from(credentials)))))
}

/// The source's (blocking) token source as graph-mail's [`AccessToken`].
struct SourceToken(Arc<dyn TokenSource>);

impl AccessToken for SourceToken {
    fn graph_token(&self) -> TokenFuture<'_> {
        let source = Arc::clone(&self.0);
        Box::pin(async move {
            // The source's HTTP client blocks: keep it off the async thread.
            match tokio::task::spawn_blocking(move || source.token()).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(join_error) => Err(format!("the token request did not finish: {join_error}")),
            }
        })
    }
}
