//! Group commit for tracked events. Request handlers hand their event to a
//! writer and wait; the writer takes everything queued, writes it in one
//! transaction, commits once (one fsync on SQLite with synchronous=FULL),
//! then answers every waiting request. A request is answered only once its
//! event is durable, and a busy server commits once per batch instead of
//! once per request.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::storage::{PendingEvent, Store};

/// Largest batch per transaction.
const MAX_BATCH: usize = 2048;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<(PendingEvent, Reply)>,
}

impl Ingest {
    /// Starts the writers: one for SQLite (one writer at a time anyway),
    /// a few for PostgreSQL (whose commits can overlap).
    pub fn start(store: Store) -> Ingest {
        let (tx, rx) = mpsc::channel::<(PendingEvent, Reply)>(MAX_BATCH * 4);
        let rx = Arc::new(Mutex::new(rx));
        let writers = match store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => 4,
        };
        for _ in 0..writers {
            let (store, rx) = (store.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    let (events, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    match store.insert_events_batch(&events).await {
                        Ok(found) => {
                            for (reply, ok) in replies.into_iter().zip(found) {
                                let _ = reply.send(Ok(ok));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, events = events.len(), "event batch failed");
                            for reply in replies {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            });
        }
        Ingest { queue: tx }
    }

    /// Queues an event and waits until it is committed. `Ok(false)`: no
    /// such user in the app (nothing written).
    pub async fn track(&self, event: PendingEvent) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((event, reply)).await.map_err(|_| "the event writer stopped".to_string())?;
        answer.await.map_err(|_| "the event writer stopped".to_string())?
    }
}
