//! Manual messages: written by a teammate and sent once, to one user, a
//! selection of users, or the users matching conditions *at send time*
//! (users who match later never get it). Kinds, states, the audience, and
//! the draft a composer edits, with its validation.

use serde::{Deserialize, Serialize};

use super::{
    conditions::{check_all, Condition},
    properties::PropType,
    template, Invalid,
};

/// The most users a selection may name (beyond that, use conditions).
pub const MAX_SELECTED: usize = 10_000;
/// The most earlier messages an audience may exclude.
pub const MAX_NOT_RECEIVED: usize = 10;
const MAX_BODY: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// In-app, as a chat message from the sender (opens a conversation).
    Chat,
    /// In-app, as a notification card.
    Announcement,
    Email,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Chat, Kind::Announcement, Kind::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Announcement => "announcement",
            Kind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Chat => "In-app chat",
            Kind::Announcement => "In-app announcement",
            Kind::Email => "Email",
        }
    }

    pub fn in_app(self) -> bool {
        self != Kind::Email
    }
}

/// Where a message is in its life: `draft` → (`scheduled` →) `sending`
/// (recipients being fixed) → `sent`; `stopped` from any sent state, for
/// good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    Scheduled,
    Sending,
    Sent,
    Stopped,
}

impl State {
    pub const ALL: [State; 5] = [State::Draft, State::Scheduled, State::Sending, State::Sent, State::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Scheduled => "scheduled",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the composer may still change it.
    pub fn editable(self) -> bool {
        matches!(self, State::Draft | State::Scheduled)
    }
}

/// The list's tabs: each shows some states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tab {
    Sent,
    Scheduled,
    Draft,
    Stopped,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Sent, Tab::Scheduled, Tab::Draft, Tab::Stopped];

    pub fn states(self) -> &'static [State] {
        match self {
            Tab::Sent => &[State::Sending, State::Sent],
            Tab::Scheduled => &[State::Scheduled],
            Tab::Draft => &[State::Draft],
            Tab::Stopped => &[State::Stopped],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tab::Sent => "sent",
            Tab::Scheduled => "scheduled",
            Tab::Draft => "draft",
            Tab::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Tab {
        Tab::ALL.into_iter().find(|t| t.as_str() == s).unwrap_or(Tab::Sent)
    }

    pub fn label(self) -> &'static str {
        match self {
            Tab::Sent => "Sent",
            Tab::Scheduled => "Scheduled",
            Tab::Draft => "Drafts",
            Tab::Stopped => "Stopped",
        }
    }
}

/// Who gets a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Audience {
    /// These users (murmur ids): one from a profile, or a selection.
    Users { ids: Vec<String> },
    /// Everyone matching the conditions when the send starts (no
    /// conditions: all users), less those who received any of the
    /// `not_received` messages.
    Segment {
        conditions: Vec<Condition>,
        #[serde(default)]
        not_received: Vec<String>,
    },
}

impl Default for Audience {
    fn default() -> Self {
        Audience::Segment { conditions: vec![], not_received: vec![] }
    }
}

/// Everything a teammate edits in the composer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDraft {
    /// The list's name for it; an email's subject.
    pub title: String,
    /// Teammate id of the sender.
    pub sender_id: String,
    pub kind: Kind,
    /// Light styling and `{{ property || fallback }}` placeholders, as in whispers.
    pub body: String,
    pub audience: Audience,
    /// In-app: also send it as a Web Push notification to recipients who
    /// are not online.
    #[serde(default)]
    pub push: bool,
}

impl MessageDraft {
    /// Checks every field; each problem names its field (`title`, `sender`,
    /// `body`, `audience`).
    pub fn validate(&self, custom_type: impl Fn(&str) -> Option<PropType>) -> Vec<Invalid> {
        let mut errs = Vec::new();
        if let Err(e) = super::parse_name("title", "a title", &self.title, 200) {
            errs.push(e);
        }
        if self.sender_id.trim().is_empty() {
            errs.push(Invalid::new("sender", "Choose who the message is from."));
        }
        if self.body.trim().is_empty() {
            errs.push(Invalid::new("body", "Write the message."));
        } else if self.body.chars().count() > MAX_BODY {
            errs.push(Invalid::new("body", format!("Keep the message under {MAX_BODY} characters.")));
        } else if let Err(e) = template::parse(&self.body) {
            errs.push(Invalid::new("body", e.to_string()));
        }
        match &self.audience {
            Audience::Users { ids } if ids.is_empty() => {
                errs.push(Invalid::new("audience", "Choose at least one user."));
            }
            Audience::Users { ids } if ids.len() > MAX_SELECTED => errs.push(Invalid::new(
                "audience",
                format!("Select at most {MAX_SELECTED} users, or send to users matching conditions."),
            )),
            Audience::Users { ids } if ids.iter().any(|id| !is_id(id)) => {
                errs.push(Invalid::new("audience", "A selected user is not a murmur user id."));
            }
            Audience::Users { .. } => {}
            Audience::Segment { conditions, not_received } => {
                if let Err(e) = check_all(conditions, &custom_type) {
                    errs.push(Invalid::new("audience", e.message));
                }
                if not_received.len() > MAX_NOT_RECEIVED {
                    errs.push(Invalid::new(
                        "audience",
                        format!("Exclude the recipients of at most {MAX_NOT_RECEIVED} messages."),
                    ));
                } else if not_received.iter().any(|id| !is_id(id)) {
                    errs.push(Invalid::new("audience", "Choose an earlier message to exclude its recipients."));
                }
            }
        }
        errs
    }

    /// One line describing who receives it.
    pub fn audience_summary(&self) -> String {
        match &self.audience {
            Audience::Users { ids } if ids.len() == 1 => "1 user".into(),
            Audience::Users { ids } => format!("{} selected users", ids.len()),
            Audience::Segment { conditions, not_received } => {
                let who = if conditions.is_empty() {
                    "All users".to_string()
                } else {
                    let draft = super::whisper::WhisperDraft {
                        name: String::new(),
                        all_users: false,
                        conditions: conditions.clone(),
                        trigger: super::whisper::Trigger::PropertyMatch,
                        text: String::new(),
                        sender_id: String::new(),
                        buttons: vec![],
                        push: false,
                    };
                    draft.audience_summary()
                };
                match not_received.len() {
                    0 => who,
                    1 => format!("{who}, who have not received an earlier message"),
                    n => format!("{who}, who have not received {n} earlier messages"),
                }
            }
        }
    }
}

/// murmur ids are lowercase hex (`storage::new_id`).
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Email subjects and the list show the title on one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conditions::Operator;

    fn draft() -> MessageDraft {
        MessageDraft {
            title: "Spring sale".into(),
            sender_id: "abc".into(),
            kind: Kind::Chat,
            body: "Hi {{ firstName || there }}".into(),
            audience: Audience::Users { ids: vec!["0a1b".into()] },
            push: false,
        }
    }

    #[test]
    fn a_complete_draft_is_valid() {
        assert!(draft().validate(|_| None).is_empty());
    }

    #[test]
    fn every_missing_field_is_named() {
        let d = MessageDraft {
            title: " ".into(),
            sender_id: "".into(),
            body: "".into(),
            audience: Audience::Users { ids: vec![] },
            ..draft()
        };
        let fields: Vec<_> = d.validate(|_| None).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["title", "sender", "body", "audience"]);
    }

    #[test]
    fn a_broken_placeholder_or_condition_is_refused() {
        let d = MessageDraft { body: "Hi {{ firstName".into(), ..draft() };
        assert_eq!(d.validate(|_| None)[0].field, "body");
        let d = MessageDraft {
            audience: Audience::Segment {
                conditions: vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }],
                not_received: vec![],
            },
            ..draft()
        };
        assert_eq!(d.validate(|_| None)[0].field, "audience");
        assert!(d.validate(|_| Some(PropType::Text)).is_empty());
    }

    #[test]
    fn selections_name_ids_only() {
        let d = MessageDraft { audience: Audience::Users { ids: vec!["'; drop".into()] }, ..draft() };
        assert_eq!(d.validate(|_| None)[0].field, "audience");
        let d = MessageDraft { audience: Audience::Users { ids: vec!["ab".into(); MAX_SELECTED + 1] }, ..draft() };
        assert_eq!(d.validate(|_| None)[0].field, "audience");
    }

    #[test]
    fn audiences_read_as_words() {
        assert_eq!(draft().audience_summary(), "1 user");
        let d = MessageDraft { audience: Audience::default(), ..draft() };
        assert_eq!(d.audience_summary(), "All users");
        let d = MessageDraft {
            audience: Audience::Segment { conditions: vec![], not_received: vec!["ab".into()] },
            ..draft()
        };
        assert_eq!(d.audience_summary(), "All users, who have not received an earlier message");
    }

    #[test]
    fn kinds_states_and_tabs_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for t in Tab::ALL {
            assert_eq!(Tab::parse(t.as_str()), t);
        }
        let json = serde_json::to_string(&Audience::Users { ids: vec!["a".into()] }).unwrap();
        assert_eq!(json, r#"{"type":"users","ids":["a"]}"#);
    }
}
