//! The `[health]` endpoint: `GET /healthz` and `GET /metrics`.
//!
//! hyper's HTTP/1 server rather than a hand-written responder: it is
//! already built for reqwest, and it takes care of what a probe or a
//! scraper may send (keep-alive, `HEAD`, partial reads, oversized
//! headers).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::status::Status;

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers on `listener` until the runtime stops.
pub(crate) async fn serve(listener: TcpListener, status: Arc<Mutex<Status>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(%error, "health endpoint: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let status = status.clone();
                async move { Ok::<_, Infallible>(respond(&request, &status)) }
            });
            let connection = http1::Builder::new()
                .header_read_timeout(Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "health endpoint: connection ended with an error");
            }
        });
    }
}

fn respond(request: &Request<Incoming>, status: &Mutex<Status>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
    }
    let status = status
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match request.uri().path() {
        "/healthz" => {
            let code = if status.healthy() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut body = status.health_json().to_string();
            body.push('\n');
            with_type(code, body, "application/json")
        }
        "/metrics" => with_type(StatusCode::OK, status.prometheus_text(), PROMETHEUS_TEXT),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /healthz or /metrics\n",
        ),
    }
}

fn plain(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    with_type(code, text.to_owned(), "text/plain; charset=utf-8")
}

fn with_type(code: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
