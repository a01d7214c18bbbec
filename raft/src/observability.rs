//! The HTTP side of every server process (DESIGN.md "Processes, ports,
//! observability"): `/metrics` in Prometheus text format, `/healthz`
//! (the process is up) and `/readyz` (the node knows a leader, so it can
//! serve or redirect requests), plus the Prometheus recorder install and
//! the log subscriber every server binary starts with, and [`http_get`],
//! the client side for tools and tests.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Decides whether the process is ready to serve.
pub type ReadinessProbe = Arc<dyn Fn() -> bool + Send + Sync>;

/// Installs the process's log subscriber: one line per event on stderr,
/// filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and `docker logs` get
        // plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Installs the process-wide Prometheus recorder with exponential
/// latency buckets from 100 µs, and describes the raft metrics.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    let buckets: Vec<f64> = (0..16).map(|i| 0.0001 * 2f64.powi(i)).collect();
    let handle = PrometheusBuilder::new()
        .set_buckets(&buckets)
        .map_err(|error| format!("invalid histogram buckets: {error}"))?
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    crate::metrics::describe();
    Ok(handle)
}

/// Returns the router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(handle: PrometheusHandle, ready: ReadinessProbe) -> Router {
    Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route("/healthz", get(|| std::future::ready("ok\n")))
        .route(
            "/readyz",
            get(move || {
                let answer = if ready() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "no leader known\n")
                };
                std::future::ready(answer)
            }),
        )
}

/// Serves the router on `address` until the process ends.
pub async fn serve(
    address: SocketAddr,
    handle: PrometheusHandle,
    ready: ReadinessProbe,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, router(handle, ready)).await
}

/// Fetches `path` (`/metrics`, `/healthz`, `/readyz`) from the HTTP port of
/// a server process at `address` (`host:port`) with one HTTP/1.0 GET, and
/// returns the whole response: status line, headers and body. For tools
/// and tests; each read or write waits at most `timeout`.
///
/// # Errors
/// The I/O error if the process cannot be reached or stops answering.
pub fn http_get(address: &str, path: &str, timeout: Duration) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
