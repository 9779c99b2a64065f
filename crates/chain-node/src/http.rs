//! The HTTP port: the JSON API `ballot chain` uses, `/metrics`, `/health`, `/livez` and
//! `/readyz`.
//!
//! Why HTTP/JSON and not the QUIC client protocol of the other services: an open
//! network has no cluster CA, so the client protocol's mutual TLS would have no trust
//! anchor; chain data is public; transfers are signed by the CLI, so no secret crosses
//! the wire; and JSON over the port that already serves `/metrics` is what operators
//! script with `curl`. The port listens on loopback by default; expose only what you
//! mean to (the ban endpoints are operator commands, like Bitcoin's RPC `setban`).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use ballot_ledger::SignedTransfer;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{ApiError, ApiErrorBody, BanRequest, SubmitTx, Submitted};
use crate::node::{Api, ApiFailure, Health};

#[derive(Clone)]
struct Http {
    api: mpsc::Sender<Api>,
    prometheus: PrometheusHandle,
    health: watch::Receiver<Health>,
    alive: watch::Receiver<bool>,
}

fn json(code: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (code, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

fn error(code: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    json(code, &ApiError { error: ApiErrorBody { kind: kind.into(), message: message.into() } })
}

fn failure(f: ApiFailure) -> Response {
    match f {
        ApiFailure::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid", m),
        ApiFailure::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", m),
    }
}

fn stopped() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the node is stopping")
}

/// Sends a request to the event loop and waits (bounded) for its answer.
async fn ask<T>(http: &Http, make: impl FnOnce(oneshot::Sender<T>) -> Api) -> Result<T, Response> {
    let (tx, rx) = oneshot::channel();
    http.api.send(make(tx)).await.map_err(|_| stopped())?;
    match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(stopped()),
        Err(_) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the node did not answer in 30 s")),
    }
}

fn answer<T: Serialize>(r: Result<Result<T, ApiFailure>, Response>) -> Response {
    match r {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(f)) => failure(f),
        Err(resp) => resp,
    }
}

async fn tip(State(h): State<Http>) -> Response {
    answer(ask(&h, Api::Tip).await.map(Ok::<_, ApiFailure>))
}

async fn block(State(h): State<Http>, Path(id): Path<String>) -> Response {
    answer(ask(&h, |tx| Api::Block(id, tx)).await)
}

async fn tx(State(h): State<Http>, Path(id): Path<String>) -> Response {
    answer(ask(&h, |tx| Api::Tx(id, tx)).await)
}

async fn account(State(h): State<Http>, Path(key): Path<String>) -> Response {
    answer(ask(&h, |tx| Api::Account(key, tx)).await)
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

async fn submit(State(h): State<Http>, body: String) -> Response {
    let request: SubmitTx = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid", format!("expected {{\"tx\": \"<hex>\"}}: {e}")),
    };
    let Some(bytes) = parse_hex(&request.tx) else {
        return error(StatusCode::BAD_REQUEST, "invalid", "tx is not hex");
    };
    let transfer: SignedTransfer = match ballot_wire::Codec::new(64 * 1024).decode(&bytes) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid", format!("tx is not a signed transfer: {e}")),
    };
    answer(
        ask(&h, |tx| Api::Submit(Box::new(transfer), tx)).await.map(|r| r.map(|id| Submitted { id: id.to_string() })),
    )
}

async fn peers(State(h): State<Http>) -> Response {
    answer(ask(&h, Api::Peers).await.map(Ok::<_, ApiFailure>))
}

async fn mempool(State(h): State<Http>) -> Response {
    answer(ask(&h, Api::Mempool).await.map(Ok::<_, ApiFailure>))
}

async fn verify(State(h): State<Http>) -> Response {
    let input = match ask(&h, Api::Verify).await {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    let report = tokio::task::spawn_blocking(move || {
        let crate::node::VerifyInput { params, blocks, ledger, problems } = input;
        let (mut report, chain) = crate::store::replay(params, blocks.into_iter().map(|b| (*b).clone()))?;
        if chain.ledger() != &ledger {
            report.problems.push("the replayed ledger differs from the node's".into());
        }
        report.problems.extend(problems);
        Ok::<_, crate::Error>(report)
    })
    .await;
    match report {
        Ok(Ok(report)) => json(StatusCode::OK, &report),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    }
}

async fn bans(State(h): State<Http>) -> Response {
    answer(ask(&h, Api::Bans).await.map(Ok::<_, ApiFailure>))
}

async fn ban(State(h): State<Http>, body: String) -> Response {
    match serde_json::from_str::<BanRequest>(&body) {
        Ok(r) => answer(ask(&h, |tx| Api::Ban(r.target, r.seconds, tx)).await),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid", format!("expected {{\"target\", \"seconds\"}}: {e}")),
    }
}

async fn unban(State(h): State<Http>, Path(target): Path<String>) -> Response {
    answer(ask(&h, |tx| Api::Unban(target, tx)).await)
}

async fn metrics(State(h): State<Http>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.prometheus.render()).into_response()
}

/// Ready: the loop runs, and the node is connected (or runs alone, without seeds) and
/// has no blocks left to download.
fn readiness(h: &Http) -> Result<(), String> {
    if !*h.alive.borrow() {
        return Err("the event loop stopped".into());
    }
    let health = h.health.borrow();
    if health.seeds > 0 && health.peers == 0 {
        return Err("no peers".into());
    }
    if health.syncing > 0 {
        return Err(format!("syncing: {} blocks to download", health.syncing));
    }
    Ok(())
}

async fn livez(State(h): State<Http>) -> Response {
    if *h.alive.borrow() { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "event loop stopped\n") }
        .into_response()
}

async fn readyz(State(h): State<Http>) -> Response {
    match readiness(&h) {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()).into_response(),
        Err(r) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {r}\n")).into_response(),
    }
}

async fn health(State(h): State<Http>) -> Response {
    let verdict = readiness(&h);
    let status = h.health.borrow().clone();
    let body = serde_json::json!({
        "health": verdict.is_ok().to_string(),
        "reason": verdict.as_ref().err().cloned().unwrap_or_default(),
        "height": status.height,
        "peers": status.peers,
        "syncing_blocks": status.syncing,
    });
    json(if verdict.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

/// Serves until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    api: mpsc::Sender<Api>,
    prometheus: PrometheusHandle,
    health: watch::Receiver<Health>,
    alive: watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(self::health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/v1/tip", get(tip))
        .route("/v1/block/{id}", get(block))
        .route("/v1/tx", post(submit))
        .route("/v1/tx/{id}", get(tx))
        .route("/v1/account/{key}", get(account))
        .route("/v1/peers", get(peers))
        .route("/v1/mempool", get(mempool))
        .route("/v1/verify", get(verify))
        .route("/v1/bans", get(bans))
        .route("/v1/ban", post(ban))
        .route("/v1/ban/{target}", delete(unban))
        .with_state(Http { api, prometheus, health, alive });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
