//! Office hours at an instant: open or not, when the team is next back,
//! when it last closed, in the app's time zone (the bundled IANA database,
//! so daylight-saving changes fall where they do in that zone).

use jiff::{civil::Date, tz::TimeZone, Timestamp};

use crate::domain::office_hours::{OfficeHours, Range};

/// An app's hours, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    days: [Vec<Range>; 7],
}

/// Every time zone name the database knows, sorted (for the settings form).
pub fn time_zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_string()).collect();
    names.sort();
    names
}

/// Is this a time zone the database knows?
pub fn known_time_zone(name: &str) -> bool {
    jiff::tz::db().get(name).is_ok()
}

impl Schedule {
    /// `None` when office hours are off or the time zone is unknown.
    pub fn of(hours: &OfficeHours) -> Option<Schedule> {
        if !hours.enabled {
            return None;
        }
        let tz = jiff::tz::db().get(&hours.time_zone).ok()?;
        Some(Schedule { tz, days: hours.days.clone() })
    }

    fn local(&self, ms: i64) -> Option<(Date, usize, u16)> {
        let z = Timestamp::from_millisecond(ms).ok()?.to_zoned(self.tz.clone());
        let day = z.weekday().to_monday_zero_offset() as usize;
        Some((z.date(), day, z.hour() as u16 * 60 + z.minute() as u16))
    }

    /// The instant a local time of `date` falls at (a time skipped by a
    /// daylight-saving change counts as the first instant after it).
    fn instant(&self, date: Date, minute: u16) -> Option<i64> {
        let (date, minute) = if minute >= 24 * 60 { (date.tomorrow().ok()?, minute - 24 * 60) } else { (date, minute) };
        let dt = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        Some(self.tz.to_ambiguous_zoned(dt).compatible().ok()?.timestamp().as_millisecond())
    }

    pub fn is_open(&self, now_ms: i64) -> bool {
        let Some((_, day, minute)) = self.local(now_ms) else { return false };
        self.days[day].iter().any(|&(a, b)| a <= minute && minute < b)
    }

    /// When the team is next open: `now_ms` if it is open now; `None` if
    /// the week has no hours.
    pub fn next_open(&self, now_ms: i64) -> Option<i64> {
        if self.is_open(now_ms) {
            return Some(now_ms);
        }
        let (mut date, mut day, _) = self.local(now_ms)?;
        for _ in 0..8 {
            for &(start, _) in &self.days[day] {
                match self.instant(date, start) {
                    Some(at) if at > now_ms => return Some(at),
                    _ => {}
                }
            }
            date = date.tomorrow().ok()?;
            day = (day + 1) % 7;
        }
        None
    }

    /// When the team last closed (the end of the latest range before now).
    pub fn last_close(&self, now_ms: i64) -> Option<i64> {
        let (mut date, mut day, _) = self.local(now_ms)?;
        for _ in 0..8 {
            for &(_, end) in self.days[day].iter().rev() {
                match self.instant(date, end) {
                    Some(at) if at <= now_ms => return Some(at),
                    _ => {}
                }
            }
            date = date.yesterday().ok()?;
            day = (day + 6) % 7;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::office_hours::parse_day;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn schedule(tz: &str, days: [&str; 7]) -> Schedule {
        let mut h = OfficeHours { enabled: true, time_zone: tz.into(), ..OfficeHours::default() };
        for (i, d) in days.iter().enumerate() {
            h.days[i] = parse_day("x", d).unwrap();
        }
        Schedule::of(&h).unwrap()
    }

    #[test]
    fn weekly_hours_in_the_apps_zone() {
        // Paris, weekdays 09:00-12:00 and 14:00-18:00. 2026-12-02 is a Wednesday (UTC+1).
        let day = "09:00-12:00, 14:00-18:00";
        let s = schedule("Europe/Paris", [day, day, day, day, day, "", ""]);
        assert!(s.is_open(ms("2026-12-02T08:30:00Z")), "09:30 in Paris");
        assert!(!s.is_open(ms("2026-12-02T11:30:00Z")), "12:30: lunch");
        assert_eq!(s.next_open(ms("2026-12-02T11:30:00Z")), Some(ms("2026-12-02T13:00:00Z")));
        assert_eq!(s.last_close(ms("2026-12-02T11:30:00Z")), Some(ms("2026-12-02T11:00:00Z")));
        // Friday evening: back on Monday 09:00.
        assert_eq!(s.next_open(ms("2026-12-04T18:00:00Z")), Some(ms("2026-12-07T08:00:00Z")));
        assert_eq!(s.last_close(ms("2026-12-06T10:00:00Z")), Some(ms("2026-12-04T17:00:00Z")));
        assert_eq!(s.next_open(ms("2026-12-02T08:30:00Z")), Some(ms("2026-12-02T08:30:00Z")), "open now");
    }

    #[test]
    fn daylight_saving_changes() {
        // New York, Sundays 01:00-04:00. Spring forward on 2026-03-08 (02:00 → 03:00):
        // the range holds three wall-clock hours but only two real ones.
        let s = schedule("America/New_York", ["", "", "", "", "", "", "01:00-04:00"]);
        assert!(s.is_open(ms("2026-03-08T06:30:00Z")), "01:30 EST");
        assert!(s.is_open(ms("2026-03-08T07:30:00Z")), "03:30 EDT");
        assert!(!s.is_open(ms("2026-03-08T08:00:00Z")), "04:00 EDT: closed");
        assert_eq!(s.last_close(ms("2026-03-08T09:00:00Z")), Some(ms("2026-03-08T08:00:00Z")));
        // Fall back on 2026-11-01 (02:00 EDT → 01:00 EST): 01:30 happens twice, open both times.
        assert!(s.is_open(ms("2026-11-01T05:30:00Z")), "01:30 EDT");
        assert!(s.is_open(ms("2026-11-01T06:30:00Z")), "01:30 EST");
        assert!(!s.is_open(ms("2026-11-01T09:00:00Z")), "04:00 EST");
        assert_eq!(s.next_open(ms("2026-11-01T09:30:00Z")), Some(ms("2026-11-08T06:00:00Z")), "next Sunday 01:00 EST");
        // A range that starts in the skipped hour opens at the first instant after it.
        let s = schedule("America/New_York", ["", "", "", "", "", "", "02:30-05:00"]);
        assert_eq!(s.next_open(ms("2026-03-08T00:00:00Z")), Some(ms("2026-03-08T07:30:00Z")), "03:30 EDT");
    }

    #[test]
    fn unknown_zones_and_the_database() {
        assert!(known_time_zone("Europe/Paris") && known_time_zone("UTC"));
        assert!(!known_time_zone("Mars/Olympus"));
        assert!(time_zone_names().len() > 300);
        let h = OfficeHours { enabled: true, time_zone: "Mars/Olympus".into(), ..OfficeHours::default() };
        assert!(Schedule::of(&h).is_none());
    }
}
