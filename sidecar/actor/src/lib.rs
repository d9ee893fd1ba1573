//! The actor runtime of the Alys node: typed handles, bounded mailboxes and a supervisor that restarts
//! failed actors.
//!
//! Every long-lived component of the node (the chain, later the bridge and the network) is an actor: it
//! owns its state, takes typed messages from a bounded mailbox and is reached through a cloneable
//! [`Handle`]. Nothing is shared behind locks between components, so each one's state changes in one
//! place, one message at a time, and a slow component shows up as a growing mailbox, not as contention.
//!
//! An actor owns its state and handles one message at a time. The supervisor owns the mailbox, so a
//! restart loses only the message whose handling failed: messages queued behind it are handled by the new
//! instance. A handler fails by returning an error or by panicking; the supervisor then builds a fresh
//! actor from its factory after an exponential backoff, up to a maximum number of restarts, and records
//! each restart in metrics. Per actor it records mailbox depth, handling latency and restarts.

mod supervisor;

/// Registers the help text of the supervisor's per-actor metrics (label `actor`) with the installed
/// recorder.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("alys_actor_mailbox_depth", "Messages waiting in an actor's mailbox");
    describe_histogram!(
        "alys_actor_handle_seconds",
        Unit::Seconds,
        "Time an actor takes to handle one message"
    );
    describe_counter!("alys_actor_restarts_total", "Times the supervisor rebuilt an actor after a failure");
    describe_counter!("alys_actor_failures_total", "Messages whose handling failed (an error or a panic)");
    describe_gauge!(
        "alys_actor_stopped",
        "1 when the supervisor gave up restarting the actor (the node reports unhealthy), else 0"
    );
}

pub use supervisor::{RestartPolicy, SupervisorStatus, spawn};

use std::future::Future;

use tokio::sync::{mpsc, oneshot, watch};

/// A component that owns its state and handles messages one at a time.
pub trait Actor: Send + 'static {
    /// The messages the actor takes.
    type Message: Send + 'static;

    /// The actor's name, used in logs, spans and metric labels.
    const NAME: &'static str;

    /// Handles one message. An error (or a panic) makes the supervisor restart the actor.
    fn handle(&mut self, message: Self::Message) -> impl Future<Output = Result<(), ActorError>> + Send;
}

/// Why an actor's handler failed; the supervisor restarts the actor on any of these.
#[derive(Debug, thiserror::Error)]
#[error("{actor} failed: {reason}")]
pub struct ActorError {
    /// The actor's name.
    pub actor: &'static str,
    /// What went wrong.
    pub reason: String,
}

impl ActorError {
    /// An error of `actor` with a reason.
    pub fn new(actor: &'static str, reason: impl std::fmt::Display) -> Self {
        Self { actor, reason: reason.to_string() }
    }
}

/// Why a message could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The actor stopped for good: shut down, or out of restarts.
    #[error("actor {0} has stopped")]
    Stopped(&'static str),
    /// The mailbox is full (only from [`Handle::try_send`]).
    #[error("actor {0} mailbox is full")]
    Full(&'static str),
    /// The actor dropped the reply channel without answering (its handler failed).
    #[error("actor {0} did not reply")]
    NoReply(&'static str),
}

/// A cloneable handle to an actor's bounded mailbox.
#[derive(Debug)]
pub struct Handle<M> {
    name: &'static str,
    tx: mpsc::Sender<M>,
    status: watch::Receiver<SupervisorStatus>,
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Self { name: self.name, tx: self.tx.clone(), status: self.status.clone() }
    }
}

impl<M: Send + 'static> Handle<M> {
    /// The actor's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Sends a message, waiting for room in the mailbox.
    pub async fn send(&self, message: M) -> Result<(), SendError> {
        self.tx.send(message).await.map_err(|_| SendError::Stopped(self.name))
    }

    /// Sends a message if the mailbox has room now.
    pub fn try_send(&self, message: M) -> Result<(), SendError> {
        self.tx.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full(self.name),
            mpsc::error::TrySendError::Closed(_) => SendError::Stopped(self.name),
        })
    }

    /// Sends a message built around a reply channel and waits for the reply.
    pub async fn ask<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> M) -> Result<R, SendError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| SendError::NoReply(self.name))
    }

    /// Whether the actor has stopped for good.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// What the supervisor is doing with the actor (running, restarting, or stopped for good), for
    /// health checks.
    pub fn status(&self) -> SupervisorStatus {
        *self.status.borrow()
    }

    /// Messages waiting in the mailbox.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}
