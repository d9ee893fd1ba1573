//! Runs an actor's mailbox loop and restarts the actor when a handler fails.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures::FutureExt;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::Instrument;

use super::{Actor, ActorError, Handle};

/// When and how often a failed actor is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Backoff before the first restart.
    pub min_backoff: Duration,
    /// Largest backoff; each consecutive failure doubles it up to this.
    pub max_backoff: Duration,
    /// Restarts allowed before the supervisor gives up and the actor stops for good.
    pub max_restarts: u32,
    /// A run this long without failure resets the backoff and the restart count.
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_restarts: 10,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// The backoff before restart number `attempt` (1-based): `min * 2^(attempt-1)`, capped at `max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.min_backoff.saturating_mul(factor).min(self.max_backoff)
    }
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
    let task = tokio::spawn(supervise(actor, factory, rx, policy));
    Ok((Handle { name: A::NAME, tx }, task))
}

async fn supervise<A, F>(
    mut actor: A,
    mut factory: F,
    mut rx: mpsc::Receiver<A::Message>,
    policy: RestartPolicy,
) where
    A: Actor,
    F: FnMut() -> Result<A, ActorError> + Send + 'static,
{
    let name = A::NAME;
    let depth = metrics::gauge!("alys_actor_mailbox_depth", "actor" => name);
    let latency = metrics::histogram!("alys_actor_handle_seconds", "actor" => name);
    let restarts = metrics::counter!("alys_actor_restarts_total", "actor" => name);
    let failures = metrics::counter!("alys_actor_failures_total", "actor" => name);

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
            attempt = 0;
        }
        loop {
            failures.increment(1);
            attempt += 1;
            if attempt > policy.max_restarts {
                tracing::error!(target: "alys::actor", actor = name, %reason, restarts = attempt - 1, "out of restarts; stopping");
                return;
            }
            let backoff = policy.backoff(attempt);
            tracing::warn!(target: "alys::actor", actor = name, %reason, attempt, ?backoff, "handler failed; restarting");
            tokio::time::sleep(backoff).await;
            restarts.increment(1);
            match factory() {
                Ok(fresh) => {
                    actor = fresh;
                    break;
                }
                Err(error) => reason = format!("restart failed: {}", error.reason),
            }
        }
        healthy_since = tokio::time::Instant::now();
    }
    tracing::debug!(target: "alys::actor", actor = name, "all handles dropped; stopped");
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(|| "panicked".to_owned(), |msg| format!("panicked: {msg}"))
}
