//! "Why did (or didn't) this user get this message?" Two halves, both pure:
//!
//! - the **evaluation record** the planner keeps per decision (which
//!   trigger, each audience condition with the user's value as evaluated
//!   and whether it passed, the outcome), stored by `storage::explain`;
//! - the **answer** in plain words, built from those records and the stored
//!   facts (the whisper's status, the delivery and its states, the user's
//!   last event of the trigger's name), so the server render and the
//!   browser agree and unit tests cover every wording.

use serde::{Deserialize, Serialize};

use super::{
    conditions::{Operator, Target, UserProps},
    format_date,
    properties::{PropType, Value},
};

/// What set the evaluation off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TriggerFact {
    /// The user tracked this event.
    Event { name: String },
    /// The user opened the app (the widget started).
    Launch,
    /// The user sent their first message.
    FirstMessage,
    /// The user's values changed, or time passed (property-match whispers).
    Match,
}

/// One audience condition as evaluated for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionResult {
    pub property: String,
    pub operator: Operator,
    /// The condition's value as the marketer typed it ("" for `is set`).
    pub operand: String,
    pub ty: PropType,
    /// The user's value as evaluated, as text; `None`: not set.
    pub value: Option<String>,
    pub passed: bool,
}

impl ConditionResult {
    /// Evaluates `c` (checked from `raw`) for `user` at `now`.
    pub fn of(
        raw: &super::conditions::Condition,
        c: &super::conditions::Checked,
        user: &impl UserProps,
        now: i64,
    ) -> ConditionResult {
        let value = match &c.target {
            Target::Builtin(b) => user.builtin(b),
            Target::Custom(name) => user.custom(name),
        };
        ConditionResult {
            property: raw.property.clone(),
            operator: raw.operator,
            operand: raw.value.trim().to_string(),
            ty: c.ty,
            value: value.map(|v| value_text(&v)),
            passed: c.matches(user, now),
        }
    }

    /// "plan is pro", "signedUpAt more than 5 days ago".
    pub fn test_text(&self) -> String {
        let label = self.operator.label(self.ty);
        if !self.operator.needs_value() {
            return format!("{} {label}", self.property);
        }
        if label.contains(" N ") {
            format!("{} {}", self.property, label.replace(" N ", &format!(" {} ", self.operand)))
        } else {
            format!("{} {label} {}", self.property, self.operand)
        }
    }

    /// "pro", or "not set".
    pub fn value_shown(&self) -> String {
        self.value.clone().unwrap_or_else(|| "not set".to_string())
    }
}

/// A value as a person reads it (dates as `YYYY-MM-DD HH:MM UTC`).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Date(ms) => when(*ms),
    }
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn when(ms: i64) -> String {
    let rem = ms.rem_euclid(86_400_000);
    format!("{} {:02}:{:02} UTC", format_date(ms), rem / 3_600_000, rem / 60_000 % 60)
}

/// What the evaluation decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// In the audience: a card was planned.
    Matched,
    /// Not in the audience.
    NotMatched,
    /// Not yet, but time alone makes them match at `at` (property match).
    MatchesAt { at: i64 },
}

/// One decision the planner made for one whisper and one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub at: i64,
    /// The whisper's revision the decision used.
    pub revision: i64,
    pub trigger: TriggerFact,
    /// The whisper's audience is everyone (no conditions asked).
    pub all_users: bool,
    pub conditions: Vec<ConditionResult>,
    pub outcome: Outcome,
}

impl TriggerFact {
    pub fn of(t: &super::whisper::Trigger) -> TriggerFact {
        use super::whisper::Trigger;
        match t {
            Trigger::Event(name) => TriggerFact::Event { name: name.clone() },
            Trigger::AppLaunch => TriggerFact::Launch,
            Trigger::FirstMessage => TriggerFact::FirstMessage,
            Trigger::PropertyMatch => TriggerFact::Match,
        }
    }
}

impl Evaluation {
    pub fn matched(&self) -> bool {
        self.outcome == Outcome::Matched
    }
}

/// The stored facts about one whisper and one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperFacts {
    pub user: String,
    pub whisper: String,
    /// `draft`, `active` or `paused`.
    pub status: String,
    pub status_since: i64,
    pub trigger: TriggerFact,
    pub delivery: Option<DeliveryFacts>,
    /// The first decision that put the user in the audience (the one that
    /// made the card: a whisper goes to each user once).
    pub matched: Option<Evaluation>,
    /// The latest decision that did not.
    pub unmatched: Option<Evaluation>,
    /// `unmatched` was computed just now from the user's current values
    /// (property-match whispers: every change to them is checked at once,
    /// so their misses are not stored).
    #[serde(default)]
    pub unmatched_is_current: bool,
    /// Event whispers: when the user last tracked the event, and how often.
    pub last_event: Option<(i64, i64)>,
    /// How long decisions are kept, in days.
    pub retention_days: i64,
}

/// A delivery (whisper card or manual message) and its states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFacts {
    pub created_at: i64,
    pub state: String,
    pub channel: Option<String>,
    pub sent_at: Option<i64>,
    pub sent_via: Option<String>,
    pub seen_at: Option<i64>,
    pub clicked_at: Option<i64>,
    pub replied_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub error: Option<String>,
}

/// Yes, no, or not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Yes,
    No,
    Waiting,
}

/// One line of the answer; `conditions` when it shows an audience check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub text: String,
    /// Passed (true), failed (false), neutral (None).
    pub ok: Option<bool>,
    #[serde(default)]
    pub conditions: Vec<ConditionResult>,
}

impl Step {
    fn say(text: impl Into<String>, ok: Option<bool>) -> Step {
        Step { text: text.into(), ok, conditions: vec![] }
    }
}

/// The answer, in plain words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub verdict: Verdict,
    pub headline: String,
    pub steps: Vec<Step>,
}

fn trigger_words(t: &TriggerFact, user: &str, at: i64) -> String {
    match t {
        TriggerFact::Event { name } => format!("{user} tracked the event \u{201c}{name}\u{201d} on {}", when(at)),
        TriggerFact::Launch => format!("{user} opened the app on {}", when(at)),
        TriggerFact::FirstMessage => format!("{user} sent their first message on {}", when(at)),
        TriggerFact::Match => format!("{user}'s properties were checked on {}", when(at)),
    }
}

fn audience_step(e: &Evaluation, user: &str) -> Step {
    if e.all_users {
        return Step::say("Audience: all users — nothing to check.", Some(true));
    }
    let failed = e.conditions.iter().filter(|c| !c.passed).count();
    let text = match (failed, &e.outcome) {
        (0, _) => format!("Audience: {user} passed every condition ({}).", e.conditions.len()),
        (_, Outcome::MatchesAt { at }) => format!(
            "Audience: {user} failed {failed} of {} conditions then; time alone makes them pass on {}.",
            e.conditions.len(),
            when(*at)
        ),
        _ => format!("Audience: {user} failed {failed} of {} conditions.", e.conditions.len()),
    };
    Step { text, ok: Some(failed == 0), conditions: e.conditions.clone() }
}

fn delivery_steps(d: &DeliveryFacts, steps: &mut Vec<Step>) {
    steps.push(Step::say(format!("Card made on {}.", when(d.created_at)), Some(true)));
    match (d.sent_at, d.state.as_str()) {
        (Some(t), _) => {
            let via = match d.sent_via.as_deref().or(d.channel.as_deref()) {
                Some("push") => " as a push notification",
                Some("email") => " by email",
                Some("widget") | Some("in_app") => " in the widget",
                _ => "",
            };
            steps.push(Step::say(format!("Shown{via} on {}.", when(t)), Some(true)))
        }
        (None, "pending") => steps
            .push(Step::say("Not shown yet: it waits for the user to open the app (or for the email to go).", None)),
        _ => {}
    }
    for (t, what) in [(d.seen_at, "Seen"), (d.clicked_at, "Clicked"), (d.replied_at, "Replied")] {
        if let Some(t) = t {
            steps.push(Step::say(format!("{what} on {}.", when(t)), Some(true)));
        }
    }
    if d.state == "cancelled" {
        steps.push(Step::say("Recalled or cancelled by the team before the user saw it.", Some(false)));
    }
    if let Some(t) = d.failed_at {
        let why = d.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        steps.push(Step::say(format!("Failed on {}{why}.", when(t)), Some(false)));
    }
}

/// Why `f.user` did or did not get the whisper `f.whisper`.
pub fn explain_whisper(f: &WhisperFacts) -> Answer {
    let mut steps = vec![];
    let user = f.user.as_str();
    if let Some(d) = &f.delivery {
        if let Some(e) = &f.matched {
            steps.push(Step::say(format!("Trigger: {}.", trigger_words(&e.trigger, user, e.at)), Some(true)));
            steps.push(audience_step(e, user));
        }
        delivery_steps(d, &mut steps);
        if let Some(u) = f.unmatched.as_ref().filter(|u| u.at > d.created_at) {
            let mut later = audience_step(u, user);
            later.text = format!(
                "Later, on {}, {user} no longer matched; the card stays (a whisper goes to each user once). {}",
                when(u.at),
                later.text
            );
            later.ok = None;
            steps.push(later);
        }
        steps.push(Step::say(
            format!("A whisper goes to each user once: {user} will not get it again, even when it fires again."),
            None,
        ));
        let (verdict, headline) = match d.state.as_str() {
            "cancelled" => (
                Verdict::No,
                format!("No — a card was made for {user} on {}, then recalled.", format_date(d.created_at)),
            ),
            "failed" => (Verdict::No, format!("No — the delivery to {user} failed.")),
            "pending" => (Verdict::Waiting, format!("Not yet — {user}'s card is waiting to be shown.")),
            _ => (
                Verdict::Yes,
                format!("Yes — {user} got \u{201c}{}\u{201d} on {}.", f.whisper, format_date(d.created_at)),
            ),
        };
        return Answer { verdict, headline, steps };
    }
    let no = |headline: String, steps: Vec<Step>| Answer { verdict: Verdict::No, headline, steps };
    match f.status.as_str() {
        "draft" => {
            steps.push(Step::say("A draft sends nothing: activate it to start.", Some(false)));
            return no(format!("No — \u{201c}{}\u{201d} is a draft.", f.whisper), steps);
        }
        "paused" => steps.push(Step::say(
            format!("Paused since {}: it sends nothing until it is resumed.", when(f.status_since)),
            Some(false),
        )),
        _ => {}
    }
    if let Some(e) = &f.matched {
        steps.push(Step::say(format!("Trigger: {}.", trigger_words(&e.trigger, user, e.at)), Some(true)));
        steps.push(audience_step(e, user));
        steps.push(Step::say(
            "No card is stored for that decision (it was recalled and removed, or its write failed).",
            Some(false),
        ));
        return no(format!("No — {user} matched on {}, but no card is stored.", format_date(e.at)), steps);
    }
    if let Some(e) = f.unmatched.as_ref().filter(|_| f.unmatched_is_current) {
        steps.push(Step::say(
            format!("Checked against {user}'s values now: murmur checks this whisper on every change to them, and when time alone makes them match."),
            None,
        ));
        steps.push(audience_step(e, user));
        let (verdict, headline) = match &e.outcome {
            Outcome::Matched => {
                (Verdict::Waiting, format!("Not yet — {user} matches now; the card is made at the next check."))
            }
            Outcome::MatchesAt { at } => (
                Verdict::Waiting,
                format!(
                    "Not yet — {user} is not in the audience yet; time alone puts them in on {}.",
                    format_date(*at)
                ),
            ),
            Outcome::NotMatched => (Verdict::No, format!("No — {user} is not in the audience.")),
        };
        return Answer { verdict, headline, steps };
    }
    if let Some(e) = &f.unmatched {
        steps.push(Step::say(format!("Trigger: {}.", trigger_words(&e.trigger, user, e.at)), Some(true)));
        steps.push(audience_step(e, user));
        let headline = match &e.outcome {
            Outcome::MatchesAt { at } => {
                format!("Not yet — {user} is not in the audience yet; time alone puts them in on {}.", format_date(*at))
            }
            _ => format!("No — {user} was not in the audience when it last fired for them ({}).", format_date(e.at)),
        };
        let verdict = if matches!(e.outcome, Outcome::MatchesAt { .. }) { Verdict::Waiting } else { Verdict::No };
        return Answer { verdict, headline, steps };
    }
    let kept = f.retention_days;
    let (step, headline) = match (&f.trigger, f.last_event) {
        (TriggerFact::Event { name }, None) => (
            format!("It fires when {user} tracks \u{201c}{name}\u{201d}; they never have."),
            format!("No — {user} has never tracked \u{201c}{name}\u{201d}."),
        ),
        (TriggerFact::Event { name }, Some((at, n))) => (
            format!(
                "{user} tracked \u{201c}{name}\u{201d} {n} time{} (last on {}), but no decision is on record: the whisper was not active then, or the decision is older than {kept} days.",
                if n == 1 { "" } else { "s" },
                when(at)
            ),
            format!("No — it has not fired for {user} while active."),
        ),
        (TriggerFact::Launch, _) => (
            format!("It fires when {user} opens the app; no launch is on record while it was active (decisions are kept {kept} days)."),
            format!("No — {user} has not opened the app while it was active."),
        ),
        (TriggerFact::FirstMessage, _) => (
            format!("It fires when {user} sends their first message; none is on record while it was active (decisions are kept {kept} days)."),
            format!("No — {user} has not sent a first message while it was active."),
        ),
        (TriggerFact::Match, _) => (
            format!("It is checked whenever {user}'s properties change or time makes them match; no check is on record while it was active (decisions are kept {kept} days)."),
            format!("No — {user} has not been checked against it yet."),
        ),
    };
    steps.push(Step::say(step, Some(false)));
    no(headline, steps)
}

/// The stored facts about one manual message and one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageFacts {
    pub user: String,
    pub title: String,
    /// `draft`, `scheduled`, `sending`, `sent`, `stopped`.
    pub state: String,
    pub send_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub recipients: Option<i64>,
    pub delivery: Option<DeliveryFacts>,
    /// Chosen users (`Users` audience): whether this user was one.
    pub chosen: Option<bool>,
    /// Segment audience: the conditions against the user's values *now*.
    pub conditions_now: Vec<ConditionResult>,
    pub signed_up_at: i64,
}

/// Why `f.user` did or did not get the manual message `f.title`.
pub fn explain_message(f: &MessageFacts) -> Answer {
    let user = f.user.as_str();
    let mut steps = vec![];
    if let Some(d) = &f.delivery {
        if let Some(at) = f.send_at {
            steps.push(Step::say(
                format!("{user} was among the {} recipients fixed on {}.", f.recipients.unwrap_or(0), when(at)),
                Some(true),
            ));
        }
        delivery_steps(d, &mut steps);
        let (verdict, headline) = match d.state.as_str() {
            "cancelled" if f.state == "stopped" => {
                (Verdict::No, format!("No — the message was stopped before it reached {user}."))
            }
            "cancelled" => (Verdict::No, format!("No — the message was recalled before {user} saw it.")),
            "failed" => (Verdict::No, format!("No — the delivery to {user} failed.")),
            "pending" => (Verdict::Waiting, format!("Not yet — {user}'s copy is waiting to go out.")),
            _ => (Verdict::Yes, format!("Yes — {user} got \u{201c}{}\u{201d}.", f.title)),
        };
        return Answer { verdict, headline, steps };
    }
    let no = |headline: String, steps: Vec<Step>| Answer { verdict: Verdict::No, headline, steps };
    match f.state.as_str() {
        "draft" => {
            return no(
                format!("No — \u{201c}{}\u{201d} is a draft.", f.title),
                vec![Step::say("A draft goes to no one until it is sent.", Some(false))],
            )
        }
        "scheduled" => {
            let at = f.send_at.map(when).unwrap_or_default();
            return Answer {
                verdict: Verdict::Waiting,
                headline: format!("Not yet — \u{201c}{}\u{201d} is scheduled for {at}.", f.title),
                steps: vec![Step::say("Its recipients are fixed when it starts sending.", None)],
            };
        }
        _ => {}
    }
    let fixed = f.send_at.map(when).unwrap_or_else(|| "when it started".to_string());
    steps.push(Step::say(
        format!("Its {} recipients were fixed on {fixed}; {user} was not one of them.", f.recipients.unwrap_or(0)),
        Some(false),
    ));
    if f.send_at.is_some_and(|t| f.signed_up_at > t) {
        steps.push(Step::say(format!("{user} signed up on {}, after that.", when(f.signed_up_at)), Some(false)));
    }
    match f.chosen {
        Some(false) => steps.push(Step::say(format!("It went to chosen users; {user} was not chosen."), Some(false))),
        Some(true) => steps.push(Step::say(
            format!("{user} was chosen, but had no copy made (they may have been removed and added again)."),
            None,
        )),
        None => {
            let failed = f.conditions_now.iter().filter(|c| !c.passed).count();
            let text = if f.conditions_now.is_empty() {
                "Its audience was all users.".to_string()
            } else {
                format!(
                    "Its audience against {user}'s values now (the values when it was sent are not kept): {failed} of {} conditions fail.",
                    f.conditions_now.len()
                )
            };
            steps.push(Step { text, ok: Some(failed == 0), conditions: f.conditions_now.clone() });
        }
    }
    if let Some(t) = f.stopped_at {
        steps.push(Step::say(format!("Stopped on {}.", when(t)), Some(false)));
    }
    no(format!("No — {user} was not a recipient of \u{201c}{}\u{201d}.", f.title), steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(passed: bool, value: Option<&str>) -> ConditionResult {
        ConditionResult {
            property: "plan".into(),
            operator: Operator::Is,
            operand: "pro".into(),
            ty: PropType::Text,
            value: value.map(String::from),
            passed,
        }
    }

    fn facts() -> WhisperFacts {
        WhisperFacts {
            user: "Ann".into(),
            whisper: "Welcome".into(),
            status: "active".into(),
            status_since: 0,
            trigger: TriggerFact::Event { name: "signed-up".into() },
            delivery: None,
            matched: None,
            unmatched: None,
            unmatched_is_current: false,
            last_event: None,
            retention_days: 90,
        }
    }

    fn eval(outcome: Outcome, passed: bool, at: i64) -> Evaluation {
        Evaluation {
            at,
            revision: 1,
            trigger: TriggerFact::Event { name: "signed-up".into() },
            all_users: false,
            conditions: vec![cond(passed, Some(if passed { "pro" } else { "free" }))],
            outcome,
        }
    }

    #[test]
    fn a_user_who_failed_a_condition_is_told_which_with_the_value() {
        let mut f = facts();
        f.unmatched = Some(eval(Outcome::NotMatched, false, 86_400_000));
        let a = explain_whisper(&f);
        assert_eq!(a.verdict, Verdict::No);
        assert!(a.headline.contains("not in the audience"), "{}", a.headline);
        let audience = a.steps.iter().find(|s| !s.conditions.is_empty()).expect("the conditions");
        assert_eq!(audience.ok, Some(false));
        assert_eq!(audience.conditions[0].value_shown(), "free");
        assert_eq!(audience.conditions[0].test_text(), "plan is pro");
        assert!(a.steps[0].text.contains("tracked the event \u{201c}signed-up\u{201d} on 1970-01-02 00:00 UTC"));
    }

    #[test]
    fn a_user_who_matched_got_it_with_each_state() {
        let mut f = facts();
        f.matched = Some(eval(Outcome::Matched, true, 1000));
        f.delivery = Some(DeliveryFacts {
            created_at: 1000,
            state: "seen".into(),
            channel: None,
            sent_at: Some(2000),
            sent_via: Some("push".into()),
            seen_at: Some(3000),
            clicked_at: None,
            replied_at: None,
            failed_at: None,
            error: None,
        });
        let a = explain_whisper(&f);
        assert_eq!(a.verdict, Verdict::Yes);
        assert!(a.headline.starts_with("Yes — Ann got"));
        let texts: Vec<&str> = a.steps.iter().map(|s| s.text.as_str()).collect();
        assert!(texts.iter().any(|t| t.starts_with("Shown as a push notification")), "{texts:?}");
        assert!(texts.iter().any(|t| t.starts_with("Seen on")));
        assert!(texts.iter().any(|t| t.contains("passed every condition")));
        // A later miss is reported, and the card stays.
        f.unmatched = Some(eval(Outcome::NotMatched, false, 5000));
        let a = explain_whisper(&f);
        assert_eq!(a.verdict, Verdict::Yes);
        assert!(a.steps.iter().any(|s| s.text.starts_with("Later, on")));
    }

    #[test]
    fn paused_draft_and_never_triggered_say_so() {
        let mut f = facts();
        f.status = "draft".into();
        assert!(explain_whisper(&f).headline.contains("is a draft"));
        f.status = "paused".into();
        let a = explain_whisper(&f);
        assert!(a.steps[0].text.starts_with("Paused since"));
        assert!(a.headline.contains("never tracked"));
        f.status = "active".into();
        f.last_event = Some((5000, 2));
        assert!(explain_whisper(&f).steps[0].text.contains("2 times"));
        f.trigger = TriggerFact::Launch;
        assert!(explain_whisper(&f).headline.contains("opened the app"));
    }

    #[test]
    fn time_alone_makes_them_match_later() {
        let mut f = facts();
        f.trigger = TriggerFact::Match;
        f.unmatched = Some(eval(Outcome::MatchesAt { at: 10 * 86_400_000 }, false, 0));
        let a = explain_whisper(&f);
        assert_eq!(a.verdict, Verdict::Waiting);
        assert!(a.headline.contains("1970-01-11"), "{}", a.headline);
        f.unmatched_is_current = true;
        let a = explain_whisper(&f);
        assert!(a.steps[0].text.starts_with("Checked against Ann's values now"), "{:?}", a.steps);
        assert!(a.headline.contains("1970-01-11"), "{}", a.headline);
        f.unmatched = Some(eval(Outcome::NotMatched, false, 0));
        assert_eq!(explain_whisper(&f).headline, "No — Ann is not in the audience.");
    }

    #[test]
    fn manual_messages_explain_recipients() {
        let mut f = MessageFacts {
            user: "Bob".into(),
            title: "Sale".into(),
            state: "sent".into(),
            send_at: Some(1000),
            stopped_at: None,
            recipients: Some(3),
            delivery: None,
            chosen: None,
            conditions_now: vec![cond(false, None)],
            signed_up_at: 0,
        };
        let a = explain_message(&f);
        assert_eq!(a.verdict, Verdict::No);
        assert!(a.steps[0].text.contains("3 recipients"));
        assert_eq!(a.steps[1].conditions[0].value_shown(), "not set");
        f.state = "scheduled".into();
        assert_eq!(explain_message(&f).verdict, Verdict::Waiting);
    }

    #[test]
    fn day_conditions_read_naturally() {
        let c = ConditionResult {
            property: "signedUpAt".into(),
            operator: Operator::MoreThanDaysAgo,
            operand: "5".into(),
            ty: PropType::Date,
            value: Some(when(0)),
            passed: true,
        };
        assert_eq!(c.test_text(), "signedUpAt more than 5 days ago");
        assert_eq!(value_text(&Value::Number(3.0)), "3");
        assert_eq!(value_text(&Value::Number(2.5)), "2.5");
    }
}
