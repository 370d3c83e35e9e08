//! Ctrl-C and SIGTERM for a foreground testnet, caught from the moment the
//! command starts so a signal during start-up stops the nodes instead of
//! killing the launcher and orphaning them.

use std::time::Duration;

use anyhow::{Context, Result};

/// Ctrl-C (SIGINT) and SIGTERM, caught from the moment this is made.
#[derive(Debug)]
pub struct StopSignals {
    runtime: tokio::runtime::Runtime,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn listen() -> Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the signal handler")?;
        // `signal` installs the handler when called (it needs the runtime).
        let (interrupt, terminate) = runtime.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })?;
        Ok(StopSignals {
            runtime,
            interrupt,
            terminate,
        })
    }

    /// Whether either signal has arrived already.
    pub fn arrived(&mut self) -> bool {
        let StopSignals {
            runtime,
            interrupt,
            terminate,
        } = self;
        // A zero timeout still polls the future once: a pending signal counts.
        let now = |signal: &mut tokio::signal::unix::Signal| {
            runtime.block_on(async {
                tokio::time::timeout(Duration::ZERO, signal.recv())
                    .await
                    .is_ok()
            })
        };
        now(interrupt) || now(terminate)
    }

    /// Blocks until either signal arrives.
    pub fn wait(mut self) {
        let StopSignals {
            runtime,
            interrupt,
            terminate,
        } = &mut self;
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
    }
}
