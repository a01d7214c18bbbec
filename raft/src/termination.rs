//! How a server process learns it should stop: SIGTERM (`docker stop`,
//! systemd, the local cluster script) or SIGINT (Ctrl-C). A server that
//! hears one stops its node, whose thread closes the database, and exits
//! with status 0; what it acknowledged was already durable, so stopping
//! this way loses nothing a crash would not, and skips the recovery work
//! a crash leaves for the next start.

/// Resolves when the process receives SIGTERM or SIGINT.
///
/// # Panics
/// Panics outside a tokio runtime with signal handling, or if the
/// handlers cannot be installed (the OS refused: nothing sensible to do).
pub async fn requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.expect("a Ctrl-C handler");
    }
}

/// Sends SIGTERM to `child` and waits, at most `deadline`, for it to exit;
/// returns its exit status. For supervisors and tests of server
/// processes. The signal goes through the shell's `kill` (std sends only
/// SIGKILL, and this crate has no unsafe code).
///
/// # Errors
/// The I/O error of running `sh` or of waiting; `TimedOut` if the child
/// is still running at the deadline (it is left running).
pub fn terminate_and_wait(
    child: &mut std::process::Child,
    deadline: std::time::Duration,
) -> std::io::Result<std::process::ExitStatus> {
    use std::io::{Error, ErrorKind};
    let sent = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()?;
    if !sent.success() {
        return Err(Error::other(format!(
            "kill -TERM {} failed: {sent}",
            child.id()
        )));
    }
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() >= deadline {
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "process {} still running {deadline:?} after SIGTERM",
                    child.id()
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
