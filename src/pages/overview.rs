//! The overview (`/apps/:app_id`): users and active users, whispers and
//! manual messages sent / seen / clicked / replied per day, conversations
//! opened and the median first response, over the last 7, 30 or 90 days
//! (`?range=`). Read from the daily rollup (`storage::stats`), never
//! counted per request. Charts are inline SVG drawn by the server (and
//! redrawn by the same code in the browser); every number is also text:
//! the summary figures, and a table of each chart's days.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::{
    frame::use_app_id,
    widgets::{Loading, PageError},
};
use crate::{domain::format_date, error::AppError};

const DAY_MS: i64 = 86_400_000;
/// The ranges offered, in days (`server::overview::RANGES`).
const RANGES: [i64; 3] = [7, 30, 90];
const DEFAULT_RANGE: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewQuery {
    pub app_id: String,
    /// Days: 7, 30 or 90 (anything else reads as 30).
    pub range: i64,
}

/// One metric's value per day of the range (None: not counted that day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesView {
    /// The stored metric name (`storage::stats::Metric::code`).
    pub key: String,
    pub values: Vec<Option<i64>>,
}

/// What the overview page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewView {
    pub range: i64,
    /// The UTC day number (ms / 86,400,000) of each series' first value.
    pub first_day: i64,
    /// When the figures were last rolled up (ms).
    pub rolled_at: Option<i64>,
    pub series: Vec<SeriesView>,
}

impl OverviewView {
    fn values(&self, key: &str) -> Vec<Option<i64>> {
        self.series.iter().find(|s| s.key == key).map(|s| s.values.clone()).unwrap_or_default()
    }

    /// The newest value of a snapshot metric in the range.
    fn latest(&self, key: &str) -> Option<i64> {
        self.values(key).into_iter().rev().flatten().next()
    }
}

#[server(prefix = "/api", endpoint = "apps/overview", output = crate::wire::Json)]
pub async fn load_overview(input: OverviewQuery) -> Result<OverviewView, AppError> {
    use crate::{
        server::{overview, request},
        storage::stats::Metric,
    };
    request::as_teammate(|state, me| async move {
        let o = overview::load(&state, &me, &input.app_id, input.range).await?;
        let days = o.first_day..o.first_day + o.range;
        let series = Metric::ALL
            .into_iter()
            .map(|m| SeriesView { key: m.code().into(), values: days.clone().map(|d| o.stats.get(d, m)).collect() })
            .collect();
        Ok(OverviewView { range: o.range, first_day: o.first_day, rolled_at: o.stats.rolled_at, series })
    })
    .await
}

/// `1234567` → "1,234,567".
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A duration in milliseconds, in the largest fitting unit: "45 s",
/// "12 min", "3.5 h", "2.1 d".
fn duration(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 60.0 {
        format!("{} s", s.round() as i64)
    } else if s < 3600.0 {
        format!("{} min", (s / 60.0).round() as i64)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// `HH:MM UTC` of a time, with its date unless it is `today`.
fn updated(ms: i64, today: i64) -> String {
    let mins = ms.rem_euclid(DAY_MS) / 60_000;
    let time = format!("{:02}:{:02} UTC", mins / 60, mins % 60);
    if ms.div_euclid(DAY_MS) == today {
        time
    } else {
        format!("{} {time}", format_date(ms))
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `max` (at least 1): the
/// chart's top.
fn nice_top(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for k in [1, 2, 5] {
            if step.saturating_mul(k) >= max {
                return step.saturating_mul(k);
            }
        }
        step = step.saturating_mul(10);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lines,
    Bars,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Duration,
}

/// How a series is summed up over the range in its legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sum {
    /// Events: the total over the days.
    Total,
    /// Snapshots: the newest value.
    Latest,
    /// None (the chart's own figure says it).
    Nothing,
}

struct Line {
    label: &'static str,
    values: Vec<Option<i64>>,
}

/// Inline SVG geometry (viewBox units).
const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 176.0;

fn format_value(unit: Unit, v: i64) -> String {
    match unit {
        Unit::Count => thousands(v),
        Unit::Duration => duration(v),
    }
}

/// The `d` of a path through the defined values (a gap where a day has none).
fn line_path(values: &[Option<i64>], x: &impl Fn(usize) -> f64, y: &impl Fn(i64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                d.push_str(&format!("{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x(i), y(*v)));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_end().to_string()
}

#[component]
fn Chart(
    id: &'static str,
    title: &'static str,
    /// What the numbers are, under the title.
    note: &'static str,
    kind: Kind,
    unit: Unit,
    sum: Sum,
    first_day: i64,
    lines: Vec<Line>,
) -> impl IntoView {
    let days = lines.first().map_or(0, |l| l.values.len());
    let max = lines.iter().flat_map(|l| l.values.iter().flatten().copied()).max().unwrap_or(0);
    let top = nice_top(max);
    let step = (W - LEFT - RIGHT) / days.max(1) as f64;
    let x = move |i: usize| LEFT + step * (i as f64 + 0.5);
    let y = move |v: i64| BOTTOM - (BOTTOM - TOP) * (v as f64 / top as f64);
    let summed = |l: &Line| match sum {
        Sum::Total => Some(l.values.iter().flatten().sum::<i64>()),
        Sum::Latest => l.values.iter().rev().flatten().next().copied(),
        Sum::Nothing => None,
    };
    let label = format!(
        "{title}, by day (UTC), {} to {}{}",
        format_date(first_day * DAY_MS),
        format_date((first_day + days as i64 - 1) * DAY_MS),
        lines
            .iter()
            .filter_map(|l| summed(l).map(|v| format!("; {}: {}", l.label, format_value(unit, v))))
            .collect::<String>()
    );
    let caption_id = format!("{id}-title");
    let labelled_by = caption_id.clone();
    let dot = if days > 31 { 1.5 } else { 3.0 };
    let marks = lines
        .iter()
        .enumerate()
        .map(|(s, l)| {
            let class = format!("series s{s}");
            match kind {
                Kind::Bars => {
                    let width = (step * 0.7).max(1.0);
                    l.values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (i, v)))
                        .map(|(i, v)| {
                            view! {
                                <rect class=class.clone() x=format!("{:.1}", x(i) - width / 2.0) y=format!("{:.1}", y(v))
                                    width=format!("{width:.1}") height=format!("{:.1}", BOTTOM - y(v))/>
                            }
                        })
                        .collect_view()
                        .into_any()
                }
                Kind::Lines => {
                    let d = line_path(&l.values, &x, &y);
                    let dots = l
                        .values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (i, v)))
                        .map(|(i, v)| {
                            view! { <circle class=class.clone() cx=format!("{:.1}", x(i)) cy=format!("{:.1}", y(v)) r=dot/> }
                        })
                        .collect_view();
                    view! { <path class=class.clone() fill="none" d=d/> {dots} }.into_any()
                }
            }
        })
        .collect_view();
    let last_day = first_day + days as i64 - 1;
    let rows = (0..days)
        .rev()
        .map(|i| {
            let cells = lines
                .iter()
                .map(|l| match l.values[i] {
                    Some(v) => view! { <td class="num">{format_value(unit, v)}</td> }.into_any(),
                    None => view! { <td class="num muted" title="Not counted">"–"</td> }.into_any(),
                })
                .collect_view();
            view! { <tr><th scope="row">{format_date((first_day + i as i64) * DAY_MS)}</th>{cells}</tr> }
        })
        .collect_view();
    let totals = (sum != Sum::Nothing).then(|| {
        let head = if sum == Sum::Total { "Total" } else { "Latest" };
        view! {
            <tfoot>
                <tr>
                    <th scope="row">{head}</th>
                    {lines.iter().map(|l| view! { <td class="num">{summed(l).map(|v| format_value(unit, v)).unwrap_or_else(|| "–".into())}</td> }).collect_view()}
                </tr>
            </tfoot>
        }
    });
    let legend = lines
        .iter()
        .enumerate()
        .map(|(s, l)| {
            let value = summed(l).map(|v| format!(" {}", format_value(unit, v)));
            view! {
                <li><span class=format!("swatch s{s}") aria-hidden="true"></span>{l.label}<strong>{value}</strong></li>
            }
        })
        .collect_view();
    let headers = lines.iter().map(|l| view! { <th scope="col" class="num">{l.label}</th> }).collect_view();
    view! {
        <figure class="panel chart" data-testid=id aria-labelledby=labelled_by>
            <figcaption id=caption_id>
                <h2>{title}</h2>
                <p class="hint">{note}</p>
            </figcaption>
            <ul class="legend">{legend}</ul>
            <svg class="chart-svg" viewBox=format!("0 0 {W} {H}") role="img" aria-label=label>
                <line class="axis" x1=LEFT y1=BOTTOM x2=W - RIGHT y2=BOTTOM/>
                <line class="grid" x1=LEFT y1=TOP x2=W - RIGHT y2=TOP/>
                <line class="grid" x1=LEFT y1=(TOP + BOTTOM) / 2.0 x2=W - RIGHT y2=(TOP + BOTTOM) / 2.0/>
                <text class="tick" x=LEFT - 6.0 y=TOP + 4.0 text-anchor="end">{format_value(unit, top)}</text>
                <text class="tick" x=LEFT - 6.0 y=BOTTOM + 4.0 text-anchor="end">"0"</text>
                <text class="tick" x=LEFT y=H - 6.0 text-anchor="start">{format_date(first_day * DAY_MS)}</text>
                <text class="tick" x=W - RIGHT y=H - 6.0 text-anchor="end">{format_date(last_day * DAY_MS)}</text>
                {marks}
            </svg>
            <div class="chart-table" tabindex="0" role="region" aria-label=format!("{title}: the numbers")>
                <table>
                    <caption class="visually-hidden">{format!("{title}, by day (UTC), newest first")}</caption>
                    <thead><tr><th scope="col">"Day (UTC)"</th>{headers}</tr></thead>
                    <tbody>{rows}</tbody>
                    {totals}
                </table>
            </div>
        </figure>
    }
}

/// The conversations' median first response over the range: the middle
/// of the daily medians, each counted as many times as that day had first
/// responses (the exact median would need every conversation's time).
fn range_median(medians: &[Option<i64>], counts: &[Option<i64>]) -> Option<i64> {
    let mut weighted: Vec<(i64, i64)> =
        medians.iter().zip(counts).filter_map(|(m, n)| Some((m.as_ref().copied()?, n.unwrap_or(0)))).collect();
    weighted.retain(|(_, n)| *n > 0);
    weighted.sort_unstable();
    let total: i64 = weighted.iter().map(|(_, n)| n).sum();
    let mut seen = 0;
    for (m, n) in weighted {
        seen += n;
        if 2 * seen >= total {
            return Some(m);
        }
    }
    None
}

#[component]
fn Figures(o: OverviewView) -> impl IntoView {
    let today = o.first_day + o.range - 1;
    let stat = |label: &'static str, value: Option<String>, id: &'static str| {
        view! {
            <div class="stat" data-testid=id>
                <dt>{label}</dt>
                <dd>{value.unwrap_or_else(|| "–".into())}</dd>
            </div>
        }
    };
    let latest = |key: &str| o.latest(key).map(thousands);
    let total = |key: &str| Some(thousands(o.values(key).into_iter().flatten().sum()));
    let medians = o.values("first_response_ms");
    let counts = o.values("first_responses");
    let first_response = range_median(&medians, &counts).map(duration);
    let line = |label, key: &str| Line { label, values: o.values(key) };
    let f = o.first_day;
    view! {
        <p class="hint" data-testid="overview-updated">
            {match o.rolled_at {
                Some(at) => format!("Updated {}; figures are counted once a minute.", updated(at, today)),
                None => "Not counted yet.".to_string(),
            }}
        </p>
        <dl class="stats" aria-label="Summary">
            {stat("Users", latest("users"), "stat-users")}
            {stat("Active, last 24 hours", latest("active_1d"), "stat-active-1d")}
            {stat("Active, last 7 days", latest("active_7d"), "stat-active-7d")}
            {stat("Active, last 30 days", latest("active_30d"), "stat-active-30d")}
            {stat("Whisper cards sent", total("whisper_sent"), "stat-whispers-sent")}
            {stat("Manual messages sent", total("message_sent"), "stat-messages-sent")}
            {stat("Conversations opened", total("conversations"), "stat-conversations")}
            {stat("Median first response", first_response, "stat-first-response")}
        </dl>
        <Chart id="chart-users" title="Users" note="Each day's count when it was last updated: all users, and those seen in the last 30 days, 7 days and 24 hours."
            kind=Kind::Lines unit=Unit::Count sum=Sum::Latest first_day=f
            lines=vec![line("Users", "users"), line("Active 30 days", "active_30d"), line("Active 7 days", "active_7d"), line("Active 24 hours", "active_1d")]/>
        <Chart id="chart-whispers" title="Whispers" note="Whisper cards sent, seen, clicked and replied to, each on the day it happened."
            kind=Kind::Lines unit=Unit::Count sum=Sum::Total first_day=f
            lines=vec![line("Sent", "whisper_sent"), line("Seen", "whisper_seen"), line("Clicked", "whisper_clicked"), line("Replied", "whisper_replied")]/>
        <Chart id="chart-messages" title="Manual messages" note="Manual messages sent (in-app and email), seen, clicked and replied to, each on the day it happened."
            kind=Kind::Lines unit=Unit::Count sum=Sum::Total first_day=f
            lines=vec![line("Sent", "message_sent"), line("Seen", "message_seen"), line("Clicked", "message_clicked"), line("Replied", "message_replied")]/>
        <Chart id="chart-conversations" title="Conversations opened" note="New conversations per day, whoever started them."
            kind=Kind::Bars unit=Unit::Count sum=Sum::Total first_day=f
            lines=vec![line("Opened", "conversations")]/>
        <Chart id="chart-first-response" title="Median first response"
            note="Per day: the median time from a conversation's start to the team's first reply, over the first replies given that day (conversations a teammate started, and office-hours auto-replies, do not count). The summary above is the middle of these daily medians, weighted by replies."
            kind=Kind::Bars unit=Unit::Duration sum=Sum::Nothing first_day=f
            lines=vec![line("Median", "first_response_ms")]/>
        <Chart id="chart-first-responses" title="First responses" note="Conversations that got their first team reply that day."
            kind=Kind::Bars unit=Unit::Count sum=Sum::Total first_day=f
            lines=vec![line("Replied to", "first_responses")]/>
    }
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    let app_id = use_app_id();
    let query = use_query_map();
    let range = Memo::new(move |_| {
        query
            .read()
            .get("range")
            .and_then(|r| r.parse::<i64>().ok())
            .filter(|r| RANGES.contains(r))
            .unwrap_or(DEFAULT_RANGE)
    });
    let data = Resource::new(move || OverviewQuery { app_id: app_id.get(), range: range.get() }, load_overview);
    view! {
        <Title text="Overview"/>
        <h1>"Overview"</h1>
        <nav class="tabs" aria-label="Range">
            {RANGES.into_iter().map(|days| view! {
                <a href=move || format!("/apps/{}?range={days}", app_id.get())
                   data-testid=format!("range-{days}")
                   aria-current=move || (range.get() == days).then_some("page")>{format!("Last {days} days")}</a>
            }).collect_view()}
        </nav>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(o) => view! { <Figures o/> }.into_any(),
                    Err(error) => view! { <PageError error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-12_345), "-12,345");
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(12 * 60_000), "12 min");
        assert_eq!(duration(3 * 3_600_000 + 1_800_000), "3.5 h");
        assert_eq!(duration(2 * DAY_MS), "2.0 d");
        assert_eq!(updated(1_795_000_000_000, 1_795_000_000_000 / DAY_MS), "11:06 UTC");
        assert_eq!(updated(1_795_000_000_000, 0), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn chart_tops_and_paths() {
        assert_eq!([0, 1, 2, 3, 7, 10, 11, 4_999, 5_001].map(nice_top), [1, 1, 2, 5, 10, 10, 20, 5_000, 10_000]);
        let x = |i: usize| i as f64;
        let y = |v: i64| v as f64;
        assert_eq!(line_path(&[Some(1), Some(2), None, Some(4)], &x, &y), "M0.0,1.0 L1.0,2.0 M3.0,4.0");
        assert_eq!(line_path(&[None, None], &x, &y), "");
    }

    #[test]
    fn the_range_median_weighs_days_by_replies() {
        // 1 reply at 10 s, 3 at 60 s: the middle reply is at 60 s.
        assert_eq!(range_median(&[Some(10_000), Some(60_000)], &[Some(1), Some(3)]), Some(60_000));
        assert_eq!(range_median(&[Some(10_000), None], &[Some(3), Some(0)]), Some(10_000));
        assert_eq!(range_median(&[None, None], &[Some(0), Some(0)]), None);
    }

    /// Every key the page reads is a metric the rollup stores, and the
    /// ranges are the service's.
    #[cfg(feature = "ssr")]
    #[test]
    fn the_page_reads_stored_metrics() {
        use crate::storage::stats::Metric;
        let source = include_str!("overview.rs");
        let keys: Vec<&str> =
            source.split("line(\"").skip(1).filter_map(|s| s.split("\", \"").nth(1)?.split('"').next()).collect();
        assert_eq!(keys.len(), 15, "{keys:?}");
        for key in keys {
            assert!(Metric::from_code(key).is_some(), "{key} is not a stored metric");
        }
        for key in ["users", "active_1d", "active_7d", "active_30d", "first_response_ms", "first_responses"] {
            assert!(Metric::from_code(key).is_some(), "{key}");
        }
        assert_eq!(RANGES, crate::server::overview::RANGES);
        assert_eq!(DEFAULT_RANGE, crate::server::overview::DEFAULT_RANGE);
    }
}
