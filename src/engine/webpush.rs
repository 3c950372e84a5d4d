//! The push channel: in-app cards (whispers that ask for it, manual
//! messages sent "also as push") reach users who are not online as Web
//! Push notifications.
//!
//! A new delivery that may go out as a push gets a job in `push_jobs`, due
//! after a grace period (`PushChannel::grace_ms`). A widget open on any
//! instance takes the card first (it becomes `sent`); a job whose card is
//! still pending when it runs means the user was not there, and it goes to
//! each of the user's subscribed browsers (`push::Pusher`: RFC 8291
//! encryption, VAPID). The first browser that accepts it makes the card
//! `sent`, via push; a 404/410 forgets that subscription; 429/5xx and
//! network errors retry with backoff. Jobs are rows, claimed like the email
//! worker's (held for a window, `SKIP LOCKED` on PostgreSQL), so several
//! instances share them and a crash retries.

use std::sync::Arc;

use futures_util::{stream, StreamExt};

use super::{
    push::{PushMessage, PushOutcome, Pusher, Subscription, Urgency, VapidKeys},
    ActionError, Engine,
};
use crate::storage::{
    manual::ManualRow,
    push::{PushJob, PushKind, PushSubscriptionRow},
    DeliveryRow,
};

/// Jobs claimed per round.
const PUSH_BATCH: i64 = 50;
/// Notifications in flight at once.
const PUSH_CONCURRENCY: usize = 8;
/// How long a claimed job is held (a worker that dies mid-send leaves it
/// to be retried after this).
pub const PUSH_WINDOW_MS: i64 = 2 * 60_000;
/// Waits before each retry; past the last, the job is dropped (the card
/// stays in-app, for the user's next visit).
pub const PUSH_BACKOFF_MS: [i64; 4] = [30_000, 2 * 60_000, 10 * 60_000, 60 * 60_000];
/// How long a push service keeps a notification for an offline browser.
const PUSH_TTL_SECONDS: u32 = 24 * 3600;
/// The longest notification text.
const BODY_CHARS: usize = 180;

/// Opens an app's sealed VAPID private key: `(app id, sealed)` → the 32-byte key.
pub type OpenKeyFn = Box<dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// What the push channel needs from the server.
pub struct PushChannel {
    pub pusher: Pusher,
    pub open_key: OpenKeyFn,
    /// How long a new card waits for an open widget before it goes out as a push.
    pub grace_ms: i64,
    /// Tests only: subscriptions may name http and loopback addresses (the
    /// same flag the `pusher` was made with).
    pub allow_local_http: bool,
}

/// The default grace period.
pub const PUSH_GRACE_MS: i64 = 10_000;

/// The notification a service worker shows (`widget/push-sw.js`).
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Notification {
    pub title: String,
    pub body: String,
    /// One notification per card (a retry replaces, never doubles).
    pub tag: String,
    /// The customer's page, with the messenger asked to open on the card.
    pub url: String,
}

/// A card's text without markup: tags dropped, the entities the template
/// engine writes turned back into characters, runs of space folded, cut to
/// `BODY_CHARS`.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&");
    let folded = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() > BODY_CHARS {
        let mut cut: String = folded.chars().take(BODY_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        folded
    }
}

/// The notification for a stored card (`planner::Card` as JSON) sent to a
/// browser subscribed on `page_url`.
pub fn notification(card_json: &str, delivery_id: &str, page_url: &str) -> Notification {
    let card: serde_json::Value = serde_json::from_str(card_json).unwrap_or_default();
    let title = card["sender"]["name"].as_str().unwrap_or("New message").to_string();
    let body = plain_text(card["html"].as_str().unwrap_or_default());
    let base = page_url.split('#').next().unwrap_or_default();
    Notification { title, body, tag: delivery_id.to_string(), url: format!("{base}#murmur-open={delivery_id}") }
}

impl Engine {
    /// Wires the push channel (at start; a test may replace it).
    pub fn set_push(&self, channel: PushChannel) {
        if let Ok(mut slot) = self.push.write() {
            *slot = Some(Arc::new(channel));
        }
    }

    /// Whether subscriptions may name http and local addresses (tests only).
    pub fn push_allows_local(&self) -> bool {
        self.push_channel().is_some_and(|c| c.allow_local_http)
    }

    fn push_channel(&self) -> Option<Arc<PushChannel>> {
        self.push.read().ok().and_then(|c| c.clone())
    }

    /// After new whisper cards are stored and offered to the widgets open
    /// here: queue a push job for each one still unsent whose whisper asks
    /// for push (only users with a subscribed browser get a job).
    pub(super) async fn queue_whisper_push(&self, delivered: &[DeliveryRow], sent_here: &[bool]) {
        let Some(channel) = self.push_channel() else { return };
        let now = self.now();
        let jobs: Vec<(String, String, String)> = delivered
            .iter()
            .zip(sent_here)
            .filter(|(d, here)| d.sent_at.is_none() && !**here)
            .filter_map(|(d, _)| {
                let app = self.planner.push_app_of(&d.whisper_id)?;
                Some((d.id.clone(), app, d.app_user_id.clone()))
            })
            .collect();
        if let Err(e) = self.store.queue_push(PushKind::Whisper, &jobs, now + channel.grace_ms, now).await {
            tracing::error!(error = %e, "could not queue push notifications");
        }
    }

    /// A manual message's recipients are fixed: if it asks for push, queue
    /// a job for each in-app card still pending (one statement).
    pub(super) async fn queue_manual_push(&self, m: &ManualRow) {
        let Some(channel) = self.push_channel() else { return };
        if !m.push {
            return;
        }
        let now = self.now();
        if let Err(e) = self.store.queue_message_push(&m.id, now + channel.grace_ms, now).await {
            tracing::error!(error = %e, message = %m.id, "could not queue push notifications");
        }
    }

    /// Runs every push job due now, in rounds, until none is left; returns
    /// how many cards went out by push. Without a push channel, nothing.
    pub async fn run_push(&self) -> Result<usize, ActionError> {
        let Some(channel) = self.push_channel() else { return Ok(0) };
        let mut pushed = 0;
        loop {
            let jobs = self.store.claim_push_jobs(self.now(), PUSH_WINDOW_MS, PUSH_BATCH).await?;
            if jobs.is_empty() {
                return Ok(pushed);
            }
            let claimed = jobs.len() as i64;
            let results: Vec<Result<bool, ActionError>> = stream::iter(jobs)
                .map(|job| {
                    let channel = channel.clone();
                    async move { self.push_job(&channel, &job).await }
                })
                .buffer_unordered(PUSH_CONCURRENCY)
                .collect()
                .await;
            for r in results {
                pushed += usize::from(r?);
            }
            if claimed < PUSH_BATCH {
                return Ok(pushed);
            }
        }
    }

    /// One job: true if the card went out by push.
    async fn push_job(&self, channel: &PushChannel, job: &PushJob) -> Result<bool, ActionError> {
        let id = job.delivery_id.as_str();
        // The card, if it is still waiting for its user.
        let (card, message) = match job.kind.as_str() {
            "whisper" => match self.store.delivery(id).await? {
                Some(d) if d.sent_at.is_none() && d.state == "pending" => (d.rendered, None),
                _ => return self.push_done(id).await,
            },
            _ => match self.store.pending_message_delivery(id).await? {
                Some(message_id) => match self.render_message_card(&message_id, &job.app_user_id).await? {
                    Some(rendered) => (rendered.clone(), Some(rendered)),
                    None => return self.push_done(id).await,
                },
                None => return self.push_done(id).await,
            },
        };
        let Some(keys) = self.vapid_keys(channel, &job.app_id).await? else { return self.push_done(id).await };
        let subscriptions = self.store.push_subscriptions_of(&job.app_user_id).await?;
        if subscriptions.is_empty() {
            return self.push_done(id).await;
        }
        let now = self.now();
        let mut delivered = false;
        let mut retry_after: Option<i64> = None;
        let mut retry = false;
        for s in &subscriptions {
            match self.push_one(channel, &keys, s, &card, id, now).await {
                PushOutcome::Delivered => delivered = true,
                PushOutcome::Gone => {
                    tracing::info!(subscription = %s.id, "a push subscription is gone; forgetting it");
                    self.store.remove_push_subscription(&s.id).await?;
                }
                PushOutcome::Retry { after_ms, reason } => {
                    tracing::warn!(delivery = %id, attempt = job.attempts, reason = %reason, "a push will be retried");
                    retry = true;
                    retry_after = retry_after.max(after_ms);
                }
                PushOutcome::Rejected(reason) => {
                    tracing::warn!(delivery = %id, subscription = %s.id, reason = %reason, "a push service refused a notification");
                }
            }
        }
        if delivered {
            let now = self.now();
            match message {
                None => self.store.mark_whisper_pushed(id, now).await?,
                Some(rendered) => self.store.mark_message_pushed(id, &rendered, now).await?,
            };
            self.push_done(id).await?;
            self.metrics.deliveries_sent(crate::metrics::Channel::Push, 1);
            return Ok(true);
        }
        match PUSH_BACKOFF_MS.get(job.attempts.max(1) as usize - 1) {
            Some(wait) if retry => {
                let at = self.now() + (*wait).max(retry_after.unwrap_or(0));
                self.store.push_job_retry(id, at).await?;
                Ok(false)
            }
            _ => self.push_done(id).await,
        }
    }

    async fn push_one(
        &self,
        channel: &PushChannel,
        keys: &VapidKeys,
        s: &PushSubscriptionRow,
        card: &str,
        delivery_id: &str,
        now: i64,
    ) -> PushOutcome {
        let note = notification(card, delivery_id, &s.page_url);
        let message = PushMessage {
            payload: serde_json::to_vec(&note).unwrap_or_default(),
            ttl_seconds: PUSH_TTL_SECONDS,
            urgency: Urgency::Normal,
            topic: None,
        };
        let sub = Subscription { endpoint: s.endpoint.clone(), p256dh: s.p256dh.clone(), auth: s.auth.clone() };
        channel.pusher.send(keys, &sub, &message, now).await
    }

    async fn push_done(&self, delivery_id: &str) -> Result<bool, ActionError> {
        self.store.push_job_done(delivery_id).await?;
        Ok(false)
    }

    /// The app's VAPID keys if push is on.
    async fn vapid_keys(&self, channel: &PushChannel, app_id: &str) -> Result<Option<VapidKeys>, ActionError> {
        let Some(settings) = self.store.push_settings(app_id).await? else { return Ok(None) };
        let (true, Some(sealed)) = (settings.enabled, settings.private_enc) else { return Ok(None) };
        let Some(private) = (channel.open_key)(app_id, &sealed) else {
            tracing::error!(app = %app_id, "the app's VAPID key could not be opened");
            return Ok(None);
        };
        Ok(VapidKeys::from_private(&private))
    }

    /// A manual message's card for one user, rendered as the widget would.
    async fn render_message_card(&self, message_id: &str, app_user_id: &str) -> Result<Option<String>, ActionError> {
        let Some(m) = self.store.manual_by_id(message_id).await? else { return Ok(None) };
        let Some(user) = self.store.users_by_ids(&[app_user_id.to_string()]).await?.pop() else { return Ok(None) };
        let live = self.planner.whispers(&self.store, &user.app_id).await?;
        Ok(Some(super::send::render_card(&m, &live.personal_values(&user))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_becomes_a_notification_of_plain_text() {
        let card = r#"{"sender":{"name":"Ann Lee","initials":"AL"},"html":"<p>Hi &lt;Bo&gt;, <strong>50%</strong> off &amp; more</p>","buttons":[]}"#;
        let n = notification(card, "d1", "https://shop.example/cart?x=1#old");
        assert_eq!(n.title, "Ann Lee");
        assert_eq!(n.body, "Hi <Bo>, 50% off & more");
        assert_eq!(n.tag, "d1");
        assert_eq!(n.url, "https://shop.example/cart?x=1#murmur-open=d1");
    }

    #[test]
    fn long_text_is_cut() {
        let long = format!("<p>{}</p>", "word ".repeat(100));
        let t = plain_text(&long);
        assert_eq!(t.chars().count(), BODY_CHARS);
        assert!(t.ends_with('…'));
    }
}
