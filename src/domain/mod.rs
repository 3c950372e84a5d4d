//! Pure product rules shared by the server and the browser: no I/O, no
//! sqlx/axum/tokio. Validation lives here so a value that passed a
//! constructor is valid everywhere (the form and the server agree).

pub mod app;
pub mod audit;
pub mod conditions;
pub mod conversation;
pub mod email;
pub mod explain;
pub mod manual;
pub mod messages;
pub mod office_hours;
pub mod properties;
pub mod teammate;
pub mod template;
pub mod text;
pub mod users;
pub mod whisper;

/// A rejected input: which field, and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// Trims a free-text name and checks it is present and not absurdly long.
pub fn parse_name(field: &'static str, what: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Invalid::new(field, format!("Enter {what}.")));
    }
    if name.chars().count() > max {
        return Err(Invalid::new(field, format!("Keep {what} under {max} characters.")));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(field, format!("{} cannot contain control characters.", capitalise(what))));
    }
    Ok(name.to_string())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `YYYY-MM-DD` (UTC) for a Unix-millisecond time. Pure arithmetic, so the
/// server render and the browser agree to the character.
pub fn format_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_format_in_utc() {
        assert_eq!(super::format_date(0), "1970-01-01");
        assert_eq!(super::format_date(1_795_000_000_000), "2026-11-18");
        assert_eq!(super::format_date(951_782_400_000), "2000-02-29");
        assert_eq!(super::format_date(-86_400_000), "1969-12-31");
    }
}
