//! [`run`]: the `main` of every server binary. It starts one replica in
//! a process of its own and keeps it until it stops or is told to:
//! logging, the stop signals ([`crate::termination`]), the Prometheus
//! recorder and the HTTP port ([`crate::observability`]), and the exit
//! code ([`crate::exit_code`]).

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use crate::exit_code;
use crate::observability::{self, ReadinessProbe};
use crate::replica::{ReplicaOptions, ReplicaServer, StartError};
use crate::server_flags::ServerFlags;
use crate::termination::Termination;

/// Runs server binary `server` (its name, prefixing refusals of its
/// flags): checks `options`, starts the replica with `start` on a tokio
/// runtime, serves `/metrics`, `/healthz` and `/readyz` on `flags.http`,
/// and returns the exit code once the replica stops or a stop signal
/// arrives (0 then). With `flags.probe` it only asks the server already at
/// `flags.http` whether it is up (0: it is, 1: it is not).
pub fn run<O, Started>(
    server: &'static str,
    options: ReplicaOptions,
    flags: &ServerFlags,
    start: impl FnOnce(ReplicaOptions) -> Started,
) -> ExitCode
where
    O: Send + 'static,
    Started: Future<Output = Result<ReplicaServer<O>, StartError>>,
{
    let (http, probe) = (flags.http, flags.probe);
    if probe {
        return match observability::probe_health(http) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        };
    }
    observability::init_logging();
    if let Err(message) = options.validate() {
        eprintln!("{server}: {message}");
        return ExitCode::from(exit_code::CONFIG);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts on a supported OS");
    // The runtime, whose connection tasks may still hold the database,
    // is dropped when this returns, before the process exits.
    ExitCode::from(runtime.block_on(serve(server, options, http, start)))
}

/// Starts the replica and its HTTP port, and waits; returns the exit code.
async fn serve<O, Started>(
    server: &'static str,
    options: ReplicaOptions,
    http: SocketAddr,
    start: impl FnOnce(ReplicaOptions) -> Started,
) -> u8
where
    O: Send + 'static,
    Started: Future<Output = Result<ReplicaServer<O>, StartError>>,
{
    // First, so a stop signal during start-up is acted on once started.
    let mut termination = Termination::install();
    // Before anything registers a metric: handles taken earlier would
    // record into nothing.
    let metrics = match observability::install_recorder(options.group(), options.id()) {
        Ok(metrics) => metrics,
        Err(message) => {
            tracing::error!(message, "cannot install the metrics recorder");
            return exit_code::CONFIG;
        }
    };
    let started = match bind(http).await {
        Ok(listener) => start(options).await.map(|replica| (listener, replica)),
        Err(error) => Err(error),
    };
    let (listener, mut replica) = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(%error, "cannot start the replica");
            return error.exit_code();
        }
    };
    let status = replica.handle().watch_status();
    let ready: ReadinessProbe = Arc::new(move || status.borrow().leader.is_some());
    tokio::spawn(async move {
        if let Err(error) = observability::serve(listener, metrics, ready).await {
            tracing::error!(%error, %http, "the HTTP server stopped");
        }
    });
    tracing::info!(server, %http, "serving /metrics, /healthz and /readyz");
    let stopped = tokio::select! {
        stopped = replica.wait() => Some(stopped),
        () = termination.requested() => None,
    };
    let Some(stopped) = stopped else {
        tracing::info!("termination requested, stopping");
        replica.stop();
        return 0;
    };
    stopped.log();
    stopped.exit_code()
}

/// Binds the HTTP port, so a port in use refuses the start.
async fn bind(http: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(http)
        .await
        .map_err(|source| StartError::Bind {
            address: http,
            source,
        })
}
