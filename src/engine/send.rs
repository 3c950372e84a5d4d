//! Manual messages through the engine: a send fixes its recipients (one
//! pending delivery per user, from SQL, chunk by chunk: see
//! `storage::manual`), then publishes. In-app: the users with a widget open
//! on any instance get the card at once (claimed `pending → sent`, so
//! nothing goes out after a stop commits); the others get it when their
//! widget next starts (`cards_for_start`). Email: a worker claims due
//! deliveries, sends them over SMTP, and retries with backoff.

use std::collections::HashMap;

use futures_util::{stream, StreamExt};

use super::{
    email::{MailError, Mailer, OutgoingMail, SmtpTarget},
    hub::Frame,
    planner::{Card, CardSender},
    ActionError, Engine, Notice,
};
use crate::{
    domain::{
        conditions::check_all,
        manual::{one_line, Audience, Kind},
        teammate::initials,
        template,
        whisper::lookup,
    },
    storage::{
        manual::{FixStep, ManualRow, PendingCard, RecipientQuery, RECIPIENT_FIRST_PARAM},
        AppUserRow, DeliveryRow,
    },
};

/// Messages whose recipients one run fixes at most.
const SENDS_PER_RUN: i64 = 20;
/// Email deliveries claimed per round.
const EMAIL_BATCH: i64 = 50;
/// How many emails are in flight at once.
const EMAIL_CONCURRENCY: usize = 8;
/// How long a claimed email is held before another attempt may start (an
/// attempt in progress when the server dies is retried after this).
pub const EMAIL_WINDOW_MS: i64 = 5 * 60_000;
/// Attempts before an email delivery is `failed`, and the wait before each retry.
pub const EMAIL_BACKOFF_MS: [i64; 4] = [60_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000];

/// What the email channel needs from the server: the SMTP client, each
/// app's settings with the password opened, and unsubscribe links.
pub struct EmailChannel {
    pub mailer: Mailer,
    pub target: super::email::TargetFn,
    /// The unsubscribe URL for (app, user).
    pub unsubscribe_url: super::email::UnsubscribeUrlFn,
}

/// A message's card for one user, serialised once.
pub(super) fn render_card(m: &ManualRow, values: &[(String, String)]) -> String {
    let segments = template::parse(&m.body).unwrap_or_default();
    let card = Card {
        sender: CardSender { initials: initials(&m.sender_name), name: m.sender_name.clone() },
        html: template::render_html(&segments, |n| lookup(values, n)),
        buttons: vec![],
    };
    serde_json::to_string(&card).unwrap_or_default()
}

impl Engine {
    /// Wires the email channel (once, at start).
    pub fn set_email(&self, channel: EmailChannel) {
        let _ = self.email.set(channel);
    }

    /// Fixes the recipients of every message due now and publishes each
    /// finished send; returns how many sends finished. Safe on several
    /// instances at once and after a crash (see `storage::manual`).
    pub async fn run_sends(&self) -> Result<usize, ActionError> {
        let now = self.now();
        let mut finished = 0;
        for id in self.store.due_sends(now, SENDS_PER_RUN).await? {
            let Some(m) = self.store.manual_by_id(&id).await? else { continue };
            let Some(query) = self.recipient_query(&m).await? else { continue };
            let at = m.send_at.unwrap_or(now).min(now);
            loop {
                match self.store.fix_recipients(&id, self.now(), &query, at).await? {
                    FixStep::More => continue,
                    FixStep::Done(n) => {
                        tracing::info!(message = %id, recipients = n, "a manual message's recipients are fixed");
                        self.metrics.deliveries_created(crate::metrics::Source::Message, n.max(0) as usize);
                        finished += 1;
                        self.publish_manual(&m).await;
                        break;
                    }
                    FixStep::Skipped => break,
                }
            }
        }
        Ok(finished)
    }

    /// Compiles a message's audience; `None` (and the message is stopped)
    /// if its conditions no longer check against the app's properties.
    async fn recipient_query(&self, m: &ManualRow) -> Result<Option<RecipientQuery>, ActionError> {
        let email = Kind::parse(&m.kind) == Some(Kind::Email);
        let audience: Audience = serde_json::from_str(&m.audience).unwrap_or_default();
        let at = m.send_at.unwrap_or_else(|| self.now());
        Ok(Some(match audience {
            Audience::Users { ids } => RecipientQuery {
                users: Some(ids),
                conditions: self.store.compile_conditions(&[], at, RECIPIENT_FIRST_PARAM),
                not_received: vec![],
                email,
            },
            Audience::Segment { conditions, not_received } => {
                let types = self.store.property_types(&m.app_id).await?;
                let Ok(checked) = check_all(&conditions, |n| types.get(n).copied()) else {
                    tracing::warn!(message = %m.id, "a message's conditions no longer check; stopping it");
                    self.store.stop_manual(&m.app_id, &m.id, self.now()).await?;
                    return Ok(None);
                };
                RecipientQuery {
                    users: None,
                    conditions: self.store.compile_conditions(&checked, at, RECIPIENT_FIRST_PARAM),
                    not_received,
                    email,
                }
            }
        }))
    }

    /// A send finished: in-app, push it to the recipients online here and
    /// tell the other instances; email, start the worker.
    pub async fn publish_manual(&self, m: &ManualRow) {
        if Kind::parse(&m.kind) == Some(Kind::Email) {
            if let Err(e) = self.run_email().await {
                tracing::error!(error = %e, "sending emails failed");
            }
            return;
        }
        // Recipients who are not online may get it as a push, after a grace period.
        self.queue_manual_push(m).await;
        if let Err(e) = self.publish_manual_here(&m.id).await {
            tracing::error!(error = %e, "publishing a manual message failed");
        }
        let notice = Notice::Manual { from: self.instance.clone(), id: m.id.clone() };
        self.notify(&notice).await;
    }

    /// Pushes a sent message's pending cards to its recipients online on
    /// this instance.
    pub(super) async fn publish_manual_here(&self, message_id: &str) -> Result<usize, ActionError> {
        let online = self.hub.online_users();
        if online.is_empty() {
            return Ok(0);
        }
        let pending = self.store.pending_cards_of(message_id, &online).await?;
        let delivered = self.claim_and_render(pending).await?;
        for d in &delivered {
            self.hub.push(&d.app_user_id, Frame::from(super::card_frame(d)));
        }
        Ok(delivered.len())
    }

    /// Renders pending cards for their users and claims them as sent.
    async fn claim_and_render(&self, pending: Vec<PendingCard>) -> Result<Vec<DeliveryRow>, ActionError> {
        if pending.is_empty() {
            return Ok(vec![]);
        }
        let mut messages: HashMap<String, Option<ManualRow>> = HashMap::new();
        for p in &pending {
            if !messages.contains_key(&p.message_id) {
                messages.insert(p.message_id.clone(), self.store.manual_by_id(&p.message_id).await?);
            }
        }
        let ids: Vec<String> = pending.iter().map(|p| p.app_user_id.clone()).collect();
        let users: HashMap<String, AppUserRow> =
            self.store.users_by_ids(&ids).await?.into_iter().map(|u| (u.id.clone(), u)).collect();
        let mut cards = Vec::with_capacity(pending.len());
        for p in pending {
            let (Some(Some(m)), Some(user)) = (messages.get(&p.message_id), users.get(&p.app_user_id)) else {
                continue;
            };
            let live = self.planner.whispers(&self.store, &user.app_id).await?;
            let rendered = render_card(m, &live.personal_values(user));
            cards.push((p, rendered));
        }
        let claimed = self.store.claim_cards(&cards, self.now()).await?;
        self.metrics.deliveries_sent(crate::metrics::Channel::Widget, claimed.len());
        Ok(claimed)
    }

    /// A starting widget's pending manual-message cards, claimed as sent.
    pub(super) async fn pending_message_cards(&self, app_user_id: &str) -> Result<Vec<DeliveryRow>, ActionError> {
        let pending = self.store.pending_cards_for_user(app_user_id).await?;
        self.claim_and_render(pending).await
    }

    /// Stops a message for good (pending deliveries cancelled in the same
    /// transaction, on every instance since they are rows). False if it
    /// cannot be stopped.
    pub async fn stop_manual(&self, app_id: &str, id: &str) -> Result<bool, ActionError> {
        Ok(self.store.stop_manual(app_id, id, self.now()).await?.is_some())
    }

    /// Sends every email delivery due now, in rounds, until none is left;
    /// returns how many were sent. Without an email channel, nothing.
    pub async fn run_email(&self) -> Result<usize, ActionError> {
        let Some(channel) = self.email.get() else { return Ok(0) };
        let mut sent = 0;
        loop {
            let now = self.now();
            let jobs = self.store.claim_emails(now, EMAIL_WINDOW_MS, EMAIL_BATCH).await?;
            if jobs.is_empty() {
                return Ok(sent);
            }
            let claimed = jobs.len() as i64;
            let mut messages: HashMap<String, Option<ManualRow>> = HashMap::new();
            let mut targets: HashMap<String, Option<SmtpTarget>> = HashMap::new();
            for j in &jobs {
                if !messages.contains_key(&j.message_id) {
                    messages.insert(j.message_id.clone(), self.store.manual_by_id(&j.message_id).await?);
                }
                if !targets.contains_key(&j.app_id) {
                    targets.insert(j.app_id.clone(), (channel.target)(j.app_id.clone()).await);
                }
            }
            let ids: Vec<String> = jobs.iter().map(|j| j.app_user_id.clone()).collect();
            let users: HashMap<String, AppUserRow> =
                self.store.users_by_ids(&ids).await?.into_iter().map(|u| (u.id.clone(), u)).collect();
            let mut work = vec![];
            for j in jobs {
                let (Some(Some(m)), Some(user)) = (messages.get(&j.message_id), users.get(&j.app_user_id)) else {
                    continue;
                };
                let live = self.planner.whispers(&self.store, &user.app_id).await?;
                let values = live.personal_values(user);
                let segments = template::parse(&m.body).unwrap_or_default();
                let mail = OutgoingMail {
                    message_id: j.id.clone(),
                    from_name: m.sender_name.clone(),
                    to: user.email.clone().unwrap_or_default(),
                    to_name: crate::domain::messages::display_name(user.given_name.as_deref(), user.surname.as_deref()),
                    subject: one_line(&m.title),
                    html: template::render_html(&segments, |n| lookup(&values, n)),
                    unsubscribe_url: (channel.unsubscribe_url)(&user.app_id, &user.id),
                };
                work.push((j, mail, targets.get(&m.app_id).cloned().flatten()));
            }
            let outcomes: Vec<_> = stream::iter(work)
                .map(|(j, mail, target)| async move {
                    let result = match &target {
                        Some(t) => channel.mailer.send(t, &mail).await,
                        None => Err(MailError::Transient("email is not set up for this app".into())),
                    };
                    (j, result)
                })
                .buffer_unordered(EMAIL_CONCURRENCY)
                .collect()
                .await;
            let now = self.now();
            for (j, result) in outcomes {
                let outcome = match &result {
                    Ok(()) => {
                        sent += 1;
                        self.metrics.deliveries_sent(crate::metrics::Channel::Email, 1);
                        Ok(())
                    }
                    Err(MailError::Permanent(e)) => Err((e.as_str(), None)),
                    Err(MailError::Transient(e)) => {
                        let retry = EMAIL_BACKOFF_MS.get(j.attempts as usize - 1).map(|wait| now + wait);
                        Err((e.as_str(), retry))
                    }
                };
                if let Err((e, _)) = &outcome {
                    tracing::warn!(delivery = %j.id, attempt = j.attempts, error = %e, "an email was not sent");
                }
                self.store.email_outcome(&j.id, now, outcome).await?;
            }
            if claimed < EMAIL_BATCH {
                return Ok(sent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_card_is_personalised_and_escaped() {
        let m = ManualRow {
            id: "m".into(),
            app_id: "a".into(),
            title: "t".into(),
            sender_id: None,
            sender_name: "Ann Lee".into(),
            kind: "chat".into(),
            body: "Hi {{ firstName || there }} <b>".into(),
            audience: "{}".into(),
            state: "sent".into(),
            send_at: None,
            recipients: None,
            created_by: None,
            created_at: 0,
            updated_at: 0,
            stopped_at: None,
            push: false,
        };
        let card: Card = serde_json::from_str(&render_card(&m, &[("givenName".into(), "<Bo>".into())])).unwrap();
        assert_eq!(card.sender.initials, "AL");
        assert!(card.html.contains("Hi &lt;Bo&gt;"), "{}", card.html);
        assert!(!card.html.contains("<b>"), "{}", card.html);
        let card: Card = serde_json::from_str(&render_card(&m, &[])).unwrap();
        assert!(card.html.contains("Hi there"), "{}", card.html);
    }
}
