//! User properties: the built-in ones every user has, custom ones a
//! customer sets, their types, and how raw JSON values become typed values.

use serde::{Deserialize, Serialize};

use super::Invalid;

pub const MAX_PROPERTY_NAME_CHARS: usize = 128;
pub const MAX_TEXT_VALUE_CHARS: usize = 1024;
/// The largest number a property (or an event's) may hold, either sign.
/// PostgreSQL's jsonb writes numbers out in full (f64::MAX in 309 digits),
/// and reading those back does not always land on a finite f64 again; with
/// this bound every stored number reads back.
pub const MAX_NUMBER: f64 = 1e300;
pub const MAX_CUSTOM_PROPERTIES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropType {
    Text,
    Number,
    Boolean,
    Date,
    Version,
}

impl PropType {
    pub fn as_str(self) -> &'static str {
        match self {
            PropType::Text => "text",
            PropType::Number => "number",
            PropType::Boolean => "boolean",
            PropType::Date => "date",
            PropType::Version => "version",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => PropType::Text,
            "number" => PropType::Number,
            "boolean" => PropType::Boolean,
            "date" => PropType::Date,
            "version" => PropType::Version,
            _ => return None,
        })
    }
}

/// A built-in property: its public name, aliases, and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub ty: PropType,
    /// Column holding it in the users table.
    pub column: &'static str,
}

pub const BUILTINS: &[Builtin] = &[
    Builtin { name: "signedUpAt", aliases: &[], ty: PropType::Date, column: "signed_up_at" },
    Builtin { name: "lastSeenAt", aliases: &[], ty: PropType::Date, column: "last_seen_at" },
    Builtin { name: "appVersion", aliases: &[], ty: PropType::Version, column: "app_version" },
    Builtin { name: "platform", aliases: &[], ty: PropType::Text, column: "platform" },
    Builtin { name: "givenName", aliases: &["firstName"], ty: PropType::Text, column: "given_name" },
    Builtin { name: "surname", aliases: &["lastName"], ty: PropType::Text, column: "surname" },
    Builtin { name: "email", aliases: &[], ty: PropType::Text, column: "email" },
    Builtin { name: "userId", aliases: &[], ty: PropType::Text, column: "user_id" },
];

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name || b.aliases.contains(&name))
}

/// A typed property value. Dates are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Text(String),
    Number(f64),
    Boolean(bool),
    Date(i64),
}

impl Value {
    pub fn ty(&self) -> PropType {
        match self {
            Value::Text(_) => PropType::Text,
            Value::Number(_) => PropType::Number,
            Value::Boolean(_) => PropType::Boolean,
            Value::Date(_) => PropType::Date,
        }
    }

    /// Reads a custom property from JSON: strings that are ISO 8601 dates
    /// become dates; other strings text; numbers; booleans.
    pub fn from_json(name: &str, v: &serde_json::Value) -> Result<Value, Invalid> {
        match v {
            serde_json::Value::String(s) => {
                if s.chars().count() > MAX_TEXT_VALUE_CHARS {
                    return Err(Invalid::new(
                        "properties",
                        format!("Property {name:?} is longer than {MAX_TEXT_VALUE_CHARS} characters."),
                    ));
                }
                super::text::refuse_control("properties", &format!("Property {name:?}"), s, true)?;
                Ok(match parse_iso8601(s) {
                    Some(ms) => Value::Date(ms),
                    None => Value::Text(s.clone()),
                })
            }
            serde_json::Value::Number(n) => {
                n.as_f64().filter(|f| f.abs() <= MAX_NUMBER).map(Value::Number).ok_or_else(|| {
                    Invalid::new("properties", format!("Property {name:?} must be a number from -1e300 to 1e300."))
                })
            }
            serde_json::Value::Bool(b) => Ok(Value::Boolean(*b)),
            _ => Err(Invalid::new(
                "properties",
                format!("Property {name:?} must be a string, number, boolean or ISO 8601 date."),
            )),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Text(s) => serde_json::Value::String(s.clone()),
            // Whole numbers stay integers in JSON (3, not 3.0).
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => serde_json::json!(*n as i64),
            Value::Number(n) => serde_json::json!(n),
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Date(ms) => serde_json::Value::String(format_iso8601(*ms)),
        }
    }
}

/// Custom property names: 1 to 128 characters of letters, digits, `_` and
/// `-`, not starting with a digit, and not a built-in's name.
pub fn check_custom_name(name: &str) -> Result<(), Invalid> {
    let n = name.chars().count();
    if n == 0 || n > MAX_PROPERTY_NAME_CHARS {
        return Err(Invalid::new(
            "properties",
            format!("Property names must be 1 to {MAX_PROPERTY_NAME_CHARS} characters long."),
        ));
    }
    let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        return Err(Invalid::new(
            "properties",
            format!("Property name {name:?} may use only letters, digits, '_' and '-', and not start with a digit."),
        ));
    }
    if builtin(name).is_some() {
        return Err(Invalid::new("properties", format!("{name:?} is a built-in property: set it at the top level.")));
    }
    Ok(())
}

/// Parses `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or a
/// `±HH:MM` offset, into Unix milliseconds.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b.len() < 16 || b[13] != b':' {
        return None;
    }
    let (h, mi) = (num(11..13)?, num(14..16)?);
    let mut i = 16;
    let mut sec = 0;
    let mut frac_ms = 0;
    if b.get(i) == Some(&b':') {
        sec = num(i + 1..i + 3)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start {
                return None;
            }
            let digits = &s[start..end.min(start + 3)];
            frac_ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
            i = end;
        }
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += ((h * 60 + mi) * 60 + sec) * 1000 + frac_ms;
    match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => Some(ms),
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let off = (num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?) * 60_000;
            Some(if *sign == b'+' { ms - off } else { ms + off })
        }
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_iso8601(ms: i64) -> String {
    let day = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (h, m, s, f) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{}T{h:02}:{m:02}:{s:02}.{f:03}Z", super::format_date(day * 86_400_000))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (H. Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A version as comparable numeric parts: "2.10" > "2.9", "1.0" = "1".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches(['v', 'V']);
        if s.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for part in s.split('.') {
            // "3-beta" counts as 3; a part with no leading digits is invalid.
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            parts.push(digits.parse().ok()?);
        }
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(Version(parts))
    }

    /// A string whose byte order is the version order (each part as 10
    /// zero-padded digits), so SQL can compare versions as text.
    pub fn sort_key(&self) -> String {
        self.0.iter().map(|p| format!("{:010}", p.min(&9_999_999_999))).collect::<Vec<_>>().join(".")
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| self.0.get(i).copied().unwrap_or(0).cmp(&other.0.get(i).copied().unwrap_or(0)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// A property value as the dashboard shows it (and personalisation uses it).
pub fn value_text(v: Value) -> String {
    match v {
        Value::Text(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Date(ms) => format_iso8601(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_parse() {
        assert_eq!(parse_iso8601("1970-01-01"), Some(0));
        assert_eq!(parse_iso8601("2026-11-18T11:06:40Z"), Some(1_795_000_000_000));
        assert_eq!(parse_iso8601("2026-11-18T11:06:40.5Z"), Some(1_795_000_000_500));
        assert_eq!(parse_iso8601("2026-11-18T13:06:40+02:00"), Some(1_795_000_000_000));
        assert_eq!(parse_iso8601("2000-02-29"), Some(951_782_400_000));
        for bad in ["2001-02-29", "2026-13-01", "2026-11-18T25:00Z", "hello", "2026-11-18T06:13:20", "20261118"] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert_eq!(format_iso8601(1_795_000_000_500), "2026-11-18T11:06:40.500Z");
        for ms in [0, 951_782_400_000, 1_795_000_000_123, -86_400_001] {
            assert_eq!(parse_iso8601(&format_iso8601(ms)), Some(ms));
        }
    }

    #[test]
    fn json_values_get_types() {
        assert_eq!(Value::from_json("a", &serde_json::json!("2026-01-02")).unwrap().ty(), PropType::Date);
        assert_eq!(Value::from_json("a", &serde_json::json!("gold")).unwrap(), Value::Text("gold".into()));
        assert_eq!(Value::from_json("a", &serde_json::json!(3.5)).unwrap(), Value::Number(3.5));
        assert_eq!(Value::from_json("a", &serde_json::json!(true)).unwrap(), Value::Boolean(true));
        assert!(Value::from_json("a", &serde_json::json!({"x": 1})).is_err());
        assert!(Value::from_json("a", &serde_json::json!(null)).is_err());
        assert!(Value::from_json("a", &serde_json::json!("x".repeat(1025))).is_err());
    }

    #[test]
    fn custom_names_are_checked() {
        assert!(check_custom_name("plan_tier-2").is_ok());
        assert!(check_custom_name(&"a".repeat(128)).is_ok());
        assert!(check_custom_name(&"a".repeat(129)).is_err());
        for bad in ["", "9lives", "a b", "a.b", "<script>", "firstName", "email"] {
            assert!(check_custom_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_compare_as_versions() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("2.10") > v("2.9"));
        assert!(v("1.0") == v("1"));
        assert!(v("1.0.1") > v("1"));
        assert!(v("v3-beta") == v("3"));
        assert!(Version::parse("beta").is_none());
        assert!(Version::parse("").is_none());
        assert!(v("2.10").sort_key() > v("2.9").sort_key());
        assert_eq!(v("1.0").sort_key(), v("1").sort_key());
    }
}
