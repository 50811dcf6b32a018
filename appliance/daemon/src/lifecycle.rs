//! The daemon's lifecycle towards systemd: READY, WATCHDOG, STOPPING, and
//! the signals that end it.
//!
//! The watchdog is fed only while every pipeline stage's heartbeat is fresh
//! ([`safe_yolo_telemetry::Liveness`]): a stalled pipeline stops the pings,
//! systemd kills and restarts the daemon, and the "healthy" output drops
//! before that, so a PLC sees the fault at once.

use std::time::{Duration, Instant};

use safe_yolo_telemetry::{Liveness, Metrics};
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Talks to systemd's notify socket, when there is one.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// Enabled when `NOTIFY_SOCKET` is set (the daemon runs as a
    /// `Type=notify` unit, or under a test harness).
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }

    /// Every subsystem is up.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Feeds the watchdog.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// Updates the one-line status `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// How often to feed the watchdog: half of `WATCHDOG_USEC`, when systemd
/// asks for a watchdog for this very process (`WATCHDOG_PID` matches).
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// Watches the pipeline's heartbeats until `shutdown`: feeds the systemd
/// watchdog while all are fresh, and reports the health on every check
/// through `on_health` (the outputs' "healthy" line follows it, and drops by
/// itself when these reports stop).
pub async fn monitor(
    notifier: Notifier,
    liveness: Liveness,
    metrics: Metrics,
    stall_timeout: Duration,
    on_health: impl Fn(bool) + Send + 'static,
    shutdown: CancellationToken,
) {
    let wd = watchdog_interval();
    // Check at least every 500 ms so the healthy output drops promptly.
    let period = wd.map_or(Duration::from_millis(500), |w| {
        w.min(Duration::from_millis(500))
    });
    let mut last_ping: Option<Instant> = None;
    let mut healthy = true;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        match liveness.check(now, stall_timeout) {
            Ok(()) => {
                if !healthy {
                    tracing::info!("pipeline recovered; watchdog pings resume");
                    notifier.status("running");
                    healthy = true;
                    metrics.pipeline_stalled.set(0);
                }
                // Every check is a heartbeat for the "healthy" output.
                on_health(true);
                if let Some(wd) = wd
                    && last_ping.is_none_or(|t| now.duration_since(t) >= wd)
                {
                    notifier.watchdog();
                    last_ping = Some(now);
                }
            }
            Err(stale) => {
                if healthy {
                    tracing::error!(stages = %stale, "pipeline stalled: watchdog pings stop, healthy output drops");
                    notifier.status(&format!("STALLED: {stale}"));
                    healthy = false;
                    metrics.pipeline_stalled.set(1);
                }
                on_health(false);
            }
        }
    }
}

/// Resolves with the name of the first SIGTERM or SIGINT.
pub async fn termination_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
