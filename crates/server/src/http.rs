//! The HTTP port: `/metrics` for Prometheus, `/health`, `/livez` and `/readyz`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use ballot_node::NodeStatus;

#[derive(Clone)]
struct Http {
    prometheus: PrometheusHandle,
    status: watch::Receiver<NodeStatus>,
    alive: watch::Receiver<bool>,
}

/// Why a node is or is not ready, as `/readyz` and `/health` report it.
pub fn readiness(status: &NodeStatus) -> Result<(), String> {
    if status.status.leader.is_none() {
        return Err("no leader".into());
    }
    if status.applied_index < status.status.commit_index {
        return Err(format!(
            "catching up: applied {} of {} committed entries",
            status.applied_index, status.status.commit_index
        ));
    }
    Ok(())
}

async fn metrics(State(http): State<Http>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], http.prometheus.render()).into_response()
}

async fn livez(State(http): State<Http>) -> Response {
    if *http.alive.borrow() { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "driver stopped\n") }
        .into_response()
}

async fn readyz(State(http): State<Http>) -> Response {
    if !*http.alive.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: driver stopped\n").into_response();
    }
    match readiness(&http.status.borrow()) {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response(),
    }
}

async fn health(State(http): State<Http>) -> Response {
    let status = http.status.borrow().clone();
    let verdict = if *http.alive.borrow() { readiness(&status) } else { Err("driver stopped".into()) };
    let body = serde_json::json!({
        "health": verdict.is_ok().to_string(),
        "reason": verdict.err().unwrap_or_default(),
        "node": status.status.id.to_string(),
        "role": status.status.role.to_string(),
        "leader": status.status.leader.map(|l| l.to_string()),
        "term": status.status.term,
        "commit_index": status.status.commit_index,
        "applied_index": status.applied_index,
        "consensus": status.consensus,
    });
    let code = if body["health"] == "true" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

/// Binds the HTTP port.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the endpoints until `shutdown` resolves.
///
/// # Errors
/// When serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    prometheus: PrometheusHandle,
    status: watch::Receiver<NodeStatus>,
    alive: watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(Http { prometheus, status, alive });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
