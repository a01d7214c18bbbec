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

use crate::core::NodeId;

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

/// Installs the process-wide Prometheus recorder of replica `node` of
/// `group` (see [`recorder_builder`]), and describes the raft metrics.
///
/// # Errors
/// A message if the recorder cannot be built or another one is installed.
pub fn install_recorder(group: u64, node: NodeId) -> Result<PrometheusHandle, String> {
    let handle = recorder_builder(group, node)?
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    crate::metrics::describe();
    Ok(handle)
}

/// Returns the recorder of replica `node` of `group`: latency buckets
/// exponential from 100 µs, and `group` and `node` labels on every series
/// (a series' own labels win, so a process serving several replicas
/// labels each series with its own).
///
/// # Errors
/// A message if the buckets are refused.
pub fn recorder_builder(group: u64, node: NodeId) -> Result<PrometheusBuilder, String> {
    let buckets: Vec<f64> = (0..16).map(|i| 0.0001 * 2f64.powi(i)).collect();
    Ok(PrometheusBuilder::new()
        .set_buckets(&buckets)
        .map_err(|error| format!("invalid histogram buckets: {error}"))?
        .add_global_label("group", group.to_string())
        .add_global_label("node", node.0.to_string()))
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

/// Serves the router on `listener` until the process ends.
///
/// # Errors
/// The I/O error that ended serving.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    ready: ReadinessProbe,
) -> std::io::Result<()> {
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

/// Asks the server process at `address` whether it is up (`GET /healthz`
/// answered 200 within two seconds); prints why not (`--probe`).
pub fn probe_health(address: SocketAddr) -> bool {
    match http_get(&address.to_string(), "/healthz", Duration::from_secs(2)) {
        Ok(response)
            if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") =>
        {
            true
        }
        Ok(response) => {
            eprintln!(
                "{address}/healthz: {}",
                response.lines().next().unwrap_or("no answer")
            );
            false
        }
        Err(error) => {
            eprintln!("{address}/healthz: {error}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every series of a server carries `group` and `node`, whether the code
    // that records it names them or not; a series' own labels win.
    #[test]
    fn every_series_carries_group_and_node() {
        let recorder = recorder_builder(0, NodeId(2))
            .expect("builder")
            .build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("unlabelled_total").increment(1);
            metrics::counter!("labelled_total", "node" => "5", "op" => "join").increment(1);
        });
        let body = recorder.handle().render();
        assert!(
            body.contains("unlabelled_total{group=\"0\",node=\"2\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("labelled_total{group=\"0\",node=\"5\",op=\"join\"} 1"),
            "{body}"
        );
    }
}
