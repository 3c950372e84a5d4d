//! Whispers (automated messages): what a marketer saves, its validation,
//! and the five templates a new whisper can start from.

use serde::{Deserialize, Serialize};

use super::{
    conditions::{check_all, Condition, Operator},
    properties::PropType,
    template, Invalid,
};

pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_LABEL: usize = 40;
pub const MAX_TEXT: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Active,
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Active => "active",
            Status::Paused => "paused",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "draft" => Status::Draft,
            "active" => Status::Active,
            "paused" => Status::Paused,
            _ => return None,
        })
    }
}

/// When a whisper is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "event", rename_all = "snake_case")]
pub enum Trigger {
    /// A tracked event, by name.
    Event(String),
    /// Widget start.
    AppLaunch,
    /// The user's first message.
    FirstMessage,
    /// No event: sent when a user starts matching the audience.
    PropertyMatch,
}

impl Trigger {
    /// The kind's name, as stored (`trigger_kind`) and as the editor's
    /// choices say it: spelled once, by the serde attribute above.
    pub fn kind(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.get("kind")?.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// The trigger a kind names; an event trigger takes `event`. An unknown
    /// kind is an event trigger.
    pub fn from_kind(kind: &str, event: String) -> Trigger {
        match serde_json::from_value(serde_json::json!({ "kind": kind })) {
            Ok(t) => t,
            Err(_) => Trigger::Event(event),
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Trigger::Event(e) => format!("on event “{e}”"),
            Trigger::AppLaunch => "on app launch".into(),
            Trigger::FirstMessage => "on the user's first message".into(),
            Trigger::PropertyMatch => "when a user starts matching".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ButtonAction {
    /// Opens an http(s) URL.
    Link(String),
    /// Sends this text as the user's reply.
    Reply(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub action: ButtonAction,
}

/// Everything a marketer edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperDraft {
    pub name: String,
    /// Empty with `all_users` = everyone.
    pub all_users: bool,
    pub conditions: Vec<Condition>,
    pub trigger: Trigger,
    pub text: String,
    /// Teammate id of the sender.
    pub sender_id: String,
    pub buttons: Vec<Button>,
    /// Also send it as a Web Push notification when the user is not online
    /// (and the app has push on and the user a subscribed browser).
    #[serde(default)]
    pub push: bool,
}

/// An absolute http(s) address without spaces, quotes or angle brackets.
pub fn is_http_url(s: &str) -> bool {
    let l = s.trim().to_ascii_lowercase();
    let rest = l.strip_prefix("https://").or_else(|| l.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && !s.trim().chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>')
}

impl WhisperDraft {
    /// Checks every field; returns all problems, each naming its field
    /// (`name`, `text`, `trigger`, `conditions`, `buttons`, `sender`).
    pub fn validate(&self, custom_type: impl Fn(&str) -> Option<PropType>) -> Vec<Invalid> {
        let mut errs = Vec::new();
        if let Err(e) = super::parse_name("name", "a name", &self.name, 120) {
            errs.push(e);
        }
        if self.text.trim().is_empty() {
            errs.push(Invalid::new("text", "Enter the message text."));
        } else if self.text.chars().count() > MAX_TEXT {
            errs.push(Invalid::new("text", format!("Keep the message under {MAX_TEXT} characters.")));
        } else if let Err(e) = template::parse(&self.text) {
            errs.push(Invalid::new("text", e.to_string()));
        }
        match &self.trigger {
            Trigger::Event(e) if super::users::check_event_name(e).is_err() => {
                errs.push(Invalid::new("trigger", "Enter the event's name (1 to 128 characters)."));
            }
            Trigger::PropertyMatch if self.all_users => errs.push(Invalid::new(
                "trigger",
                "A whisper for all users must be triggered by an event (or app launch, or a first message).",
            )),
            _ => {}
        }
        if !self.all_users {
            if self.conditions.is_empty() {
                errs.push(Invalid::new("conditions", "Add at least one condition, or choose all users."));
            } else if let Err(e) = check_all(&self.conditions, &custom_type) {
                errs.push(e);
            }
        }
        if self.sender_id.trim().is_empty() {
            errs.push(Invalid::new("sender", "Choose who the message is from."));
        }
        if self.buttons.len() > MAX_BUTTONS {
            errs.push(Invalid::new("buttons", format!("A whisper can have at most {MAX_BUTTONS} buttons.")));
        }
        for (i, b) in self.buttons.iter().enumerate() {
            let n = i + 1;
            if b.label.trim().is_empty() || b.label.chars().count() > MAX_BUTTON_LABEL {
                errs.push(Invalid::new(
                    "buttons",
                    format!("Button {n}: enter a label of 1 to {MAX_BUTTON_LABEL} characters."),
                ));
            }
            match &b.action {
                ButtonAction::Link(url) if !is_http_url(url) => errs
                    .push(Invalid::new("buttons", format!("Button {n}: the link must be an http:// or https:// URL."))),
                ButtonAction::Reply(t) if t.trim().is_empty() || t.chars().count() > 500 => errs
                    .push(Invalid::new("buttons", format!("Button {n}: enter the reply text (up to 500 characters)."))),
                _ => {}
            }
        }
        errs
    }

    /// One line describing who receives it.
    pub fn audience_summary(&self) -> String {
        if self.all_users {
            return "All users".into();
        }
        self.conditions
            .iter()
            .map(|c| {
                let op = c.operator.label(PropType::Text).replace("N days", &format!("{} days", c.value));
                if c.operator.needs_value() && !op.contains(" days") {
                    format!("{} {} {}", c.property, op, c.value)
                } else {
                    format!("{} {}", c.property, op)
                }
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// A starting point for a new whisper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
}

pub const TEMPLATES: [Template; 5] = [
    Template { key: "welcome", name: "Welcome", description: "Greet new users the first time they launch your app." },
    Template { key: "reengage", name: "Re-engage", description: "Reach users last seen at least 7 days ago." },
    Template {
        key: "announcement",
        name: "Announcement",
        description: "Tell all users something when they launch the app.",
    },
    Template {
        key: "rating",
        name: "Ask for app rating",
        description: "Ask users who signed up at least 5 days ago to rate the app.",
    },
    Template {
        key: "autoresponse",
        name: "Auto-response",
        description: "Say when to expect an answer, on a user's first message.",
    },
];

fn cond(property: &str, operator: Operator, value: &str) -> Condition {
    Condition { property: property.into(), operator, value: value.into() }
}

impl WhisperDraft {
    /// When this whisper reaches people, in plain words for the editor.
    pub fn when_sent(&self) -> String {
        use super::conditions::Operator;
        match &self.trigger {
            Trigger::Event(e) if e.trim().is_empty() => "When a user does the event you name, once per user.".into(),
            Trigger::Event(e) => format!("When a user does “{}”, once per user.", e.trim()),
            Trigger::AppLaunch => "When they next open your site (once per user: for most, their first visit).".into(),
            Trigger::FirstMessage => "When they write to you for the first time.".into(),
            Trigger::PropertyMatch => {
                let when: Vec<String> = self
                    .conditions
                    .iter()
                    .filter(|c| matches!(c.operator, Operator::MoreThanDaysAgo | Operator::ExactlyDaysAgo))
                    .filter_map(|c| {
                        let days: i64 = c.value.trim().parse().ok()?;
                        let after = match days {
                            0 => "right".to_string(),
                            1 => "about 24 h".to_string(),
                            n => format!("about {n} days"),
                        };
                        Some(match c.property.as_str() {
                            "signedUpAt" => format!("{after} after they sign up"),
                            "lastSeenAt" => format!("{after} after their last visit"),
                            p => format!("{after} after their {p}"),
                        })
                    })
                    .collect();
                if when.is_empty() {
                    "As soon as a user matches: at once for those who match now, and whenever a change makes another user match.".into()
                } else {
                    format!("As time passes: {} (at once for those who match already).", when.join(", and "))
                }
            }
        }
    }
}

/// The pre-filled draft for a template key (`None`: start from scratch).
pub fn from_template(key: Option<&str>, sender_id: &str) -> WhisperDraft {
    let blank = WhisperDraft {
        name: String::new(),
        all_users: false,
        conditions: Vec::new(),
        trigger: Trigger::Event(String::new()),
        text: String::new(),
        sender_id: sender_id.into(),
        buttons: Vec::new(),
        push: false,
    };
    match key {
        // Every user, on app launch: a whisper reaches a user once ever, so
        // this is their first launch, however long ago the backend created them.
        Some("welcome") => WhisperDraft {
            name: "Welcome".into(),
            all_users: true,
            trigger: Trigger::AppLaunch,
            text: "Hi {{ firstName || there }}, welcome! 👋\nWe're here if you have any questions — just reply.".into(),
            ..blank
        },
        Some("reengage") => WhisperDraft {
            name: "Re-engage users".into(),
            conditions: vec![cond("lastSeenAt", Operator::MoreThanDaysAgo, "7")],
            trigger: Trigger::PropertyMatch,
            text:
                "Hi {{ firstName || there }}, we haven't seen you in a while. Here's what's new since your last visit."
                    .into(),
            ..blank
        },
        Some("announcement") => WhisperDraft {
            name: "Announcement".into(),
            all_users: true,
            trigger: Trigger::AppLaunch,
            text: "**Something new is here!** Take a look at what we've just released.".into(),
            ..blank
        },
        Some("rating") => WhisperDraft {
            name: "Ask for app rating".into(),
            conditions: vec![cond("signedUpAt", Operator::MoreThanDaysAgo, "5")],
            trigger: Trigger::PropertyMatch,
            text: "Hi {{ firstName || there }}, enjoying the app? A rating would mean a lot to us.".into(),
            buttons: vec![Button {
                label: "Rate the app".into(),
                action: ButtonAction::Link("https://example.com/rate".into()),
            }],
            ..blank
        },
        Some("autoresponse") => WhisperDraft {
            name: "Auto-response".into(),
            all_users: true,
            trigger: Trigger::FirstMessage,
            text: "Thanks for your message, {{ firstName || there }}! We usually answer within a few hours.".into(),
            ..blank
        },
        _ => blank,
    }
}

/// A property's text for personalisation, by its name or a built-in's alias
/// (`firstName` finds `givenName`).
pub fn lookup(values: &[(String, String)], name: &str) -> Option<String> {
    let canonical = super::properties::builtin(name).map(|b| b.name).unwrap_or(name);
    values.iter().find(|(n, _)| n == canonical).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<PropType> {
        None
    }

    #[test]
    fn every_template_is_valid_once_a_sender_is_set() {
        for t in TEMPLATES {
            let d = from_template(Some(t.key), "t1");
            assert_eq!(d.validate(none), vec![], "{}", t.key);
        }
        let scratch = from_template(None, "t1");
        let fields: Vec<_> = scratch.validate(none).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "text", "trigger", "conditions"]);
    }

    #[test]
    fn the_editor_says_when_in_plain_words() {
        let rating = from_template(Some("rating"), "t");
        assert_eq!(
            rating.when_sent(),
            "As time passes: about 5 days after they sign up (at once for those who match already)."
        );
        let mut d = from_template(Some("reengage"), "t");
        assert!(d.when_sent().contains("about 7 days after their last visit"));
        d.conditions = vec![cond("signedUpAt", Operator::MoreThanDaysAgo, "1")];
        assert!(d.when_sent().contains("about 24 h after they sign up"));
        assert!(from_template(Some("welcome"), "t").when_sent().starts_with("When they next open your site"));
    }

    #[test]
    fn trigger_kinds_round_trip() {
        for t in [Trigger::Event("buy".into()), Trigger::AppLaunch, Trigger::FirstMessage, Trigger::PropertyMatch] {
            assert_eq!(Trigger::from_kind(&t.kind(), "buy".into()), t);
        }
        assert_eq!(Trigger::AppLaunch.kind(), "app_launch");
        assert_eq!(Trigger::Event(String::new()).kind(), "event");
    }

    #[test]
    fn all_users_needs_an_event_trigger() {
        let mut d = from_template(Some("announcement"), "t1");
        d.trigger = Trigger::PropertyMatch;
        let errs = d.validate(none);
        assert_eq!(errs[0].field, "trigger");
        assert!(errs[0].message.starts_with("A whisper for all users must be triggered by an event"));
    }

    #[test]
    fn buttons_are_checked() {
        let mut d = from_template(Some("rating"), "t1");
        d.buttons = vec![
            Button { label: "Go".into(), action: ButtonAction::Link("javascript:alert(1)".into()) },
            Button { label: "".into(), action: ButtonAction::Reply("Yes".into()) },
            Button { label: "Ok".into(), action: ButtonAction::Link("https://x.io/a".into()) },
            Button { label: "Four".into(), action: ButtonAction::Reply("x".into()) },
        ];
        let msgs: Vec<String> = d.validate(none).into_iter().map(|e| e.message).collect();
        assert!(msgs.contains(&"A whisper can have at most 3 buttons.".to_string()));
        assert!(msgs.contains(&"Button 1: the link must be an http:// or https:// URL.".to_string()));
        assert!(msgs.iter().any(|m| m.starts_with("Button 2: enter a label")));
    }

    #[test]
    fn text_and_conditions_are_checked() {
        let mut d = from_template(Some("rating"), "t1");
        d.text = "Hi {{ firstName".into();
        d.conditions = vec![cond("plan", Operator::Is, "gold")];
        let errs = d.validate(|n| (n == "plan").then_some(PropType::Number));
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["text", "conditions"]);
        assert!(errs[0].message.starts_with("A placeholder is not closed"));
    }

    #[test]
    fn audience_summaries_read_well() {
        assert_eq!(from_template(Some("rating"), "t").audience_summary(), "signedUpAt more than 5 days ago");
        assert_eq!(from_template(Some("announcement"), "t").audience_summary(), "All users");
        let mut d = from_template(None, "t");
        d.conditions = vec![cond("plan", Operator::Is, "gold"), cond("email", Operator::IsSet, "")];
        assert_eq!(d.audience_summary(), "plan is gold and email is set");
    }
}
