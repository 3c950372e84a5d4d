//! The writer: every write on the delivery path (tracked events, user
//! updates and app launches, messages, delivery states, and the deliveries
//! each of them causes) is handed to it as a job. It takes everything
//! queued, writes each kind in one transaction, commits (one fsync on
//! SQLite with synchronous=FULL), then answers every waiting request: a
//! request is answered only once its write is durable, and a busy server
//! commits once per batch instead of once per request.
//!
//! The writers run on a thread and a runtime of their own. SQLite: one
//! writer for every kind, so writes never wait for each other's lock (no
//! busy-timeout sleeps), and its WAL is checkpointed beside it
//! (`engine::checkpoints`). PostgreSQL: a few writers share the queue (their
//! commits overlap) with a pool of their own, and user updates go straight
//! to the database (measured faster there: BENCHMARKS.md).
//!
//! One bad row never fails the rest of its batch: a batch that fails as a
//! whole is retried job by job, so only the job at fault gets the error.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot, Mutex};

use super::checkpoints::{self, Checkpoints};
use crate::metrics::{Channel, Commit, Metrics};
use crate::storage::{
    lock_user_ids, AppUserRow, DeliveryPlan, DeliveryRow, NewDelivery, PendingEvent, PendingMessage, PendingUpdate,
    PostedMessage, Reaction, Store, StoreError, Tracked, UpdatePlan, UserIds, UserWriteError, WidgetUser,
};

/// Largest batch per transaction.
pub(crate) const MAX_BATCH: usize = 2048;

/// How many userIds the writers remember the murmur ids of (`UserIds`;
/// some 110–220 bytes each with the bench's userIds, BENCHMARKS.md). Past
/// it, they forget them all and start again.
pub(crate) const WRITER_USER_IDS: usize = 1 << 20;

/// The REST API's events in flight are bounded by an adaptive gate
/// (`engine::admission`): at most one full batch, less while admitted
/// events wait too long. Beyond it the REST API sheds them (503 with
/// `Retry-After`) instead of letting the queue, and every request's wait,
/// grow without bound under overload.
pub use super::admission::{Admission, MAX_ADMITTED_EVENTS};

/// A write that failed in the database (its message; the cause is logged).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct WriteFailed(pub Arc<str>);

impl From<&StoreError> for WriteFailed {
    fn from(e: &StoreError) -> Self {
        WriteFailed(Arc::from(e.to_string()))
    }
}

type Reply<T> = oneshot::Sender<Result<T, WriteFailed>>;

/// One delivery-state report from a widget.
#[derive(Debug, Clone)]
pub struct React {
    pub app_user_id: String,
    pub delivery_id: String,
    pub reaction: Reaction,
    pub now: i64,
}

enum Job {
    /// An event, the deliveries it triggers, and whether its batch may wait
    /// the commit window for company (see `Writer::track`).
    Event(PendingEvent, Option<DeliveryPlan>, bool, Reply<Tracked>),
    Update(PendingUpdate, Option<UpdatePlan>, Reply<UpdateResult>),
    Message(PendingMessage, Option<DeliveryPlan>, Reply<Option<PostedMessage>>),
    React(React, Reply<bool>),
    Sent(Vec<String>, i64, Reply<()>),
    Delivery(NewDelivery, Reply<bool>),
    User(WidgetUser, oneshot::Sender<Result<AppUserRow, UserFailed>>),
}

/// Why a starting widget's user could not be found or created.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserFailed {
    /// The userId is another user's murmur id.
    #[error("this userId is another user's id")]
    Taken,
    #[error(transparent)]
    Write(#[from] WriteFailed),
}

impl From<StoreError> for UserFailed {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate => UserFailed::Taken,
            e => UserFailed::Write(WriteFailed::from(&e)),
        }
    }
}

pub type UpdateResult = Result<(AppUserRow, Vec<DeliveryRow>), UserWriteError>;

#[derive(Clone)]
pub struct Writer {
    store: Store,
    queue: mpsc::Sender<Job>,
    /// Writes go through the writers (false: one transaction per request,
    /// the benchmark's baseline).
    batch: bool,
    /// Updates go through the writers. Never on PostgreSQL: it already
    /// flushes concurrent commits together, and a single update writer
    /// measured slower there than transactions on parallel connections.
    batch_updates: bool,
    metrics: Arc<Metrics>,
    /// The bound on REST API events in flight.
    admission: Arc<super::admission::Gate>,
    /// SQLite: the WAL's checkpointer's passes (it runs while they are
    /// watched).
    checkpoints: Option<Checkpoints>,
}

fn stopped() -> WriteFailed {
    WriteFailed(Arc::from("the writer stopped"))
}

/// One writer's loop: takes everything queued (up to `MAX_BATCH`), writes
/// it, repeats. With a `window`, a batch whose first job may wait (a
/// widget's event) waits that long for more to join it.
async fn write_loop(
    store: Store,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    window: Option<Duration>,
    metrics: Arc<Metrics>,
    known: Arc<std::sync::Mutex<UserIds>>,
) {
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
        write(&store, batch, &metrics, &known).await;
    }
}

/// Starts `writers` writer loops on a thread and a runtime of their own.
/// On the server's runtime each of a writer's awaits (every statement of a
/// batch) queued behind every request task, and under overload the writers
/// got a tiny share of the cores (RELIABILITY.md, "Overload"); as a thread,
/// the OS schedules them beside the runtime's workers. On PostgreSQL they
/// get a pool of their own, opened on that runtime, so that their
/// connections' wake-ups do not wait for the request runtime either.
/// Returns once the writers' store is open.
async fn spawn_writers(
    store: Store,
    writers: u32,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    window: Option<Duration>,
    metrics: Arc<Metrics>,
) -> Result<(), StoreError> {
    // What the writers remember of the users they found (shared: a user's
    // events may go through any of them), from the users the database
    // holds, read on a thread of its own while the writers start without
    // it (they find each user as it comes meanwhile).
    let known = Arc::new(std::sync::Mutex::new(UserIds::new(WRITER_USER_IDS)));
    let loading = (store.clone(), known.clone());
    std::thread::Builder::new()
        .name("murmur-user-ids".into())
        .spawn(move || {
            let (store, known) = loading;
            let read = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))
                .and_then(|runtime| runtime.block_on(store.user_ids(WRITER_USER_IDS)));
            match read {
                Ok(loaded) => {
                    let (n, dropped) = (loaded.len(), lock_user_ids(&known).adopt(loaded));
                    drop(dropped);
                    tracing::info!(users = n, "the writers know the users' ids");
                }
                Err(e) => tracing::warn!(error = %e, "reading the users' ids for the writers failed; they find each as it comes"),
            }
        })
        .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
    let (ready, opened) = oneshot::channel::<Result<(), StoreError>>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
    let work = async move {
        let store = match store.for_writer_thread(writers).await {
            Ok(store) => {
                let _ = ready.send(Ok(()));
                store
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let loops: Vec<_> = (0..writers)
            .map(|_| tokio::spawn(write_loop(store.clone(), rx.clone(), window, metrics.clone(), known.clone())))
            .collect();
        for one in loops {
            let _ = one.await;
        }
    };
    std::thread::Builder::new()
        .name("murmur-writer".into())
        .spawn(move || runtime.block_on(work))
        .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
    opened.await.map_err(|_| StoreError::Db(sqlx::Error::PoolClosed))?
}

impl Writer {
    /// Starts the writers; with `group_commit` false every write is its own
    /// transaction. A batch whose first event is patient waits `window` for
    /// more (none if zero).
    pub async fn start(
        store: Store,
        group_commit: bool,
        window: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Writer, StoreError> {
        let store = store.for_writer().await?;
        let checkpoints = checkpoints::start(&store).await?;
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 4);
        let writers = match store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => 4,
        };
        let rx = Arc::new(Mutex::new(rx));
        let window = (!window.is_zero()).then_some(window);
        if group_commit {
            spawn_writers(store.clone(), writers, rx, window, metrics.clone()).await?;
        }
        let batch_updates = group_commit && matches!(store, Store::Sqlite(_));
        let admission = Arc::new(super::admission::Gate::default());
        Ok(Writer { store, queue: tx, batch: group_commit, batch_updates, metrics, admission, checkpoints })
    }

    /// Admits `n` events from the REST API, or `None` when that would take
    /// the events in flight past the gate's bound (the caller sheds them,
    /// writing nothing). Never waits. Hold the admission until the events
    /// are answered: when it is dropped the gate learns how long they took.
    pub fn admit(&self, n: usize) -> Option<Admission> {
        self.admission.admit_at(n, Instant::now())
    }

    /// Whether the REST API's next event would be shed now (`Gate::full`):
    /// checked before a request's body is read, so that under overload a
    /// refusal costs no parsing.
    pub fn full(&self) -> bool {
        self.admission.full()
    }

    /// SQLite: the checkpointer's passes, to wait for the next one.
    pub fn checkpoints(&self) -> Option<Checkpoints> {
        self.checkpoints.clone()
    }

    /// The store the writer writes with (SQLite: its held connection).
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn send<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, WriteFailed> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(job(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stores an event and the deliveries its plan makes, in one
    /// transaction. `found` false: no such user (nothing written).
    /// `patient`: the batch may wait the commit window for more events (a
    /// widget's track; an API request is not patient, as a client that
    /// waits for each answer would only be slowed down: BENCHMARKS.md).
    pub async fn track(
        &self,
        event: PendingEvent,
        plan: Option<DeliveryPlan>,
        patient: bool,
    ) -> Result<Tracked, WriteFailed> {
        let tracked = if !self.batch {
            let mut one = self
                .store
                .track_batch(std::slice::from_ref(&event), vec![plan])
                .await
                .map_err(|e| WriteFailed::from(&e))?;
            one.pop().unwrap_or_default()
        } else {
            self.send(|r| Job::Event(event, plan, patient, r)).await?
        };
        if tracked.found && !tracked.catalog_full {
            self.metrics.events_ingested(1);
        }
        Ok(tracked)
    }

    /// Applies a user update, and stores the deliveries its plan makes on
    /// the updated row, in one transaction.
    /// The outer error: the write itself failed; the inner one: the update
    /// was refused (unknown user, type conflict, too many properties).
    pub async fn update(&self, update: PendingUpdate, plan: Option<UpdatePlan>) -> Result<UpdateResult, WriteFailed> {
        if !self.batch_updates {
            let mut one = self
                .store
                .update_app_users_batch(std::slice::from_ref(&update), vec![plan])
                .await
                .map_err(|e| WriteFailed::from(&e))?;
            return Ok(one.pop().unwrap_or(Err(UserWriteError::NotFound)));
        }
        self.send(|r| Job::Update(update, plan, r)).await
    }

    /// Stores a message (and, for a user's first, the deliveries its plan
    /// makes). `None`: no such user.
    pub async fn message(
        &self,
        m: PendingMessage,
        plan: Option<DeliveryPlan>,
    ) -> Result<Option<PostedMessage>, WriteFailed> {
        if !self.batch || matches!(self.store, Store::Postgres(_)) {
            let mut one = self
                .store
                .insert_messages_batch(std::slice::from_ref(&m), vec![plan])
                .await
                .map_err(|e| WriteFailed::from(&e))?;
            return Ok(one.pop().flatten());
        }
        self.send(|r| Job::Message(m, plan, r)).await
    }

    /// Records a widget's report on a card; false if the card is not the user's.
    pub async fn react(&self, r: React) -> Result<bool, WriteFailed> {
        if !self.batch || matches!(self.store, Store::Postgres(_)) {
            let mut one =
                self.store.react_batch(std::slice::from_ref(&r_tuple(&r))).await.map_err(|e| WriteFailed::from(&e))?;
            return Ok(one.pop().unwrap_or(false));
        }
        self.send(|reply| Job::React(r, reply)).await
    }

    /// Marks deliveries as sent (pushed to an open widget).
    pub async fn mark_sent(&self, ids: Vec<String>, now: i64) -> Result<(), WriteFailed> {
        if ids.is_empty() {
            return Ok(());
        }
        let n = ids.len();
        if !self.batch || matches!(self.store, Store::Postgres(_)) {
            self.store.mark_sent(&ids, now).await.map_err(|e| WriteFailed::from(&e))?;
        } else {
            self.send(|r| Job::Sent(ids, now, r)).await?;
        }
        self.metrics.deliveries_sent(Channel::Widget, n);
        Ok(())
    }

    /// Finds or creates a starting widget's user (batched: a storm of
    /// reconnecting widgets commits once per batch, not once per user).
    pub async fn widget_user(&self, u: WidgetUser) -> Result<AppUserRow, UserFailed> {
        if !self.batch {
            let mut one = self.store.widget_users_batch(std::slice::from_ref(&u)).await?;
            return Ok(one.pop().expect("one result per job")?);
        }
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job::User(u, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stores one delivery: true if created (false: the user had it already).
    pub async fn deliver(&self, d: NewDelivery) -> Result<bool, WriteFailed> {
        if !self.batch {
            return self.store.insert_delivery(&d).await.map_err(|e| WriteFailed::from(&e));
        }
        self.send(|r| Job::Delivery(d, r)).await
    }
}

fn r_tuple(r: &React) -> (String, String, Reaction, i64) {
    (r.app_user_id.clone(), r.delivery_id.clone(), r.reaction, r.now)
}

/// Answers every job of a kind with its result, or, if the batch failed as
/// a whole, retries each job alone so that only the one at fault fails.
macro_rules! answer_or_retry {
    ($what:literal, $result:expr, $jobs:ident, $replies:ident, |$one:ident| $retry:expr) => {
        match $result {
            Ok(results) => {
                for (reply, r) in $replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) if $jobs.len() == 1 => {
                tracing::error!(error = %e, concat!("a ", $what, " write failed"));
                for reply in $replies {
                    let _ = reply.send(Err(WriteFailed::from(&e)));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = $jobs.len(), concat!("a ", $what, " batch failed; retrying one by one"));
                for ($one, reply) in $jobs.into_iter().zip($replies) {
                    let r = match $retry.await {
                        Ok(mut v) => Ok(v.pop().expect("one result per job")),
                        Err(e) => {
                            tracing::error!(error = %e, concat!("a ", $what, " write failed"));
                            Err(WriteFailed::from(&e))
                        }
                    };
                    let _ = reply.send(r);
                }
            }
        }
    };
}

/// Writes one drained batch: each kind in its own transaction, then
/// answers each request.
async fn write(store: &Store, batch: Vec<Job>, metrics: &Metrics, known: &std::sync::Mutex<UserIds>) {
    let (mut events, mut event_plans, mut event_replies) = (vec![], vec![], vec![]);
    let (mut updates, mut update_plans, mut update_replies) = (vec![], vec![], vec![]);
    let (mut messages, mut message_plans, mut message_replies) = (vec![], vec![], vec![]);
    let (mut reacts, mut react_replies) = (vec![], vec![]);
    let (mut sent, mut sent_replies) = (vec![], vec![]);
    let (mut deliveries, mut delivery_replies) = (vec![], vec![]);
    let (mut users, mut user_replies) = (vec![], vec![]);
    for job in batch {
        match job {
            Job::Event(e, plan, _, r) => {
                events.push(e);
                event_plans.push(plan);
                event_replies.push(r);
            }
            Job::Update(u, plan, r) => {
                updates.push(u);
                update_plans.push(plan);
                update_replies.push(r);
            }
            Job::Message(m, plan, r) => {
                messages.push(m);
                message_plans.push(plan);
                message_replies.push(r);
            }
            Job::React(x, r) => {
                reacts.push(r_tuple(&x));
                react_replies.push(r);
            }
            Job::Sent(ids, now, r) => {
                sent.push((ids, now));
                sent_replies.push(r);
            }
            Job::Delivery(d, r) => {
                deliveries.push(d);
                delivery_replies.push(r);
            }
            Job::User(u, r) => {
                users.push(u);
                user_replies.push(r);
            }
        }
    }
    // Users first: a widget waits for its user before anything else.
    if !users.is_empty() {
        let started = Instant::now();
        match store.widget_users_batch(&users).await {
            Ok(results) => {
                metrics.committed(Commit::Users, results.len(), started);
                for (reply, r) in user_replies.into_iter().zip(results) {
                    let _ = reply.send(r.map_err(UserFailed::from));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = users.len(), "a widget user batch failed; retrying one by one");
                for (u, reply) in users.into_iter().zip(user_replies) {
                    let r = match store.widget_users_batch(std::slice::from_ref(&u)).await {
                        Ok(mut v) => v.pop().expect("one result per job").map_err(UserFailed::from),
                        Err(e) => Err(UserFailed::from(e)),
                    };
                    let _ = reply.send(r);
                }
            }
        }
    }
    if !events.is_empty() {
        let started = Instant::now();
        let result = store.track_batch_remembering(&events, event_plans.clone(), known).await;
        if result.is_ok() {
            metrics.committed(Commit::Events, events.len(), started);
        }
        let jobs: Vec<_> = events.into_iter().zip(event_plans).collect();
        answer_or_retry!("event", result, jobs, event_replies, |e| store
            .track_batch(std::slice::from_ref(&e.0), vec![e.1]));
    }
    if !updates.is_empty() {
        let started = Instant::now();
        let result = store.update_app_users_batch(&updates, update_plans.clone()).await;
        if result.is_ok() {
            metrics.committed(Commit::Updates, updates.len(), started);
        }
        let jobs: Vec<_> = updates.into_iter().zip(update_plans).collect();
        answer_or_retry!("update", result, jobs, update_replies, |u| store
            .update_app_users_batch(std::slice::from_ref(&u.0), vec![u.1]));
    }
    if !messages.is_empty() {
        let started = Instant::now();
        let result = store.insert_messages_batch(&messages, message_plans.clone()).await;
        if result.is_ok() {
            metrics.committed(Commit::Messages, messages.len(), started);
        }
        let jobs: Vec<_> = messages.into_iter().zip(message_plans).collect();
        answer_or_retry!("message", result, jobs, message_replies, |m| store
            .insert_messages_batch(std::slice::from_ref(&m.0), vec![m.1]));
    }
    if !reacts.is_empty() {
        let started = Instant::now();
        let result = store.react_batch(&reacts).await;
        if result.is_ok() {
            metrics.committed(Commit::Reactions, reacts.len(), started);
        }
        answer_or_retry!("delivery state", result, reacts, react_replies, |r| store
            .react_batch(std::slice::from_ref(&r)));
    }
    if !sent.is_empty() {
        let all: Vec<String> = sent.iter().flat_map(|(ids, _)| ids.iter().cloned()).collect();
        let now = sent.iter().map(|(_, now)| *now).max().unwrap_or_default();
        let started = Instant::now();
        let result = store.mark_sent(&all, now).await;
        if result.is_ok() {
            metrics.committed(Commit::Sent, sent.len(), started);
        }
        for reply in sent_replies {
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(WriteFailed::from));
        }
    }
    if !deliveries.is_empty() {
        let started = Instant::now();
        let result = store.insert_deliveries_batch(&deliveries).await;
        if result.is_ok() {
            metrics.committed(Commit::Deliveries, deliveries.len(), started);
        }
        answer_or_retry!("delivery", result, deliveries, delivery_replies, |d| store
            .insert_deliveries_batch(std::slice::from_ref(&d)));
    }
}
