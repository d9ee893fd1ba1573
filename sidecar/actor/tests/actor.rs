//! The supervisor restarts failed actors, keeps their queued messages, and gives up after its limit.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use alys_actor::{self as actor, Actor, ActorError, RestartPolicy, SendError, SupervisorStatus};
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::oneshot;

enum Msg {
    Add(u64, oneshot::Sender<u64>),
    Panic,
    Fail,
}

struct Counter {
    total: u64,
}

impl Actor for Counter {
    type Message = Msg;
    const NAME: &'static str = "counter";

    async fn handle(&mut self, message: Msg) -> Result<(), ActorError> {
        match message {
            Msg::Add(n, reply) => {
                self.total += n;
                let _ = reply.send(self.total);
                Ok(())
            }
            Msg::Panic => panic!("boom"),
            Msg::Fail => Err(ActorError::new(Self::NAME, "failed on purpose")),
        }
    }
}

fn policy(max_restarts: usize) -> RestartPolicy {
    RestartPolicy {
        backoff: ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_millis(40))
            .with_max_times(max_restarts),
        reset_after: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn panicking_handler_is_restarted_and_queued_messages_survive() {
    let builds = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&builds);
    let (handle, _task) = actor::spawn(
        move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Counter { total: 0 })
        },
        16,
        policy(5),
    )
    .unwrap();
    assert_eq!(handle.ask(|r| Msg::Add(2, r)).await.unwrap(), 2);
    handle.send(Msg::Panic).await.unwrap();
    // Queued behind the panic: handled by the fresh instance, whose state starts over.
    let after = handle.ask(|r| Msg::Add(5, r)).await.unwrap();
    assert_eq!(after, 5);
    handle.send(Msg::Fail).await.unwrap();
    assert_eq!(handle.ask(|r| Msg::Add(1, r)).await.unwrap(), 1);
    assert_eq!(builds.load(Ordering::SeqCst), 3, "first instance plus two restarts");
}

#[tokio::test]
async fn supervisor_gives_up_after_max_restarts() {
    let (handle, task) = actor::spawn(|| Ok(Counter { total: 0 }), 16, policy(2)).unwrap();
    for _ in 0..3 {
        handle.send(Msg::Fail).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("supervisor stops").unwrap();
    assert!(handle.is_closed());
    assert_eq!(handle.status(), SupervisorStatus::GaveUp, "health checks learn the actor is gone");
    assert_eq!(handle.send(Msg::Fail).await, Err(SendError::Stopped("counter")));
    assert!(matches!(handle.ask(|r| Msg::Add(1, r)).await, Err(SendError::Stopped(_))));
}

#[tokio::test]
async fn mailbox_is_bounded_and_shutdown_is_graceful() {
    let (handle, task) = actor::spawn(|| Ok(Counter { total: 0 }), 1, policy(1)).unwrap();
    let (r1, rx1) = oneshot::channel();
    let (r2, _rx2) = oneshot::channel();
    // Fill the single slot before the actor task gets to run.
    handle.try_send(Msg::Add(1, r1)).unwrap();
    assert_eq!(handle.try_send(Msg::Add(1, r2)).unwrap_err(), SendError::Full("counter"));
    let watcher = handle.clone();
    drop(handle);
    assert_eq!(rx1.await.unwrap(), 1, "queued message handled before shutdown");
    drop(watcher);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops when handles drop").unwrap();
}

#[tokio::test]
async fn a_failing_rebuild_counts_as_a_failed_restart() {
    let builds = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&builds);
    let (handle, task) = actor::spawn(
        move || match counted.fetch_add(1, Ordering::SeqCst) {
            0 | 3 => Ok(Counter { total: 0 }),
            _ => Err(ActorError::new("counter", "resource unavailable")),
        },
        16,
        policy(5),
    )
    .unwrap();
    handle.send(Msg::Fail).await.unwrap();
    // Builds 1 and 2 fail, build 3 succeeds: the message queued behind the failure is served.
    assert_eq!(handle.ask(|r| Msg::Add(4, r)).await.unwrap(), 4);
    assert_eq!(builds.load(Ordering::SeqCst), 4);
    drop(handle);
    task.await.unwrap();
    assert!(actor::spawn(|| Err::<Counter, _>(ActorError::new("counter", "no")), 1, policy(1)).is_err());
}

#[test]
fn default_backoff_doubles_is_capped_and_limits_restarts() {
    // backon computes in f32: compare in whole milliseconds.
    let delays: Vec<u128> = RestartPolicy::default().backoff.build().map(|d| d.as_millis()).collect();
    assert_eq!(delays.len(), 10, "ten restarts in a row, then the supervisor gives up");
    assert_eq!(delays[..4], [100, 200, 400, 800]);
    assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*delays.last().unwrap(), 30_000);
}
