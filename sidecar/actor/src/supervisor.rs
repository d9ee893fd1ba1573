//! Runs an actor's mailbox loop and restarts the actor when a handler fails.

use std::{panic::AssertUnwindSafe, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::FutureExt;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tracing::Instrument;

use super::{Actor, ActorError, Handle};

/// When and how often a failed actor is restarted.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// The wait before each restart of a run of consecutive failures; its `max_times` is the number of
    /// restarts allowed before the supervisor gives up and the actor stops for good.
    pub backoff: ExponentialBuilder,
    /// A run this long without failure starts the backoff (and the restart count) over.
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    /// 100 ms doubling up to 30 s, at most 10 restarts in a row, reset after a minute of health.
    fn default() -> Self {
        Self {
            backoff: ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(30))
                .with_factor(2.0)
                .with_max_times(10),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// What the supervisor is doing with its actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorStatus {
    /// Handling messages.
    Running,
    /// A handler failed; the actor is being rebuilt (restart number `attempt` of the current run).
    Restarting {
        /// Restarts in the current run of failures.
        attempt: u32,
    },
    /// Every handle was dropped: a graceful stop.
    Stopped,
    /// The actor failed more often than its policy allows and stopped for good: the node is unhealthy.
    GaveUp,
}

/// Starts an actor built by `factory` under a supervisor with a mailbox of `capacity` messages.
///
/// The factory builds the first instance (its error is returned here) and every replacement after a
/// failure (a replacement that fails to build counts as a failed restart). The returned task ends when
/// every handle is dropped (graceful shutdown: queued messages are handled first) or when the actor runs
/// out of restarts.
pub fn spawn<A, F>(
    mut factory: F,
    capacity: usize,
    policy: RestartPolicy,
) -> Result<(Handle<A::Message>, JoinHandle<()>), ActorError>
where
    A: Actor,
    F: FnMut() -> Result<A, ActorError> + Send + 'static,
{
    let actor = factory()?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let (status_tx, status) = watch::channel(SupervisorStatus::Running);
    let task = tokio::spawn(supervise(actor, factory, rx, policy, status_tx));
    Ok((Handle { name: A::NAME, tx, status }, task))
}

async fn supervise<A, F>(
    mut actor: A,
    mut factory: F,
    mut rx: mpsc::Receiver<A::Message>,
    policy: RestartPolicy,
    status: watch::Sender<SupervisorStatus>,
) where
    A: Actor,
    F: FnMut() -> Result<A, ActorError> + Send + 'static,
{
    let name = A::NAME;
    let depth = metrics::gauge!("alys_actor_mailbox_depth", "actor" => name);
    let latency = metrics::histogram!("alys_actor_handle_seconds", "actor" => name);
    let restarts = metrics::counter!("alys_actor_restarts_total", "actor" => name);
    let failures = metrics::counter!("alys_actor_failures_total", "actor" => name);
    let gave_up = metrics::gauge!("alys_actor_stopped", "actor" => name);
    gave_up.set(0.0);

    let mut backoff = policy.backoff.build();
    let mut attempt = 0u32;
    let mut healthy_since = tokio::time::Instant::now();
    tracing::debug!(target: "alys::actor", actor = name, "started");

    while let Some(message) = rx.recv().await {
        depth.set(rx.len() as f64);
        let started = tokio::time::Instant::now();
        let span = tracing::debug_span!(target: "alys::actor", "handle", actor = name);
        let outcome = AssertUnwindSafe(actor.handle(message).instrument(span)).catch_unwind().await;
        latency.record(started.elapsed().as_secs_f64());

        let mut reason = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error.reason,
            Err(panic) => panic_message(panic.as_ref()),
        };
        if healthy_since.elapsed() >= policy.reset_after {
            backoff = policy.backoff.build();
            attempt = 0;
        }
        loop {
            failures.increment(1);
            let Some(delay) = backoff.next() else {
                tracing::error!(target: "alys::actor", actor = name, %reason, restarts = attempt, "out of restarts; stopping");
                gave_up.set(1.0);
                status.send_replace(SupervisorStatus::GaveUp);
                return;
            };
            attempt += 1;
            status.send_replace(SupervisorStatus::Restarting { attempt });
            tracing::warn!(target: "alys::actor", actor = name, %reason, attempt, ?delay, "handler failed; restarting");
            tokio::time::sleep(delay).await;
            restarts.increment(1);
            match factory() {
                Ok(fresh) => {
                    actor = fresh;
                    break;
                }
                Err(error) => reason = format!("restart failed: {}", error.reason),
            }
        }
        status.send_replace(SupervisorStatus::Running);
        healthy_since = tokio::time::Instant::now();
    }
    status.send_replace(SupervisorStatus::Stopped);
    tracing::debug!(target: "alys::actor", actor = name, "all handles dropped; stopped");
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(|| "panicked".to_owned(), |msg| format!("panicked: {msg}"))
}
