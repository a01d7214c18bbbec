//! How a server process learns it should stop: SIGTERM (`docker stop`,
//! systemd, the local cluster script), SIGINT (Ctrl-C) or SIGHUP (its
//! terminal closed). A server installs the handlers first thing, so a
//! signal during start-up is not lost; when one arrives it stops serving,
//! stops its node, lets the database close and exits with status 0. What
//! it acknowledged was durable before the answer, so a clean stop loses
//! nothing a crash would not; it gives an exit status that says "stopped
//! as asked" and a database closed before the process ends.

use std::io::{Error, ErrorKind};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The installed stop-signal handlers; [`Termination::requested`] resolves
/// on the first signal received since [`Termination::install`].
pub struct Termination {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 3],
}

impl Termination {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP.
    ///
    /// # Panics
    /// Panics outside a tokio runtime, or if the OS refuses a handler.
    pub fn install() -> Termination {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let handler = |kind: SignalKind| signal(kind).expect("a stop-signal handler");
            Termination {
                signals: [
                    handler(SignalKind::terminate()),
                    handler(SignalKind::interrupt()),
                    handler(SignalKind::hangup()),
                ],
            }
        }
        #[cfg(not(unix))]
        Termination {}
    }

    /// Resolves when a stop signal has arrived.
    pub async fn requested(&mut self) {
        #[cfg(unix)]
        {
            let [terminate, interrupt, hangup] = &mut self.signals;
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
                _ = hangup.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Sends SIGTERM to `child` and waits, at most `deadline`, for it to exit;
/// returns its exit status. For supervisors and tests of server
/// processes. The signal goes through the shell's `kill` (std sends only
/// SIGKILL, and this crate has no unsafe code).
///
/// # Errors
/// The I/O error of running `sh` or of waiting; `TimedOut` if the child
/// was still running at the deadline, after killing it (SIGKILL) and
/// reaping it, so no process outlives the call.
pub fn terminate_and_wait(child: &mut Child, deadline: Duration) -> std::io::Result<ExitStatus> {
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()?;
    if !sent.success() {
        return Err(Error::other(format!(
            "kill -TERM {} failed: {sent}",
            child.id()
        )));
    }
    wait_or_kill(child, deadline)
}

/// Waits, at most `deadline`, for `child` to exit by itself; returns its
/// exit status. For supervisors and tests of a server process expected to
/// stop on its own (a refusal to start, a fatal error).
///
/// # Errors
/// The I/O error of waiting; `TimedOut` if the child was still running at
/// the deadline, after killing it (SIGKILL) and reaping it, so no process
/// outlives the call.
pub fn wait_or_kill(child: &mut Child, deadline: Duration) -> std::io::Result<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() >= deadline {
            child.kill()?;
            child.wait()?;
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "process {} still running after {deadline:?} (killed)",
                    child.id()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
