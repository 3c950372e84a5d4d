//! Recall: cards no one has seen yet are cancelled (`storage::recall`) and
//! taken off the user's open widgets, here (the hub) and on the other
//! instances (a `Recall` notice: each pushes the frame to the widgets it
//! holds). A widget that was closed never gets a cancelled card: the
//! cards a starting widget is shown leave them out.

use std::collections::BTreeMap;

use super::{hub::Frame, ActionError, Engine, Notice};
use crate::storage::recall::{RecallOne, RecalledCard};

/// Cards per notice: a NOTIFY payload must stay under 8,000 bytes.
const CARDS_PER_NOTICE: usize = 60;

/// The widget frame that removes cards: `{"t":"recall","ids":[…]}`.
pub fn recall_frame(ids: &[&str]) -> String {
    serde_json::json!({ "t": "recall", "ids": ids }).to_string()
}

impl Engine {
    /// Recalls one card of the app, if no one has seen it.
    pub async fn recall_card(&self, app_id: &str, delivery_id: &str, by: &str) -> Result<RecallOne, ActionError> {
        let outcome = self.store.recall_card(app_id, delivery_id, by, self.now()).await?;
        if let RecallOne::Recalled(card) = &outcome {
            self.publish_recall(std::slice::from_ref(card)).await;
        }
        Ok(outcome)
    }

    /// Recalls every unseen card of a whisper; how many.
    pub async fn recall_whisper(&self, app_id: &str, whisper_id: &str, by: &str) -> Result<usize, ActionError> {
        let cards = self.store.recall_whisper_cards(app_id, whisper_id, by, self.now()).await?;
        self.publish_recall(&cards).await;
        Ok(cards.len())
    }

    /// Recalls every unseen in-app card of a manual message and stops it
    /// (if it is still scheduled, sending or sent: no one else gets it);
    /// how many cards were recalled.
    pub async fn recall_manual(&self, app_id: &str, message_id: &str, by: &str) -> Result<usize, ActionError> {
        let cards = self.store.recall_manual_cards(app_id, message_id, by, self.now()).await?;
        // The stop cancels what became pending since (a send still fixing
        // recipients); a message stopped already stays as it is.
        self.store.stop_manual(app_id, message_id, self.now()).await?;
        self.publish_recall(&cards).await;
        Ok(cards.len())
    }

    /// Takes recalled cards off the widgets open here and on the other instances.
    pub async fn publish_recall(&self, cards: &[RecalledCard]) {
        if cards.is_empty() {
            return;
        }
        self.recall_here(cards.iter().map(|c| (c.app_user_id.as_str(), c.id.as_str())));
        let notices: Vec<String> = cards
            .chunks(CARDS_PER_NOTICE)
            .map(|chunk| {
                let notice = Notice::Recall {
                    from: self.instance.clone(),
                    cards: chunk.iter().map(|c| (c.app_user_id.clone(), c.id.clone())).collect(),
                };
                serde_json::to_string(&notice).unwrap_or_default()
            })
            .collect();
        if let Err(e) = self.store.notify_all(&notices).await {
            tracing::error!(error = %e, "could not notify the other instances of a recall");
        }
    }

    /// Pushes the recall frame to the widgets of these (user, card) pairs open here.
    pub(super) fn recall_here<'a>(&self, cards: impl Iterator<Item = (&'a str, &'a str)>) {
        let mut by_user: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (user, id) in cards {
            by_user.entry(user).or_default().push(id);
        }
        for (user, ids) in by_user {
            if self.hub.is_online(user) {
                self.hub.push(user, Frame::from(recall_frame(&ids)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_lists_the_ids_as_json() {
        let v: serde_json::Value = serde_json::from_str(&recall_frame(&["d\"1", "m2"])).unwrap();
        assert_eq!(v, serde_json::json!({"t": "recall", "ids": ["d\"1", "m2"]}));
    }

    #[test]
    fn a_full_notice_fits_a_notify_payload() {
        let cards: Vec<(String, String)> =
            (0..CARDS_PER_NOTICE).map(|_| ("a".repeat(24), format!("m{}", "b".repeat(24)))).collect();
        let notice = Notice::Recall { from: "c".repeat(24), cards };
        assert!(serde_json::to_string(&notice).unwrap().len() < 7_000);
    }
}
