//! Office hours: an app's time zone and weekly opening hours (several
//! ranges a day), and the reply a user gets when they write outside them.
//! The rules here are pure (parsing and validating what a teammate typed);
//! evaluating them at an instant needs the time zone database, which only
//! the server has (`engine::office`).

use serde::{Deserialize, Serialize};

use super::{template, text::refuse_control, Invalid};

pub const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
pub const MAX_REPLY_CHARS: usize = 1000;

/// `[start, end)` in minutes after local midnight, `end` up to 24:00.
pub type Range = (u16, u16);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeHours {
    /// Off: the team is always reachable, no reply is sent.
    pub enabled: bool,
    /// An IANA time zone name, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// Monday first.
    pub days: [Vec<Range>; 7],
    /// Sent to a user who writes outside the hours (personalised like a whisper).
    pub reply: String,
}

impl Default for OfficeHours {
    fn default() -> Self {
        let weekday = vec![(9 * 60, 17 * 60)];
        OfficeHours {
            enabled: false,
            time_zone: "UTC".into(),
            days: [weekday.clone(), weekday.clone(), weekday.clone(), weekday.clone(), weekday, vec![], vec![]],
            reply: "Thanks, {{ firstName || there }}! We're away right now and will answer when we're back.".into(),
        }
    }
}

fn minutes(field: &'static str, s: &str) -> Result<u16, Invalid> {
    let bad = || Invalid::new(field, format!("{s:?} is not a time: write it like 09:00."));
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// One day's hours as typed: `09:00-12:00, 13:00-17:30`, or empty (closed).
pub fn parse_day(field: &'static str, raw: &str) -> Result<Vec<Range>, Invalid> {
    let mut ranges = vec![];
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| Invalid::new(field, format!("{part:?}: write a range like 09:00-17:00.")))?;
        let (start, end) = (minutes(field, a)?, minutes(field, b)?);
        if start >= end {
            return Err(Invalid::new(field, format!("{part:?}: a range must end after it starts.")));
        }
        ranges.push((start, end));
    }
    ranges.sort();
    if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(Invalid::new(field, "Ranges must not overlap."));
    }
    Ok(ranges)
}

/// A day's hours as the form shows them.
pub fn format_day(ranges: &[Range]) -> String {
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    ranges.iter().map(|(a, b)| format!("{}-{}", hm(*a), hm(*b))).collect::<Vec<_>>().join(", ")
}

impl OfficeHours {
    /// Validates a form: the time zone's spelling (the server checks it
    /// exists), each day's ranges, and the reply.
    pub fn parse(enabled: bool, time_zone: &str, days: [&str; 7], reply: &str) -> Result<OfficeHours, Vec<Invalid>> {
        const FIELDS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
        let mut errs = vec![];
        let tz = time_zone.trim();
        if tz.is_empty() || tz.len() > 64 || !tz.chars().all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c)) {
            errs.push(Invalid::new("time_zone", "Choose a time zone such as Europe/Paris or UTC."));
        }
        let mut parsed: [Vec<Range>; 7] = Default::default();
        for (i, raw) in days.iter().enumerate() {
            match parse_day(FIELDS[i], raw) {
                Ok(r) => parsed[i] = r,
                Err(e) => errs.push(e),
            }
        }
        let reply = reply.trim();
        if reply.is_empty() || reply.chars().count() > MAX_REPLY_CHARS {
            errs.push(Invalid::new("reply", format!("Write a reply of 1 to {MAX_REPLY_CHARS} characters.")));
        } else if let Err(e) = refuse_control("reply", "The reply", reply, true) {
            errs.push(e);
        } else if let Err(e) = template::parse(reply) {
            errs.push(Invalid::new("reply", e.to_string()));
        }
        if enabled && errs.is_empty() && parsed.iter().all(Vec::is_empty) {
            errs.push(Invalid::new("monday", "Open at least one range in the week, or turn office hours off."));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(OfficeHours { enabled, time_zone: tz.to_string(), days: parsed, reply: reply.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_and_format() {
        assert_eq!(parse_day("monday", "09:00-12:00, 13:00-17:30").unwrap(), vec![(540, 720), (780, 1050)]);
        assert_eq!(parse_day("monday", " ").unwrap(), vec![]);
        assert_eq!(parse_day("monday", "22:00-24:00").unwrap(), vec![(1320, 1440)]);
        assert!(parse_day("monday", "17:00-09:00").is_err());
        assert!(parse_day("monday", "9-17").is_err());
        assert!(parse_day("monday", "09:00-12:00, 11:00-13:00").unwrap_err().message.contains("overlap"));
        assert!(parse_day("monday", "09:60-10:00").is_err());
        assert_eq!(format_day(&[(540, 720), (780, 1050)]), "09:00-12:00, 13:00-17:30");
    }

    #[test]
    fn forms_are_checked_field_by_field() {
        let week = ["09:00-17:00", "", "", "", "", "", ""];
        assert!(OfficeHours::parse(true, "Europe/Paris", week, "Back soon").is_ok());
        let errs = OfficeHours::parse(true, "Not a zone!", ["x", "", "", "", "", "", ""], "{{ oops").unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["time_zone", "monday", "reply"]);
        assert!(OfficeHours::parse(true, "UTC", [""; 7], "Back soon").is_err(), "open at least once");
        assert!(OfficeHours::parse(false, "UTC", [""; 7], "Back soon").is_ok());
    }
}
