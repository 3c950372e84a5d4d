//! The in-app channel: who is connected to this server instance. Each open
//! widget registers
//! under its app user, with a small bounded inbox of frames to send. A push
//! is serialised once and shared by every connection of the user.
//!
//! An inbox is a mutex-guarded deque and a `Notify`: an idle connection's
//! inbox allocates nothing beyond its own small record (a channel would keep
//! a block of slots per connection), which matters at tens of thousands of
//! open widgets.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use tokio::sync::Notify;

/// Frames waiting for a slow connection. A connection that falls this far
/// behind is dropped (its socket closes, the widget reconnects and resumes
/// from the database), so one stuck client never holds memory for long.
pub const QUEUE: usize = 16;

pub type Frame = Arc<str>;

/// One connection's frames to send.
#[derive(Default)]
pub struct Inbox {
    frames: Mutex<VecDeque<Frame>>,
    ready: Notify,
    /// Dropped by the hub (fell behind): the connection should close.
    dropped: AtomicBool,
}

impl Inbox {
    /// The next frame; `None` once the hub has dropped this connection and
    /// every frame queued before has been taken.
    pub async fn recv(&self) -> Option<Frame> {
        loop {
            if let Some(f) = self.frames.lock().ok().and_then(|mut q| q.pop_front()) {
                return Some(f);
            }
            if self.dropped.load(Ordering::Acquire) {
                return None;
            }
            // A push between the check and here leaves a permit: no wakeup is lost.
            self.ready.notified().await;
        }
    }

    /// Queues a frame; false (and nothing queued) when the inbox is full.
    fn offer(&self, frame: Frame) -> bool {
        let Ok(mut q) = self.frames.lock() else { return false };
        if q.len() >= QUEUE {
            return false;
        }
        q.push_back(frame);
        drop(q);
        self.ready.notify_one();
        true
    }

    fn drop_connection(&self) {
        self.dropped.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

struct Conn {
    id: u64,
    inbox: Arc<Inbox>,
}

/// How many groups the open widgets' heartbeats are spread over.
const BEAT_PHASES: usize = 25;

pub struct Hub {
    users: Mutex<HashMap<String, Vec<Conn>>>,
    next: AtomicU64,
    closing: tokio::sync::watch::Sender<bool>,
    /// The heartbeat, in `BEAT_PHASES` channels: each ticks once per
    /// period, one after the other, so the open widgets' pings are spread
    /// over the period instead of all waking at once (which stalled every
    /// card in flight: BENCHMARKS.md). A channel's value turns true when the
    /// server starts stopping (so an open widget waits on one channel for
    /// both).
    heartbeat: Vec<tokio::sync::watch::Sender<bool>>,
    /// Bumped whenever a connection leaves, so a caller can wait for a
    /// user to be gone (`departures`) instead of polling.
    departures: tokio::sync::watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            users: Mutex::default(),
            next: AtomicU64::new(0),
            closing: tokio::sync::watch::Sender::new(false),
            heartbeat: (0..BEAT_PHASES).map(|_| tokio::sync::watch::Sender::new(false)).collect(),
            departures: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Hub {
    /// The server is stopping: every open widget connection closes.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
        for beat in &self.heartbeat {
            beat.send_replace(true);
        }
    }

    /// Changes every `period` while the server runs: each open widget
    /// pings its client on it and checks it heard from it lately. Its value
    /// is true once the server is stopping. `conn` picks the phase
    /// (connection ids are sequential).
    pub fn heartbeat(&self, conn: u64) -> tokio::sync::watch::Receiver<bool> {
        self.heartbeat[(conn % BEAT_PHASES as u64) as usize].subscribe()
    }

    /// Starts the shared heartbeat: one timer for every connection, ticking
    /// each phase in turn, so every widget hears it once per `period`.
    pub fn start_heartbeat(self: &Arc<Self>, period: std::time::Duration) {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut phase = 0;
            let mut tick = tokio::time::interval(period / BEAT_PHASES as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                if *hub.closing.borrow() {
                    return;
                }
                hub.heartbeat[phase].send_modify(|_| ());
                phase = (phase + 1) % BEAT_PHASES;
            }
        });
    }

    /// Resolves when the server starts stopping.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

impl Hub {
    /// Registers a connection of `app_user_id`; frames pushed to the user
    /// arrive in the inbox until `leave` (or an overflow drops it).
    pub fn join(&self, app_user_id: &str) -> (u64, Arc<Inbox>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::default());
        if let Ok(mut users) = self.users.lock() {
            users.entry(app_user_id.to_string()).or_default().push(Conn { id, inbox: inbox.clone() });
        }
        (id, inbox)
    }

    /// `join`, unless the user already has `max` connections here (`None`).
    pub fn try_join(&self, app_user_id: &str, max: usize) -> Option<(u64, Arc<Inbox>)> {
        let mut users = self.users.lock().ok()?;
        let conns = users.entry(app_user_id.to_string()).or_default();
        if conns.len() >= max {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::default());
        conns.push(Conn { id, inbox: inbox.clone() });
        Some((id, inbox))
    }

    pub fn leave(&self, app_user_id: &str, id: u64) {
        if let Ok(mut users) = self.users.lock() {
            if let Some(conns) = users.get_mut(app_user_id) {
                conns.retain(|c| c.id != id);
                if conns.is_empty() {
                    users.remove(app_user_id);
                }
            }
        }
        self.departures.send_modify(|n| *n += 1);
    }

    /// Changes each time a connection leaves: `wait_for` on it waits for a
    /// condition on the open connections without polling.
    pub fn departures(&self) -> tokio::sync::watch::Receiver<u64> {
        self.departures.subscribe()
    }

    /// Queues `frame` for every connection of the user; returns how many
    /// took it. A connection whose inbox is full is dropped.
    pub fn push(&self, app_user_id: &str, frame: Frame) -> usize {
        let Ok(mut users) = self.users.lock() else { return 0 };
        let Some(conns) = users.get_mut(app_user_id) else { return 0 };
        let mut reached = 0;
        conns.retain(|c| {
            if c.inbox.offer(frame.clone()) {
                reached += 1;
                true
            } else {
                tracing::warn!(user = %app_user_id, "a widget connection fell behind; dropping it");
                c.inbox.drop_connection();
                false
            }
        });
        if conns.is_empty() {
            users.remove(app_user_id);
        }
        reached
    }

    pub fn is_online(&self, app_user_id: &str) -> bool {
        self.users.lock().map(|u| u.contains_key(app_user_id)).unwrap_or(false)
    }

    /// The users with a widget open on this instance.
    pub fn online_users(&self) -> Vec<String> {
        self.users.lock().map(|u| u.keys().cloned().collect()).unwrap_or_default()
    }

    /// Open connections on this instance.
    pub fn connections(&self) -> usize {
        self.users.lock().map(|u| u.values().map(Vec::len).sum()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushes_reach_every_connection_of_the_user_only() {
        let hub = Hub::default();
        let (a1, r1) = hub.join("u1");
        let (_a2, r2) = hub.join("u1");
        let (_b, r3) = hub.join("u2");
        assert_eq!(hub.push("u1", Arc::from("hello")), 2);
        assert_eq!(&*r1.recv().await.unwrap(), "hello");
        assert_eq!(&*r2.recv().await.unwrap(), "hello");
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), r3.recv()).await.is_err());
        hub.leave("u1", a1);
        assert_eq!(hub.push("u1", Arc::from("again")), 1);
        assert_eq!(hub.connections(), 2);
        assert_eq!(hub.push("nobody", Arc::from("x")), 0);
    }

    #[tokio::test]
    async fn a_waiting_connection_wakes_on_push() {
        let hub = Arc::new(Hub::default());
        let (_id, inbox) = hub.join("u1");
        let waiter = tokio::spawn(async move { inbox.recv().await });
        tokio::task::yield_now().await;
        assert_eq!(hub.push("u1", Arc::from("late")), 1);
        assert_eq!(waiter.await.unwrap().as_deref(), Some("late"));
    }

    #[tokio::test]
    async fn a_connection_that_falls_behind_is_dropped() {
        let hub = Hub::default();
        let (_id, inbox) = hub.join("u1");
        for _ in 0..QUEUE {
            assert_eq!(hub.push("u1", Arc::from("x")), 1);
        }
        assert_eq!(hub.push("u1", Arc::from("overflow")), 0);
        assert!(!hub.is_online("u1"));
        // What was queued is still delivered, then the inbox ends.
        for _ in 0..QUEUE {
            assert!(inbox.recv().await.is_some());
        }
        assert!(inbox.recv().await.is_none());
    }
}
