//! The running appliance as a stack of started subsystems, stopped in reverse.
//!
//! Start-up pushes each subsystem's stop on the stack as soon as the subsystem
//! runs, so a failure half-way (`?`) and an orderly shutdown unwind the same
//! way: the last started stops first, and the outputs, started first so every
//! line is in its safe state before anything can raise an alarm, stop last.
//!
//! Shutdown has a time budget (`system.shutdown_timeout_s`). Stops marked
//! [`Bound::Budget`] share it: one that overruns is abandoned with a warning and
//! the next one starts with what is left (nothing, once it is spent). A stop
//! marked [`Bound::Own`] has a limit of its own outside the budget (the store
//! committing its queue); [`Bound::Always`] runs to completion (the outputs'
//! safe state: whatever else is slow, the lines go safe).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

type StopFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long a stop may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Shares the shutdown budget with the other budgeted stops.
    Budget,
    /// Has this long, whatever is left of the budget.
    Own(Duration),
    /// Runs to completion.
    Always,
}

struct Entry {
    name: &'static str,
    bound: Bound,
    stop: StopFuture,
}

/// Started subsystems, in start order.
pub struct Stack {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.name))
            .finish()
    }
}

/// What became of one stop, in stop order (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The subsystem.
    pub name: &'static str,
    /// It finished within its bound.
    pub in_time: bool,
}

impl Stack {
    /// An empty stack.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Pushes the stop of a subsystem that now runs.
    pub fn push(
        &mut self,
        name: &'static str,
        bound: Bound,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        self.entries.push(Entry {
            name,
            bound,
            stop: Box::pin(stop),
        });
    }

    /// Pushes a task that only needs aborting.
    pub fn push_task(&mut self, name: &'static str, task: tokio::task::JoinHandle<()>) {
        self.push(name, Bound::Budget, async move {
            task.abort();
            let _ = task.await;
        });
    }

    /// Stops everything, last started first, within `budget` (see the module
    /// documentation for the bounds).
    pub async fn unwind(self, budget: Duration) -> Vec<Stopped> {
        let deadline = Instant::now() + budget;
        let mut report = Vec::with_capacity(self.entries.len());
        for entry in self.entries.into_iter().rev() {
            let in_time = match entry.bound {
                Bound::Always => {
                    entry.stop.await;
                    true
                }
                Bound::Own(limit) => tokio::time::timeout(limit, entry.stop).await.is_ok(),
                Bound::Budget => tokio::time::timeout_at(deadline, entry.stop).await.is_ok(),
            };
            if in_time {
                tracing::debug!(subsystem = entry.name, "stopped");
            } else {
                tracing::warn!(
                    subsystem = entry.name,
                    budget_s = budget.as_secs_f64(),
                    "did not stop in time; abandoned"
                );
            }
            report.push(Stopped {
                name: entry.name,
                in_time,
            });
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    fn log_stop(
        log: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
        takes: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let log = Arc::clone(log);
        async move {
            tokio::time::sleep(takes).await;
            log.lock().push(name);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stops_run_last_started_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stack = Stack::new();
        stack.push(
            "outputs",
            Bound::Always,
            log_stop(&log, "outputs", Duration::ZERO),
        );
        stack.push(
            "store",
            Bound::Own(Duration::from_secs(2)),
            log_stop(&log, "store", Duration::ZERO),
        );
        stack.push(
            "pipeline",
            Bound::Budget,
            log_stop(&log, "pipeline", Duration::ZERO),
        );
        stack.push("api", Bound::Budget, log_stop(&log, "api", Duration::ZERO));
        let report = stack.unwind(Duration::from_secs(5)).await;
        assert_eq!(*log.lock(), ["api", "pipeline", "store", "outputs"]);
        assert!(report.iter().all(|s| s.in_time), "{report:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stop_spends_the_budget_but_the_outputs_still_go_safe() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stack = Stack::new();
        stack.push(
            "outputs",
            Bound::Always,
            log_stop(&log, "outputs", Duration::from_secs(30)),
        );
        stack.push(
            "store",
            Bound::Own(Duration::from_secs(2)),
            log_stop(&log, "store", Duration::from_secs(1)),
        );
        stack.push(
            "pipeline",
            Bound::Budget,
            log_stop(&log, "pipeline", Duration::from_millis(1)),
        );
        stack.push(
            "analysis",
            Bound::Budget,
            log_stop(&log, "analysis", Duration::from_secs(60)),
        );
        let report = stack.unwind(Duration::from_secs(5)).await;
        // The analysis overran the budget: abandoned. The pipeline came after
        // the budget was spent: abandoned too. The store has its own limit and
        // the outputs always finish.
        assert_eq!(*log.lock(), ["store", "outputs"]);
        assert_eq!(
            report,
            [
                Stopped {
                    name: "analysis",
                    in_time: false
                },
                Stopped {
                    name: "pipeline",
                    in_time: false
                },
                Stopped {
                    name: "store",
                    in_time: true
                },
                Stopped {
                    name: "outputs",
                    in_time: true
                },
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_own_limit_is_kept_even_with_budget_left() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stack = Stack::new();
        stack.push(
            "store",
            Bound::Own(Duration::from_secs(2)),
            log_stop(&log, "store", Duration::from_secs(3)),
        );
        let report = stack.unwind(Duration::from_secs(60)).await;
        assert!(log.lock().is_empty());
        assert_eq!(
            report,
            [Stopped {
                name: "store",
                in_time: false
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_task_stops_at_once() {
        let mut stack = Stack::new();
        let task = tokio::spawn(std::future::pending::<()>());
        stack.push_task("stats", task);
        let report = stack.unwind(Duration::from_secs(1)).await;
        assert_eq!(
            report,
            [Stopped {
                name: "stats",
                in_time: true
            }]
        );
    }
}
