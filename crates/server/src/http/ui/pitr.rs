//! The Point-in-Time Recovery panel of the Backups page: the window drawn as a bar
//! with its gaps, and the bounds of the date-time field.

use chrono::{DateTime, Utc};

use super::format;
use crate::pitr::window::Window;

pub struct PitrView {
    /// Why nothing can be restored yet, when so.
    pub empty_reason: Option<String>,
    pub start_text: String,
    pub end_text: String,
    /// The field's bounds and first value (`datetime-local`, in UTC).
    pub start_input: String,
    pub end_input: String,
    /// The window's end as the API takes it.
    pub end_iso: String,
    pub parts: Vec<BarPart>,
    pub gaps: Vec<GapView>,
    pub last_archived_text: Option<String>,
    /// Why the newest hand-over failed, while archiving is behind.
    pub behind: Option<String>,
    pub timeline: u32,
}

/// A stretch of the bar, placed in thousandths of the window's length (an SVG
/// drawing: the pages' content security policy allows no inline styles).
pub struct BarPart {
    pub left: String,
    pub width: String,
    pub gap: bool,
    pub title: String,
}

pub struct GapView {
    pub start_text: String,
    pub end_text: String,
    pub reason: String,
}

fn input(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

impl PitrView {
    pub fn new(window: &Window, status: &api_types::v1::ArchivingStatus) -> Self {
        let last_archived_text = status.last_archived_at.as_ref().map(format::time_ms);
        let behind = status.behind.then(|| status.error.clone().unwrap_or_default());
        let (Some(start), Some(end)) = (window.start(), window.end()) else {
            return PitrView {
                empty_reason: Some(
                    "No moment can be restored yet: the first base backup is taken with the next backup, and the \
                     window opens once the write-ahead log after it is archived."
                        .into(),
                ),
                start_text: String::new(),
                end_text: String::new(),
                start_input: String::new(),
                end_input: String::new(),
                end_iso: String::new(),
                parts: Vec::new(),
                gaps: Vec::new(),
                last_archived_text,
                behind,
                timeline: window.current_timeline(),
            };
        };
        let length = (end - start).num_milliseconds().max(1) as f64;
        let place = |from: DateTime<Utc>, to: DateTime<Utc>| {
            let left = (from - start).num_milliseconds() as f64 / length * 1000.0;
            let width = ((to - from).num_milliseconds() as f64 / length * 1000.0).max(4.0);
            (format!("{left:.1}"), format!("{width:.1}"))
        };
        let mut parts = Vec::new();
        let (left, width) = place(start, end);
        parts.push(BarPart {
            left,
            width,
            gap: false,
            title: format!("{} to {}", format::time_ms(&start), format::time_ms(&end)),
        });
        for gap in &window.gaps {
            let (left, width) = place(gap.start, gap.end);
            parts.push(BarPart { left, width, gap: true, title: gap.reason.clone() });
        }
        PitrView {
            empty_reason: None,
            start_text: format::time_ms(&start),
            end_text: format::time_ms(&end),
            start_input: input(&start),
            end_input: input(&end),
            end_iso: api_types::timestamp::format(&end),
            parts,
            gaps: window
                .gaps
                .iter()
                .map(|g| GapView {
                    start_text: format::time_ms(&g.start),
                    end_text: format::time_ms(&g.end),
                    reason: g.reason.clone(),
                })
                .collect(),
            last_archived_text,
            behind,
            timeline: window.current_timeline(),
        }
    }
}
