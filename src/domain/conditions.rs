//! The condition engine's pure half: a condition is `{property, operator,
//! value}`, a list of them is ANDed. `Condition::check` validates one
//! against the property catalog and produces a `Checked` condition, which
//! evaluates in memory here (for one user, on every event) and compiles to
//! SQL in `storage::audience` (for a whole audience). The two must agree.
//!
//! Semantics, shared by both evaluators:
//! - text tests are case-sensitive; `is not` also matches users without the
//!   property (they are not "gold"), as do number `!=` and version `is not`;
//!   every other test needs the property set;
//! - `more than N days ago` is `value < now − N days`; `less than N days
//!   ago` is `value > now − N days`; `exactly N days ago` is
//!   `now − (N+1) days < value ≤ now − N days`;
//! - `before D` is `value < D 00:00 UTC`; `after D` is `value ≥ (D+1) 00:00 UTC`.

use serde::{Deserialize, Serialize};

use super::{
    properties::{builtin, parse_iso8601, Builtin, PropType, Value, Version},
    Invalid,
};

pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Is,
    IsNot,
    Contains,
    StartsWith,
    IsSet,
    IsUnknown,
    Equals,
    NotEquals,
    LessThan,
    GreaterThan,
    MoreThanDaysAgo,
    LessThanDaysAgo,
    ExactlyDaysAgo,
    Before,
    After,
    IsTrue,
    IsFalse,
}

impl Operator {
    pub const ALL: [Operator; 17] = [
        Operator::Is,
        Operator::IsNot,
        Operator::Contains,
        Operator::StartsWith,
        Operator::IsSet,
        Operator::IsUnknown,
        Operator::Equals,
        Operator::NotEquals,
        Operator::LessThan,
        Operator::GreaterThan,
        Operator::MoreThanDaysAgo,
        Operator::LessThanDaysAgo,
        Operator::ExactlyDaysAgo,
        Operator::Before,
        Operator::After,
        Operator::IsTrue,
        Operator::IsFalse,
    ];

    /// The operators a property type offers, in the order a builder lists them.
    pub fn for_type(ty: PropType) -> &'static [Operator] {
        use Operator::*;
        match ty {
            PropType::Text => &[Is, IsNot, Contains, StartsWith, IsSet, IsUnknown],
            PropType::Number => &[Equals, NotEquals, LessThan, GreaterThan, IsSet, IsUnknown],
            PropType::Date => &[MoreThanDaysAgo, LessThanDaysAgo, ExactlyDaysAgo, Before, After, IsSet, IsUnknown],
            PropType::Boolean => &[IsTrue, IsFalse, IsSet, IsUnknown],
            PropType::Version => &[Is, IsNot, LessThan, GreaterThan, IsSet, IsUnknown],
        }
    }

    /// Words for the builder and summaries ("is", "more than … days ago").
    pub fn label(self, ty: PropType) -> &'static str {
        use Operator::*;
        match (self, ty) {
            (Is, _) => "is",
            (IsNot, _) => "is not",
            (Contains, _) => "contains",
            (StartsWith, _) => "starts with",
            (IsSet, _) => "is set",
            (IsUnknown, _) => "is unknown",
            (Equals, _) => "=",
            (NotEquals, _) => "≠",
            (LessThan, PropType::Version) => "is less than",
            (GreaterThan, PropType::Version) => "is greater than",
            (LessThan, _) => "<",
            (GreaterThan, _) => ">",
            (MoreThanDaysAgo, _) => "more than N days ago",
            (LessThanDaysAgo, _) => "less than N days ago",
            (ExactlyDaysAgo, _) => "exactly N days ago",
            (Before, _) => "before",
            (After, _) => "after",
            (IsTrue, _) => "is true",
            (IsFalse, _) => "is false",
        }
    }

    /// Whether the operator takes a value (`is set` does not).
    pub fn needs_value(self) -> bool {
        !matches!(self, Operator::IsSet | Operator::IsUnknown | Operator::IsTrue | Operator::IsFalse)
    }
}

/// A condition as a person or a client writes it; `value` is text as typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub property: String,
    pub operator: Operator,
    #[serde(default)]
    pub value: String,
}

/// Which property a checked condition reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Builtin(&'static Builtin),
    Custom(String),
}

/// The test a checked condition applies, with its operand parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Set,
    Unknown,
    TextIs(String),
    TextIsNot(String),
    Contains(String),
    StartsWith(String),
    NumEq(f64),
    NumNe(f64),
    NumLt(f64),
    NumGt(f64),
    /// `value < now − days`.
    OlderThanDays(i64),
    /// `value > now − days`.
    NewerThanDays(i64),
    /// `now − (days+1) < value ≤ now − days`.
    ExactlyDays(i64),
    /// `value < ms`.
    Before(i64),
    /// `value ≥ ms`.
    AtOrAfter(i64),
    True,
    False,
    VerIs(Version),
    VerIsNot(Version),
    VerLt(Version),
    VerGt(Version),
}

/// A validated condition, ready to evaluate or compile.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub target: Target,
    pub ty: PropType,
    pub test: Test,
}

pub const MAX_DAYS: i64 = 100_000;

impl Condition {
    /// Validates against the built-ins and `custom_type` (the app's property
    /// catalog). Messages name the condition's property so a builder can
    /// show them beside it.
    pub fn check(&self, custom_type: impl Fn(&str) -> Option<PropType>) -> Result<Checked, Invalid> {
        let field = "conditions";
        // No database stores U+0000 in text (PostgreSQL refuses it): a
        // condition naming it can match nothing, and is refused as typed.
        if self.property.contains('\0') || self.value.contains('\0') {
            return Err(Invalid::new(field, "A condition cannot contain the character U+0000."));
        }
        let (target, ty) = match builtin(&self.property) {
            Some(b) => (Target::Builtin(b), b.ty),
            None => match custom_type(&self.property) {
                Some(ty) => (Target::Custom(self.property.clone()), ty),
                None => {
                    return Err(Invalid::new(field, format!("Unknown property {:?}.", self.property)));
                }
            },
        };
        if !Operator::for_type(ty).contains(&self.operator) {
            return Err(Invalid::new(
                field,
                format!(
                    "{:?} is a {} property: {:?} does not apply to it.",
                    self.property,
                    ty.as_str(),
                    serde_json::to_value(self.operator)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ),
            ));
        }
        let raw = self.value.trim();
        let bad = |what: &str| Invalid::new(field, format!("{:?}: {what}", self.property));
        let number = || raw.parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(|| bad("enter a number."));
        let days = || {
            raw.parse::<i64>()
                .ok()
                .filter(|d| (0..=MAX_DAYS).contains(d))
                .ok_or_else(|| bad("enter a whole number of days (0 or more)."))
        };
        let date = || {
            parse_iso8601(raw)
                .map(|ms| ms.div_euclid(DAY_MS) * DAY_MS)
                .ok_or_else(|| bad("enter a date as YYYY-MM-DD."))
        };
        let version = || Version::parse(raw).ok_or_else(|| bad("enter a version such as 2.10.1."));
        let text = || {
            if raw.is_empty() {
                Err(bad("enter a value."))
            } else {
                Ok(self.value.clone())
            }
        };
        use Operator as O;
        let test = match (ty, self.operator) {
            (_, O::IsSet) => Test::Set,
            (_, O::IsUnknown) => Test::Unknown,
            (PropType::Text, O::Is) => Test::TextIs(text()?),
            (PropType::Text, O::IsNot) => Test::TextIsNot(text()?),
            (PropType::Text, O::Contains) => Test::Contains(text()?),
            (PropType::Text, O::StartsWith) => Test::StartsWith(text()?),
            (PropType::Number, O::Equals) => Test::NumEq(number()?),
            (PropType::Number, O::NotEquals) => Test::NumNe(number()?),
            (PropType::Number, O::LessThan) => Test::NumLt(number()?),
            (PropType::Number, O::GreaterThan) => Test::NumGt(number()?),
            (PropType::Date, O::MoreThanDaysAgo) => Test::OlderThanDays(days()?),
            (PropType::Date, O::LessThanDaysAgo) => Test::NewerThanDays(days()?),
            (PropType::Date, O::ExactlyDaysAgo) => Test::ExactlyDays(days()?),
            (PropType::Date, O::Before) => Test::Before(date()?),
            (PropType::Date, O::After) => Test::AtOrAfter(date()? + DAY_MS),
            (PropType::Boolean, O::IsTrue) => Test::True,
            (PropType::Boolean, O::IsFalse) => Test::False,
            (PropType::Version, O::Is) => Test::VerIs(version()?),
            (PropType::Version, O::IsNot) => Test::VerIsNot(version()?),
            (PropType::Version, O::LessThan) => Test::VerLt(version()?),
            (PropType::Version, O::GreaterThan) => Test::VerGt(version()?),
            _ => return Err(bad("this operator does not apply.")),
        };
        Ok(Checked { target, ty, test })
    }
}

/// Validates a whole list (ANDed), reporting the first problem.
pub fn check_all(
    conditions: &[Condition],
    custom_type: impl Fn(&str) -> Option<PropType>,
) -> Result<Vec<Checked>, Invalid> {
    conditions.iter().map(|c| c.check(&custom_type)).collect()
}

/// What the in-memory evaluator needs to know about one user.
pub trait UserProps {
    /// A built-in's value (`appVersion` as `Value::Text`).
    fn builtin(&self, b: &Builtin) -> Option<Value>;
    fn custom(&self, name: &str) -> Option<Value>;
}

impl Checked {
    /// Does this user match, at `now_ms`?
    pub fn matches(&self, user: &impl UserProps, now_ms: i64) -> bool {
        let value = match &self.target {
            Target::Builtin(b) => user.builtin(b),
            Target::Custom(name) => user.custom(name),
        };
        // A value of another type than the catalog's is treated as unset
        // (the API refuses such writes; this keeps both evaluators aligned).
        let value = value.filter(|v| match (self.ty, v) {
            (PropType::Version, Value::Text(s)) => Version::parse(s).is_some(),
            (ty, v) => v.ty() == ty,
        });
        let Some(value) = value else {
            return matches!(self.test, Test::Unknown | Test::TextIsNot(_) | Test::NumNe(_) | Test::VerIsNot(_));
        };
        match (&self.test, &value) {
            (Test::Set, _) => true,
            (Test::Unknown, _) => false,
            (Test::TextIs(x), Value::Text(v)) => v == x,
            (Test::TextIsNot(x), Value::Text(v)) => v != x,
            (Test::Contains(x), Value::Text(v)) => v.contains(x.as_str()),
            (Test::StartsWith(x), Value::Text(v)) => v.starts_with(x.as_str()),
            (Test::NumEq(x), Value::Number(v)) => v == x,
            (Test::NumNe(x), Value::Number(v)) => v != x,
            (Test::NumLt(x), Value::Number(v)) => v < x,
            (Test::NumGt(x), Value::Number(v)) => v > x,
            (Test::OlderThanDays(d), Value::Date(v)) => *v < now_ms - d * DAY_MS,
            (Test::NewerThanDays(d), Value::Date(v)) => *v > now_ms - d * DAY_MS,
            (Test::ExactlyDays(d), Value::Date(v)) => *v > now_ms - (d + 1) * DAY_MS && *v <= now_ms - d * DAY_MS,
            (Test::Before(t), Value::Date(v)) => v < t,
            (Test::AtOrAfter(t), Value::Date(v)) => v >= t,
            (Test::True, Value::Boolean(b)) => *b,
            (Test::False, Value::Boolean(b)) => !*b,
            (Test::VerIs(x) | Test::VerIsNot(x) | Test::VerLt(x) | Test::VerGt(x), Value::Text(s)) => {
                let Some(v) = Version::parse(s) else { return false };
                match &self.test {
                    Test::VerIs(_) => v == *x,
                    Test::VerIsNot(_) => v != *x,
                    Test::VerLt(_) => v < *x,
                    _ => v > *x,
                }
            }
            _ => false,
        }
    }
}

/// Does the user match every condition (an empty list matches everyone)?
pub fn matches_all(conditions: &[Checked], user: &impl UserProps, now_ms: i64) -> bool {
    conditions.iter().all(|c| c.matches(user, now_ms))
}

impl Checked {
    /// The times at which this condition holds for the user, if their values
    /// do not change: `(from, until)`, both inclusive, `None` for unbounded;
    /// `Err(())` when it never holds. Only "N days ago" tests depend on time.
    fn window(&self, user: &impl UserProps, now_ms: i64) -> Result<(Option<i64>, Option<i64>), ()> {
        let value = match &self.target {
            Target::Builtin(b) => user.builtin(b),
            Target::Custom(name) => user.custom(name),
        };
        match (&self.test, value) {
            (Test::OlderThanDays(d), Some(Value::Date(v))) if self.ty == PropType::Date => {
                // v < t − d·DAY  ⇔  t ≥ v + d·DAY + 1
                Ok((Some(v.saturating_add(d * DAY_MS).saturating_add(1)), None))
            }
            (Test::NewerThanDays(d), Some(Value::Date(v))) if self.ty == PropType::Date => {
                // v > t − d·DAY  ⇔  t ≤ v + d·DAY − 1
                Ok((None, Some(v.saturating_add(d * DAY_MS).saturating_sub(1))))
            }
            (Test::ExactlyDays(d), Some(Value::Date(v))) if self.ty == PropType::Date => {
                // t − (d+1)·DAY < v ≤ t − d·DAY  ⇔  v + d·DAY ≤ t ≤ v + (d+1)·DAY − 1
                Ok((Some(v.saturating_add(d * DAY_MS)), Some(v.saturating_add((d + 1) * DAY_MS).saturating_sub(1))))
            }
            _ if self.matches(user, now_ms) => Ok((None, None)),
            _ => Err(()),
        }
    }
}

/// When the user next matches every condition, from `now_ms` on, if their
/// values do not change: `Some(now_ms)` if they match now, `Some(t)` if
/// time alone makes them match at `t` (a "more than N days ago" condition
/// becoming true), `None` if time alone never does. Exact to the
/// millisecond: `matches_all(c, u, t)` holds at the returned `t`.
pub fn next_match(conditions: &[Checked], user: &impl UserProps, now_ms: i64) -> Option<i64> {
    let (mut from, mut until) = (now_ms, i64::MAX);
    for c in conditions {
        let (lo, hi) = c.window(user, now_ms).ok()?;
        from = from.max(lo.unwrap_or(i64::MIN));
        until = until.min(hi.unwrap_or(i64::MAX));
    }
    (from <= until).then_some(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct U {
        builtins: HashMap<&'static str, Value>,
        custom: HashMap<String, Value>,
    }
    impl UserProps for U {
        fn builtin(&self, b: &Builtin) -> Option<Value> {
            self.builtins.get(b.name).cloned()
        }
        fn custom(&self, name: &str) -> Option<Value> {
            self.custom.get(name).cloned()
        }
    }

    fn catalog(name: &str) -> Option<PropType> {
        match name {
            "plan" => Some(PropType::Text),
            "seats" => Some(PropType::Number),
            "trialEndsAt" => Some(PropType::Date),
            "vip" => Some(PropType::Boolean),
            _ => None,
        }
    }

    fn cond(p: &str, op: Operator, v: &str) -> Checked {
        Condition { property: p.into(), operator: op, value: v.into() }.check(catalog).unwrap()
    }

    const NOW: i64 = 1_795_000_000_000;

    #[test]
    fn relative_dates_use_the_given_clock() {
        let mut u = U::default();
        u.builtins.insert("signedUpAt", Value::Date(NOW - 6 * DAY_MS));
        let c = cond("signedUpAt", Operator::MoreThanDaysAgo, "5");
        assert!(c.matches(&u, NOW));
        assert!(!c.matches(&u, NOW - 2 * DAY_MS), "moving the clock back changes the answer");
        assert!(cond("signedUpAt", Operator::ExactlyDaysAgo, "6").matches(&u, NOW));
        assert!(!cond("signedUpAt", Operator::ExactlyDaysAgo, "5").matches(&u, NOW));
        assert!(cond("signedUpAt", Operator::LessThanDaysAgo, "7").matches(&u, NOW));
        assert!(cond("signedUpAt", Operator::Before, "2026-11-13").matches(&u, NOW));
        assert!(cond("signedUpAt", Operator::After, "2026-11-11").matches(&u, NOW));
        assert!(!cond("signedUpAt", Operator::After, "2026-11-12").matches(&u, NOW));
    }

    #[test]
    fn a_nul_character_is_refused_as_typed() {
        for (p, v) in [("plan", "a\0b"), ("pl\0an", "gold")] {
            let e = Condition { property: p.into(), operator: Operator::IsNot, value: v.into() }
                .check(catalog)
                .unwrap_err();
            assert_eq!(e.field, "conditions");
            assert!(e.message.contains("U+0000"), "{}", e.message);
        }
    }

    #[test]
    fn versions_compare_as_versions() {
        let mut u = U::default();
        u.builtins.insert("appVersion", Value::Text("2.10".into()));
        assert!(cond("appVersion", Operator::GreaterThan, "2.9").matches(&u, NOW));
        assert!(cond("appVersion", Operator::Is, "2.10.0").matches(&u, NOW));
        assert!(!cond("appVersion", Operator::LessThan, "2.9").matches(&u, NOW));
    }

    #[test]
    fn unset_properties_match_only_unknown_and_negations() {
        let u = U::default();
        assert!(cond("plan", Operator::IsUnknown, "").matches(&u, NOW));
        assert!(cond("plan", Operator::IsNot, "gold").matches(&u, NOW));
        assert!(!cond("plan", Operator::Is, "gold").matches(&u, NOW));
        assert!(!cond("plan", Operator::IsSet, "").matches(&u, NOW));
        assert!(!cond("vip", Operator::IsFalse, "").matches(&u, NOW));
        assert!(cond("seats", Operator::NotEquals, "3").matches(&u, NOW));
    }

    #[test]
    fn text_number_boolean() {
        let mut u = U::default();
        u.custom.insert("plan".into(), Value::Text("Gold plus".into()));
        u.custom.insert("seats".into(), Value::Number(12.0));
        u.custom.insert("vip".into(), Value::Boolean(true));
        assert!(cond("plan", Operator::StartsWith, "Gold").matches(&u, NOW));
        assert!(!cond("plan", Operator::StartsWith, "gold").matches(&u, NOW), "case-sensitive");
        assert!(cond("plan", Operator::Contains, "d p").matches(&u, NOW));
        assert!(cond("seats", Operator::GreaterThan, "11.5").matches(&u, NOW));
        assert!(cond("vip", Operator::IsTrue, "").matches(&u, NOW));
        let all = [cond("plan", Operator::IsSet, ""), cond("seats", Operator::LessThan, "10")];
        assert!(!matches_all(&all, &u, NOW));
        assert!(matches_all(&[], &u, NOW));
    }

    #[test]
    fn validation_messages_are_clear() {
        let check =
            |p: &str, op, v: &str| Condition { property: p.into(), operator: op, value: v.into() }.check(catalog);
        assert_eq!(check("nope", Operator::Is, "x").unwrap_err().message, "Unknown property \"nope\".");
        assert_eq!(
            check("seats", Operator::Contains, "x").unwrap_err().message,
            "\"seats\" is a number property: \"contains\" does not apply to it."
        );
        assert_eq!(check("seats", Operator::Equals, "many").unwrap_err().message, "\"seats\": enter a number.");
        assert!(check("signedUpAt", Operator::MoreThanDaysAgo, "-1").is_err());
        assert!(check("signedUpAt", Operator::Before, "next week").is_err());
        assert!(check("appVersion", Operator::LessThan, "beta").is_err());
        assert!(check("plan", Operator::Is, "  ").is_err());
        assert!(check("firstName", Operator::Is, "Ada").is_ok(), "aliases resolve");
    }

    #[test]
    fn every_type_offers_is_set_and_is_unknown() {
        for ty in [PropType::Text, PropType::Number, PropType::Date, PropType::Boolean, PropType::Version] {
            assert!(Operator::for_type(ty).contains(&Operator::IsSet));
            assert!(Operator::for_type(ty).contains(&Operator::IsUnknown));
        }
    }

    #[test]
    fn next_match_agrees_with_the_evaluator_hour_by_hour() {
        use crate::domain::properties::BUILTINS;
        let signed = BUILTINS.iter().find(|b| b.name == "signedUpAt").unwrap();
        let seen = BUILTINS.iter().find(|b| b.name == "lastSeenAt").unwrap();
        let cond = |b: &'static Builtin, test: Test| Checked { target: Target::Builtin(b), ty: PropType::Date, test };
        let sets = [
            vec![cond(signed, Test::OlderThanDays(1))],
            vec![cond(seen, Test::OlderThanDays(7))],
            vec![cond(signed, Test::OlderThanDays(5)), cond(seen, Test::NewerThanDays(3))],
            vec![cond(signed, Test::ExactlyDays(2))],
            vec![cond(signed, Test::NewerThanDays(2))],
            vec![cond(signed, Test::OlderThanDays(3)), cond(seen, Test::OlderThanDays(1))],
            vec![],
        ];
        let now = 1_000 * DAY_MS;
        let mut seed = 7u64;
        let mut rand = move |n: i64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as i64).rem_euclid(n)
        };
        for _ in 0..300 {
            let mut u = U::default();
            u.builtins.insert("signedUpAt", Value::Date(now - rand(10 * DAY_MS)));
            if rand(4) > 0 {
                u.builtins.insert("lastSeenAt", Value::Date(now - rand(10 * DAY_MS)));
            }
            for c in &sets {
                let expected = (0..24 * 40).map(|h| now + h * 3_600_000).find(|&t| matches_all(c, &u, t));
                let got = next_match(c, &u, now);
                match (got, expected) {
                    (Some(t), Some(e)) => {
                        assert!(matches_all(c, &u, t), "matches at the time it names");
                        assert!(t <= e && e - t < 3_600_000, "the first hour it matches: {t} vs {e}");
                    }
                    (None, None) => {}
                    // Matching for less than the gap between two sampled hours.
                    (Some(t), None) => assert!(matches_all(c, &u, t) && !matches_all(c, &u, t + 3_600_000)),
                    (None, Some(e)) => panic!("missed a match at {e} for {c:?}"),
                }
            }
        }
    }
}
