//! Group commit for tracked events and user property updates. Request
//! handlers hand their write to a writer and wait; the writer takes
//! everything queued, writes it in one transaction per kind, commits once
//! (one fsync on SQLite with synchronous=FULL), then answers every waiting
//! request. A request is answered only once its write is durable, and a busy
//! server commits once per batch instead of once per request.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::storage::{
    AppUserRow, DeliveryPlan, NewDelivery, PendingEvent, PendingUpdate, Store, Tracked, UserWriteError,
};

/// Largest batch per transaction.
const MAX_BATCH: usize = 2048;

enum Job {
    /// An event, the deliveries it triggers, and whether its batch may wait
    /// the commit window for company (see `Ingest::track`).
    Event(PendingEvent, Option<DeliveryPlan>, bool, oneshot::Sender<Result<Tracked, String>>),
    Update(PendingUpdate, oneshot::Sender<Result<AppUserRow, UserWriteError>>),
    Delivery(NewDelivery, oneshot::Sender<Result<bool, String>>),
}

#[derive(Clone)]
pub struct Ingest {
    store: Store,
    queue: mpsc::Sender<Job>,
    updates: mpsc::Sender<Job>,
    deliveries: mpsc::Sender<Job>,
    /// Events (and whisper deliveries) go through the writers (false: one transaction per request).
    batch_events: bool,
    /// Updates go through their writer. Never on PostgreSQL: it already
    /// flushes concurrent commits together, and a single update writer
    /// measured slower there than transactions on parallel connections
    /// (BENCHMARKS.md).
    batch_updates: bool,
}

/// A writer: takes everything queued (up to `MAX_BATCH`), writes it, repeats.
/// With a `window`, a batch whose first job may wait (a widget's event) waits
/// that long for more to join it.
fn spawn_writer(store: Store, rx: Arc<Mutex<mpsc::Receiver<Job>>>, window: Option<std::time::Duration>) {
    tokio::spawn(async move {
        loop {
            let batch = {
                let mut rx = rx.lock().await;
                let Some(first) = rx.recv().await else { return };
                if let (Some(window), Job::Event(_, _, true, _)) = (window, &first) {
                    tokio::time::sleep(window).await;
                }
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                batch
            };
            write(&store, batch).await;
        }
    });
}

impl Ingest {
    /// Starts the writers; with `group_commit` false every write is its
    /// own transaction (the benchmark's baseline). A batch whose first event
    /// is patient waits `window` for more (none if zero).
    pub fn start(store: Store, group_commit: bool, window: std::time::Duration) -> Ingest {
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 4);
        let (updates_tx, updates_rx) = mpsc::channel::<Job>(MAX_BATCH * 4);
        // Events: one writer for SQLite (one writer at a time anyway), a few
        // for PostgreSQL (whose commits can overlap). Updates on SQLite: one
        // writer (a second would only wait for the lock); on PostgreSQL they
        // go straight to the database (see `batch_updates`).
        let event_writers = match store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => 4,
        };
        let events = Arc::new(Mutex::new(rx));
        let window = (!window.is_zero()).then_some(window);
        for _ in 0..event_writers {
            spawn_writer(store.clone(), events.clone(), window);
        }
        let batch_updates = group_commit && matches!(store, Store::Sqlite(_));
        if batch_updates {
            spawn_writer(store.clone(), Arc::new(Mutex::new(updates_rx)), None);
        }
        // Deliveries get writers of their own, so a delivery never waits
        // behind the event batch that triggered it.
        let (deliveries_tx, deliveries_rx) = mpsc::channel::<Job>(MAX_BATCH * 4);
        let deliveries = Arc::new(Mutex::new(deliveries_rx));
        for _ in 0..event_writers {
            spawn_writer(store.clone(), deliveries.clone(), None);
        }
        Ingest {
            store,
            queue: tx,
            updates: updates_tx,
            deliveries: deliveries_tx,
            batch_events: group_commit,
            batch_updates,
        }
    }

    /// Queues an event, with the plan for the deliveries it triggers, and
    /// waits until both are committed (in one transaction). `found` false:
    /// no such user in the app (nothing written). `patient`: the batch may
    /// wait the commit window for more events (a widget's track, which
    /// nobody waits on but the card it may bring; an API request is not
    /// patient, as a client that waits for each answer would only be
    /// slowed down: BENCHMARKS.md).
    pub async fn track(
        &self,
        event: PendingEvent,
        plan: Option<DeliveryPlan>,
        patient: bool,
    ) -> Result<Tracked, String> {
        if !self.batch_events {
            let mut one =
                self.store.track_batch(std::slice::from_ref(&event), vec![plan]).await.map_err(|e| e.to_string())?;
            return Ok(one.pop().unwrap_or_default());
        }
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job::Event(event, plan, patient, reply)).await.map_err(|_| "the writer stopped".to_string())?;
        answer.await.map_err(|_| "the writer stopped".to_string())?
    }

    /// Queues a whisper delivery and waits until it is committed: true if
    /// it was created (false: the user already had this whisper).
    pub async fn deliver(&self, d: NewDelivery) -> Result<bool, String> {
        if !self.batch_events {
            return self.store.insert_delivery(&d).await.map_err(|e| e.to_string());
        }
        let (reply, answer) = oneshot::channel();
        self.deliveries.send(Job::Delivery(d, reply)).await.map_err(|_| "the writer stopped".to_string())?;
        answer.await.map_err(|_| "the writer stopped".to_string())?
    }

    /// Queues a user update and waits until it is committed (or refused).
    pub async fn update(&self, update: PendingUpdate) -> Result<AppUserRow, UserWriteError> {
        if !self.batch_updates {
            let u = update;
            return self
                .store
                .update_app_user(&u.app_id, &u.user_ref, &u.changes, &u.types, u.max_properties, u.now)
                .await;
        }
        let stopped = || UserWriteError::Store(crate::storage::StoreError::Db(sqlx::Error::PoolClosed));
        let (reply, answer) = oneshot::channel();
        self.updates.send(Job::Update(update, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Writes one drained batch: the events in one transaction, the updates in
/// another, then answers each request.
async fn write(store: &Store, batch: Vec<Job>) {
    let (mut events, mut event_replies, mut updates, mut update_replies) = (vec![], vec![], vec![], vec![]);
    let mut plans = vec![];
    let (mut deliveries, mut delivery_replies) = (vec![], vec![]);
    for job in batch {
        match job {
            Job::Event(e, plan, _, r) => {
                events.push(e);
                plans.push(plan);
                event_replies.push(r);
            }
            Job::Update(u, r) => {
                updates.push(u);
                update_replies.push(r);
            }
            Job::Delivery(d, r) => {
                deliveries.push(d);
                delivery_replies.push(r);
            }
        }
    }
    if !deliveries.is_empty() {
        match store.insert_deliveries_batch(&deliveries).await {
            Ok(created) => {
                for (reply, ok) in delivery_replies.into_iter().zip(created) {
                    let _ = reply.send(Ok(ok));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, deliveries = deliveries.len(), "delivery batch failed");
                for reply in delivery_replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
    if !events.is_empty() {
        match store.track_batch(&events, plans).await {
            Ok(tracked) => {
                for (reply, t) in event_replies.into_iter().zip(tracked) {
                    let _ = reply.send(Ok(t));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = events.len(), "event batch failed");
                for reply in event_replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
    if !updates.is_empty() {
        match store.update_app_users_batch(&updates).await {
            Ok(results) => {
                for (reply, result) in update_replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, updates = updates.len(), "update batch failed");
                let msg = e.to_string();
                for reply in update_replies {
                    let _ = reply.send(Err(UserWriteError::Store(crate::storage::StoreError::Db(
                        sqlx::Error::Protocol(msg.clone()),
                    ))));
                }
            }
        }
    }
}
