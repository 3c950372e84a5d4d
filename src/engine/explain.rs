//! The planner's decisions, on their way to the `evaluations` table.
//!
//! A plan runs inside the write that stores its fact, and may run twice (a
//! failed batch is retried write by write), so it cannot write its own
//! record there without plumbing through every write path. Instead each
//! decision goes into a bounded queue, and one task per instance writes
//! what has gathered in batches. The record is a diagnostic: when the
//! queue is full (a burst beyond what the table takes) a decision is
//! dropped and counted, never waited for, so the explainer never slows
//! ingest; a crash can lose the last batch. Decisions older than
//! `RETENTION_DAYS` are purged by the scheduler.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use tokio::sync::{mpsc, watch};

use crate::storage::{EvaluationRecord, Store};

/// How long decisions are kept.
pub const RETENTION_DAYS: i64 = 90;
/// Decisions waiting to be written at most (then new ones are dropped).
const QUEUE: usize = 50_000;
/// Decisions per write at most.
const BATCH: usize = 2_000;

/// Where the planner sends its decisions.
#[derive(Clone)]
pub struct EvalSink {
    tx: mpsc::Sender<EvaluationRecord>,
    /// Decisions sent (written or dropped).
    submitted: Arc<AtomicU64>,
    /// Decisions dropped because the queue was full.
    dropped: Arc<AtomicU64>,
    /// Decisions handled (written, failed to write, or dropped).
    done: watch::Receiver<u64>,
    done_tx: Arc<watch::Sender<u64>>,
}

impl EvalSink {
    /// Starts the writing task on the current runtime.
    pub fn start(store: Store) -> EvalSink {
        let (tx, mut rx) = mpsc::channel::<EvaluationRecord>(QUEUE);
        let (done_tx, done) = watch::channel(0u64);
        let done_tx = Arc::new(done_tx);
        let writer_done = done_tx.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                if let Err(e) = store.record_evaluations(&batch).await {
                    tracing::warn!(error = %e, decisions = batch.len(), "keeping the planner's decisions failed");
                }
                let n = batch.len() as u64;
                batch.clear();
                writer_done.send_modify(|d| *d += n);
            }
        });
        EvalSink { tx, submitted: Arc::default(), dropped: Arc::default(), done, done_tx }
    }

    /// Queues a decision; drops it when the queue is full.
    pub fn record(&self, r: EvaluationRecord) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(r).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.done_tx.send_modify(|d| *d += 1);
        }
    }

    /// How many decisions were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every decision queued before the call is written (or
    /// dropped).
    pub async fn settled(&self) {
        let target = self.submitted.load(Ordering::Relaxed);
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d >= target).await;
    }
}
