//! The times a restore to a point in time can reach, worked out from what the
//! store holds: base backups, archived segments, and the restores that started new
//! timelines. No I/O here, so every case is a unit test.
//!
//! The instance's history is a chain of spans, one per timeline: timeline 1 from
//! the start, then each restore to a point in time cut the history at its target
//! `T` and went on, from the moment `R` it finished, on a new timeline. Between
//! `T` and `R` the history as lived is gone (the restore undid it): that stretch is
//! a gap. A base backup makes every moment from its end on reachable for as long
//! as the segments after it follow each other without a hole, along the spans.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use store::{BaseBackup, WalSegment};

use api_types::timestamp::format as shown;

use crate::archive::names;

/// PostgreSQL's segment size unless `initdb` chose another.
const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

/// A restore to a point in time: its node ran on the data as it was at
/// `target_time`, on a new timeline, from `forked_at` on.
#[derive(Debug, Clone)]
pub struct Fork {
    pub seq: i64,
    pub target_time: DateTime<Utc>,
    pub forked_at: DateTime<Utc>,
    pub timeline: u32,
}

/// A replica promoted by a failover or a switchover: its history goes on from the
/// primary's, without a gap, on the next timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// When the promoted server wrote its timeline's history file.
    pub at: DateTime<Utc>,
    pub timeline: u32,
}

/// The promotions of a cluster instance, from the history files in its archive:
/// those of timelines after `first` that no restore made, and that the instance
/// went on writing (a segment of theirs is archived), in order. A restore that
/// failed after its server promoted leaves a history file too, with nothing after
/// it. Only a cluster's history has promotions: a single node's new timelines are
/// all restores'.
pub fn promotions(first: u32, segments: &[WalSegment], forks: &[Fork]) -> Vec<Promotion> {
    let written: std::collections::HashSet<i64> =
        segments.iter().filter(|s| s.name.len() == 24).map(|s| s.timeline).collect();
    let mut found: Vec<Promotion> = segments
        .iter()
        .filter(|s| s.name.ends_with(".history"))
        .filter_map(|s| Some(Promotion { at: s.handed_over_at, timeline: names::parse(&s.name)?.timeline }))
        .filter(|p| p.timeline > first && forks.iter().all(|f| f.timeline != p.timeline))
        .filter(|p| written.contains(&i64::from(p.timeline)))
        .collect();
    found.sort_by_key(|p| (p.timeline, p.at));
    found
}

#[derive(Debug, Clone, PartialEq)]
struct Span {
    timeline: u32,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// Began with a promotion: the span before it goes on into this one.
    continues: bool,
}

impl Span {
    fn holds(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| from <= t) && self.to.is_none_or(|to| t <= to)
    }
}

/// A stretch no restore can reach, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
}

/// What a restore to a time starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub backup_id: i64,
    /// The timeline whose history holds the target.
    pub timeline: u32,
}

/// A base backup and the last moment its unbroken run of segments reaches.
#[derive(Debug, Clone)]
struct Reach {
    backup_id: i64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct Window {
    spans: Vec<Span>,
    lineage: Lineage,
    /// Every archived segment, by timeline and number.
    archived: HashSet<(u32, u64)>,
    reaches: Vec<Reach>,
    /// The reachable stretches, in order, without overlaps.
    intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub gaps: Vec<Gap>,
    pub last_archived_at: Option<DateTime<Utc>>,
}

impl Window {
    /// The window of an instance whose history began on timeline `first` (1, or
    /// for an instance made at a moment of another, a later one).
    pub fn compute(
        first: u32,
        bases: &[BaseBackup],
        segments: &[WalSegment],
        forks: &[Fork],
        promotions: &[Promotion],
    ) -> Self {
        let segment_size = segments
            .iter()
            .find(|s| s.name.len() == 24)
            .and_then(|s| u64::try_from(s.plain_size).ok())
            .unwrap_or(DEFAULT_SEGMENT_SIZE);
        let (lineage, spans, unrecorded) = lineage(spans(first, forks, promotions), segments, segment_size);

        let mut reaches = Vec::new();
        for base in bases {
            let in_lineage = spans.iter().any(|s| s.timeline as i64 == base.timeline && s.holds(base.finished_at));
            let (Some((_, first)), Some((_, last))) = (
                names::segment_number(&base.start_wal, segment_size),
                names::segment_number(&base.end_wal, segment_size),
            ) else {
                continue;
            };
            if !in_lineage || !(first..=last).all(|n| lineage.contains_key(&n)) {
                continue;
            }
            let mut end = last;
            while lineage.contains_key(&(end + 1)) {
                end += 1;
            }
            let reached = lineage[&end].at;
            if reached >= base.finished_at {
                reaches.push(Reach { backup_id: base.backup_id, start: base.finished_at, end: reached });
            }
        }

        let fork_gaps: Vec<Gap> = spans
            .windows(2)
            .filter_map(|pair| {
                let (start, end) = (pair[0].to?, pair[1].from?);
                let fork = forks.iter().find(|f| f.timeline == pair[1].timeline)?;
                Some(Gap {
                    start,
                    end,
                    reason: format!(
                        "restore {} went back to {} and the instance continued on timeline {} from {}",
                        fork.seq,
                        shown(&fork.target_time),
                        fork.timeline,
                        shown(&fork.forked_at)
                    ),
                })
            })
            .chain(unrecorded)
            .collect();

        let mut intervals: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        let mut sorted: Vec<_> = reaches.iter().map(|r| (r.start, r.end)).collect();
        sorted.sort();
        for (start, end) in sorted {
            match intervals.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => intervals.push((start, end)),
            }
        }
        for gap in &fork_gaps {
            intervals = intervals.into_iter().flat_map(|(s, e)| cut(s, e, gap.start, gap.end)).collect();
        }

        let mut gaps: Vec<Gap> = Vec::new();
        for pair in intervals.windows(2) {
            let (start, end) = (pair[0].1, pair[1].0);
            let reason = match fork_gaps.iter().find(|g| g.start <= end && start <= g.end) {
                Some(fork) => fork.reason.clone(),
                None => missing_reason(&lineage, start, segment_size, &spans),
            };
            gaps.push(Gap { start, end, reason });
        }

        let last_archived_at = segments.iter().map(|s| s.archived_at).max();
        let archived = segments.iter().filter_map(|s| names::segment_number(&s.name, segment_size)).collect();
        Window { spans, lineage, archived, reaches, intervals, gaps, last_archived_at }
    }

    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.intervals.first().map(|i| i.0)
    }

    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.intervals.last().map(|i| i.1)
    }

    /// The timeline a new restore goes on from: that of the newest span.
    pub fn current_timeline(&self) -> u32 {
        self.spans.last().map_or(1, |s| s.timeline)
    }

    /// What a restore to `target` starts from, or why it cannot be reached.
    pub fn plan(&self, target: DateTime<Utc>) -> Result<Plan, String> {
        let (Some(start), Some(end)) = (self.start(), self.end()) else {
            return Err(
                "no point in time can be restored yet: no base backup with its write-ahead log is archived".to_owned()
            );
        };
        let window = format!("the window is {} to {}", shown(&start), shown(&end));
        if target < start || target > end {
            return Err(format!("{} is outside the recovery window: {window}", shown(&target)));
        }
        if !self.intervals.iter().any(|(s, e)| *s <= target && target <= *e) {
            let gap = self.gaps.iter().find(|g| g.start <= target && target <= g.end);
            let why = gap.map_or_else(String::new, |g| format!(" ({})", g.reason));
            return Err(format!("{} falls in a gap of the recovery window{why}; {window}", shown(&target)));
        }
        // Replay follows the newest timeline that goes on from the target's without a
        // gap: the segment a promotion began in is archived under the new timeline
        // only, and PostgreSQL finds the old timeline's part of it there.
        let timeline = match self.spans.iter().rposition(|s| s.holds(target)) {
            Some(mut at) => {
                while self.spans.get(at + 1).is_some_and(|next| next.continues) {
                    at += 1;
                }
                self.spans[at].timeline
            }
            None => 1,
        };
        // The segment that holds the target may be archived under a later timeline
        // only: one that began in it, a promotion the old primary did not finish the
        // segment before, and then a restore to a moment before that promotion (the
        // restore's copy of the segment holds the history up to where it began).
        // Replay then follows that timeline, whose history holds the target.
        let holder = self.lineage.iter().find(|(_, held)| held.at >= target);
        let timeline = match holder {
            Some((n, held)) if held.timeline > timeline && !self.archived.contains(&(timeline, *n)) => held.timeline,
            _ => timeline,
        };
        let base = self
            .reaches
            .iter()
            .filter(|r| r.start <= target && target <= r.end)
            .max_by_key(|r| r.start)
            .ok_or_else(|| format!("no base backup reaches {}; {window}", shown(&target)))?;
        Ok(Plan { backup_id: base.backup_id, timeline })
    }
}

/// The first timeline from the start; each fork cuts the history at its target and goes on
/// from when it finished; each promotion goes on from when it happened. In the order
/// they happened.
fn spans(first: u32, forks: &[Fork], promotions: &[Promotion]) -> Vec<Span> {
    enum Event<'a> {
        Fork(&'a Fork),
        Promotion(&'a Promotion),
    }
    let mut events: Vec<(DateTime<Utc>, Event<'_>)> = forks.iter().map(|f| (f.forked_at, Event::Fork(f))).collect();
    events.extend(promotions.iter().map(|p| (p.at, Event::Promotion(p))));
    events.sort_by_key(|(at, _)| *at);

    let mut spans = vec![Span { timeline: first, from: None, to: None, continues: false }];
    for (_, event) in events {
        match event {
            Event::Fork(fork) => {
                spans.retain(|s| s.from.is_none_or(|from| from <= fork.target_time));
                if let Some(last) = spans.last_mut() {
                    last.to = Some(fork.target_time);
                }
                spans.push(Span { timeline: fork.timeline, from: Some(fork.forked_at), to: None, continues: false });
            }
            Event::Promotion(promotion) => {
                if spans.last().is_some_and(|last| last.timeline >= promotion.timeline) {
                    continue;
                }
                if let Some(last) = spans.last_mut() {
                    last.to = Some(promotion.at);
                }
                spans.push(Span { timeline: promotion.timeline, from: Some(promotion.at), to: None, continues: true });
            }
        }
    }
    spans
}

/// A segment along the spans: when it was handed over, and the timeline whose copy
/// of it the history follows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    at: DateTime<Utc>,
    timeline: u32,
}

type Lineage = BTreeMap<u64, Held>;

/// The segments along the spans, by number, with their hand-over times: each
/// span's timeline up to where the next span's timeline begins.
///
/// A span that begins earlier in the log than the one before it went back in the
/// history: it is a restore whose fork was never recorded (svcdash stopped between
/// the switch and the record, or the restore ran before forks were recorded at the
/// switch), not a promotion. It is taken as a fork to an unknown moment: the spans
/// it went back past are dropped, the one it went back into ends with its last
/// segment before it, and from there to the span's start is a gap. Returns the
/// lineage, the spans it follows, and those gaps.
fn lineage(spans: Vec<Span>, segments: &[WalSegment], segment_size: u64) -> (Lineage, Vec<Span>, Vec<Gap>) {
    let mut by_timeline: HashMap<u32, BTreeMap<u64, DateTime<Utc>>> = HashMap::new();
    for segment in segments {
        if let Some((timeline, number)) = names::segment_number(&segment.name, segment_size) {
            by_timeline.entry(timeline).or_default().insert(number, segment.handed_over_at);
        }
    }
    let first = |timeline: u32| by_timeline.get(&timeline).and_then(|s| s.keys().next().copied());

    // The spans followed, each with the first segment it holds (none yet: MAX).
    let mut kept: Vec<(Span, u64)> = Vec::new();
    let mut gaps = Vec::new();
    for mut span in spans {
        let from = if kept.is_empty() { 0 } else { first(span.timeline).unwrap_or(u64::MAX) };
        let before = kept.iter().rev().map(|(_, f)| *f).find(|f| *f != u64::MAX);
        if from != u64::MAX && before.is_some_and(|before| from < before) {
            tracing::warn!(
                timeline = span.timeline,
                "a timeline begins earlier in the log than the one before it, as a restore's does, and no restore \
                 is recorded for it: the window takes it as a restore to a moment it does not know"
            );
            kept.retain(|(_, f)| *f < from);
            let last = kept.last().and_then(|(last, f)| {
                by_timeline.get(&last.timeline).and_then(|own| own.range(*f..from).next_back()).map(|(_, at)| *at)
            });
            if let Some((went_into, _)) = kept.last_mut() {
                went_into.to = last.or(went_into.to);
            }
            if let (Some(start), Some(end)) = (last, span.from)
                && start < end
            {
                gaps.push(Gap {
                    start,
                    end,
                    reason: format!(
                        "timeline {} went back in the history here, as a restore to a point in time does, and no \
                         such restore is recorded",
                        span.timeline
                    ),
                });
            }
            span.continues = false;
        }
        kept.push((span, from));
    }

    let mut lineage = Lineage::new();
    for (i, (span, from)) in kept.iter().enumerate() {
        let to = kept[i + 1..].iter().map(|(_, f)| *f).find(|f| *f != u64::MAX).unwrap_or(u64::MAX);
        if let Some(own) = by_timeline.get(&span.timeline)
            && *from < to
        {
            lineage.extend(own.range(*from..to).map(|(n, at)| (*n, Held { at: *at, timeline: span.timeline })));
        }
    }
    (lineage, kept.into_iter().map(|(span, _)| span).collect(), gaps)
}

/// Why nothing between `start` and `end` can be reached: the segments missing
/// after the one handed over at `start`.
fn missing_reason(lineage: &Lineage, start: DateTime<Utc>, segment_size: u64, spans: &[Span]) -> String {
    // The run that ended at `start` ends with the segment handed over then; the hole
    // is what follows it up to the next segment the archive holds.
    let before = lineage.iter().filter(|(_, held)| held.at == start).map(|(n, _)| *n).max();
    let after = before.and_then(|b| lineage.range(b + 1..).next().map(|(n, _)| *n));
    match (before, after) {
        (Some(b), Some(a)) if a > b + 1 => {
            let timeline = spans.iter().rev().find(|s| s.holds(start)).map_or(1, |s| s.timeline);
            let first = names::segment_name(timeline, b + 1, segment_size);
            let last = names::segment_name(timeline, a - 1, segment_size);
            if a == b + 2 {
                format!("write-ahead log segment {first} is missing from the archive")
            } else {
                format!("write-ahead log segments {first} to {last} are missing from the archive")
            }
        }
        (Some(b), None) => format!(
            "write-ahead log after segment {} is missing from the archive",
            names::segment_name(spans.iter().rev().find(|s| s.holds(start)).map_or(1, |s| s.timeline), b, segment_size)
        ),
        _ => "no base backup covers it".to_owned(),
    }
}

/// `[s, e]` without the open stretch `(gap_start, gap_end)`.
fn cut(
    s: DateTime<Utc>,
    e: DateTime<Utc>,
    gap_start: DateTime<Utc>,
    gap_end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    if e <= gap_start || s >= gap_end {
        return vec![(s, e)];
    }
    let mut parts = Vec::new();
    if s <= gap_start {
        parts.push((s, gap_start));
    }
    if e >= gap_end {
        parts.push((gap_end, e));
    }
    parts
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SIZE: i64 = 16 << 20;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap() + chrono::Duration::minutes(minute.into())
    }

    fn segment(timeline: u32, number: u64, minute: u32) -> WalSegment {
        WalSegment {
            instance_id: 1,
            name: names::segment_name(timeline, number, SIZE as u64),
            timeline: timeline.into(),
            object_key: String::new(),
            key_id: 1,
            size: 1,
            sha256: String::new(),
            plain_size: SIZE,
            plain_sha256: String::new(),
            handed_over_at: at(minute),
            archived_at: at(minute),
        }
    }

    fn base(backup_id: i64, timeline: u32, first: u64, last: u64, minute: u32) -> BaseBackup {
        BaseBackup {
            backup_id,
            instance_id: 1,
            object_key: String::new(),
            key_id: 1,
            size: 1,
            sha256: String::new(),
            plain_size: 1,
            timeline: timeline.into(),
            start_wal: names::segment_name(timeline, first, SIZE as u64),
            end_wal: names::segment_name(timeline, last, SIZE as u64),
            started_at: at(minute),
            finished_at: at(minute),
        }
    }

    #[test]
    fn a_base_backup_reaches_as_far_as_its_segments_follow_each_other() {
        let segments: Vec<_> = (1..=5).map(|n| segment(1, n, n as u32 * 10)).collect();
        let window = Window::compute(1, &[base(7, 1, 1, 2, 5)], &segments, &[], &[]);
        assert_eq!((window.start(), window.end()), (Some(at(5)), Some(at(50))));
        assert!(window.gaps.is_empty());
        assert_eq!(window.plan(at(30)), Ok(Plan { backup_id: 7, timeline: 1 }));
        assert!(window.plan(at(4)).unwrap_err().contains("outside the recovery window"));
        assert!(window.plan(at(51)).unwrap_err().contains("outside the recovery window"));
    }

    #[test]
    fn a_missing_segment_is_a_gap_that_a_later_base_backup_closes() {
        let segments: Vec<_> = [1, 2, 3, 5, 6, 7].iter().map(|&n| segment(1, n, n as u32 * 10)).collect();
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5), base(2, 1, 5, 5, 45)], &segments, &[], &[]);
        assert_eq!((window.start(), window.end()), (Some(at(5)), Some(at(70))));
        assert_eq!(window.gaps.len(), 1);
        assert_eq!((window.gaps[0].start, window.gaps[0].end), (at(30), at(45)));
        assert!(window.gaps[0].reason.contains("000000010000000000000004 is missing"), "{:?}", window.gaps);
        assert!(window.plan(at(40)).unwrap_err().contains("falls in a gap"));
        assert_eq!(window.plan(at(20)).unwrap().backup_id, 1);
        assert_eq!(window.plan(at(60)).unwrap().backup_id, 2);
        // Without the later base backup, nothing after the hole can be reached.
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, &[], &[]);
        assert_eq!(window.end(), Some(at(30)));
    }

    #[test]
    fn a_base_backup_whose_segments_are_not_archived_yet_reaches_nothing() {
        let window = Window::compute(1, &[base(1, 1, 3, 4, 5)], &[segment(1, 3, 6)], &[], &[]);
        assert_eq!(window.start(), None);
        assert!(window.plan(at(6)).unwrap_err().contains("no point in time"));
    }

    #[test]
    fn a_restore_to_a_time_forks_the_history() {
        // Timeline 1: segments 1..=6 at minutes 10..60. A restore at minute 62 went
        // back to minute 25 (inside segment 3) and went on as timeline 2 from there.
        let mut segments: Vec<_> = (1..=6).map(|n| segment(1, n, n as u32 * 10)).collect();
        segments.extend([segment(2, 3, 70), segment(2, 4, 80)]);
        let fork = Fork { seq: 1, target_time: at(25), forked_at: at(62), timeline: 2 };
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, std::slice::from_ref(&fork), &[]);
        assert_eq!((window.start(), window.end()), (Some(at(5)), Some(at(80))));
        assert_eq!(window.gaps.len(), 1);
        assert_eq!((window.gaps[0].start, window.gaps[0].end), (at(25), at(62)));
        assert!(window.gaps[0].reason.contains("restore 1 went back"), "{:?}", window.gaps);
        assert_eq!(window.plan(at(20)), Ok(Plan { backup_id: 1, timeline: 1 }));
        assert_eq!(window.plan(at(75)), Ok(Plan { backup_id: 1, timeline: 2 }));
        assert!(window.plan(at(40)).unwrap_err().contains("restore 1 went back"));
        assert_eq!(window.current_timeline(), 2);

        // A second restore to before the first one's target leaves timeline 2 behind.
        segments.extend([segment(3, 2, 90)]);
        let second = Fork { seq: 2, target_time: at(15), forked_at: at(85), timeline: 3 };
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, &[fork, second], &[]);
        assert_eq!(window.plan(at(12)), Ok(Plan { backup_id: 1, timeline: 1 }));
        assert_eq!(window.plan(at(88)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert!(window.plan(at(75)).is_err(), "timeline 2 is no longer part of the history");
        assert_eq!(window.current_timeline(), 3);
    }

    fn history(timeline: u32, minute: u32) -> WalSegment {
        WalSegment { name: format!("{timeline:08X}.history"), plain_size: 42, ..segment(timeline, 0, minute) }
    }

    #[test]
    fn a_promotion_goes_on_from_the_old_primary_without_a_gap() {
        // Timeline 1: segments 1..=4 at minutes 10..40. At minute 45 a replica was
        // promoted in segment 5, which the old primary never finished: it is
        // archived under timeline 2 only (with timeline 1's part as `.partial`).
        let mut segments: Vec<_> = (1..=4).map(|n| segment(1, n, n as u32 * 10)).collect();
        let partial =
            WalSegment { name: format!("{}.partial", names::segment_name(1, 5, SIZE as u64)), ..segment(1, 5, 45) };
        segments.extend([partial, history(2, 45), segment(2, 5, 50), segment(2, 6, 60)]);
        let found = promotions(1, &segments, &[]);
        assert_eq!(found, [Promotion { at: at(45), timeline: 2 }]);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, &[], &found);
        assert_eq!((window.start(), window.end()), (Some(at(5)), Some(at(60))));
        assert!(window.gaps.is_empty(), "{:?}", window.gaps);
        // Before the promotion too, replay follows timeline 2: its segment 5 holds
        // the end of timeline 1.
        for minute in [20, 42, 55] {
            assert_eq!(window.plan(at(minute)), Ok(Plan { backup_id: 1, timeline: 2 }), "minute {minute}");
        }
        assert_eq!(window.current_timeline(), 2);

        // A switchover later (timeline 3), and a base backup taken on timeline 2.
        segments.extend([history(3, 65), segment(3, 7, 70)]);
        let found = promotions(1, &segments, &[]);
        assert_eq!(found.len(), 2);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5), base(2, 2, 6, 6, 58)], &segments, &[], &found);
        assert_eq!(window.end(), Some(at(70)));
        assert_eq!(window.plan(at(30)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert_eq!(window.plan(at(68)), Ok(Plan { backup_id: 2, timeline: 3 }));
    }

    #[test]
    fn a_missing_segment_before_a_promotion_is_a_gap() {
        // The old primary finished segment 3 but died before archiving it.
        let mut segments: Vec<_> = [1, 2].iter().map(|&n| segment(1, n, n as u32 * 10)).collect();
        segments.extend([history(2, 45), segment(2, 4, 50), segment(2, 5, 60)]);
        let found = promotions(1, &segments, &[]);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5), base(2, 2, 4, 4, 52)], &segments, &[], &found);
        assert_eq!(window.gaps.len(), 1, "{:?}", window.gaps);
        assert!(window.gaps[0].reason.contains("000000010000000000000003"), "{:?}", window.gaps);
        assert_eq!(window.plan(at(55)), Ok(Plan { backup_id: 2, timeline: 2 }));
    }

    #[test]
    fn a_restore_whose_fork_was_never_recorded_is_a_gap_and_the_window_goes_on() {
        // Timeline 1: segments 1..=6. A failover at minute 62 (timeline 2, from
        // segment 7), then a restore back into segment 3 whose fork the store never
        // recorded: its timeline 3 reads as one more promotion.
        let mut segments: Vec<_> = (1..=6).map(|n| segment(1, n, n as u32 * 10)).collect();
        segments.extend([history(2, 62), segment(2, 7, 63), history(3, 70), segment(3, 3, 71), segment(3, 4, 80)]);
        let found = promotions(1, &segments, &[]);
        assert_eq!(found.len(), 2);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, &[], &found);
        // Timeline 2 is left behind; from the end of segment 2 (the last before the
        // one timeline 3 began in) to timeline 3's start nothing can be reached.
        assert_eq!((window.start(), window.end()), (Some(at(5)), Some(at(80))));
        assert_eq!(window.gaps.len(), 1, "{:?}", window.gaps);
        assert_eq!((window.gaps[0].start, window.gaps[0].end), (at(20), at(70)));
        assert!(window.gaps[0].reason.contains("no such restore is recorded"), "{:?}", window.gaps);
        assert_eq!(window.plan(at(15)), Ok(Plan { backup_id: 1, timeline: 1 }));
        assert!(window.plan(at(40)).unwrap_err().contains("falls in a gap"));
        assert_eq!(window.plan(at(75)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert_eq!(window.current_timeline(), 3);
        // A base backup on timeline 3 is part of the history: the window grows with it.
        segments.extend([segment(3, 5, 90), segment(3, 6, 100)]);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5), base(2, 3, 5, 5, 88)], &segments, &[], &found);
        assert_eq!(window.end(), Some(at(100)));
        assert_eq!(window.plan(at(95)), Ok(Plan { backup_id: 2, timeline: 3 }));

        // Recorded, the same restore is a fork: timeline 3 goes on from it.
        segments.truncate(segments.len() - 2);
        let fork = Fork { seq: 1, target_time: at(25), forked_at: at(70), timeline: 3 };
        let found = promotions(1, &segments, std::slice::from_ref(&fork));
        assert_eq!(found, [Promotion { at: at(62), timeline: 2 }]);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, std::slice::from_ref(&fork), &found);
        assert_eq!(window.end(), Some(at(80)));
        assert_eq!(window.plan(at(75)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert!(window.plan(at(40)).unwrap_err().contains("restore 1 went back"));
    }

    #[test]
    fn a_target_in_a_segment_only_a_later_timeline_archived_is_replayed_along_it() {
        // A failover at minute 45 in segment 5 (timeline 2 from there; timeline 1's
        // part of segment 5 is a `.partial` only). A restore went back to minute 42,
        // inside segment 5 before the promotion, and went on as timeline 3.
        let mut segments: Vec<_> = (1..=4).map(|n| segment(1, n, n as u32 * 10)).collect();
        let partial =
            WalSegment { name: format!("{}.partial", names::segment_name(1, 5, SIZE as u64)), ..segment(1, 5, 45) };
        segments.extend([partial, history(2, 45), segment(2, 5, 50), segment(2, 6, 60)]);
        segments.extend([history(3, 70), segment(3, 5, 71), segment(3, 6, 80)]);
        let fork = Fork { seq: 1, target_time: at(42), forked_at: at(70), timeline: 3 };
        let found = promotions(1, &segments, std::slice::from_ref(&fork));
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, std::slice::from_ref(&fork), &found);
        // Timeline 1's segment 5 was never archived: a target in it is replayed
        // along timeline 3, whose segment 5 holds the history up to minute 42
        // (along timeline 1, replay would end before the target).
        assert_eq!(window.plan(at(35)), Ok(Plan { backup_id: 1, timeline: 1 }));
        assert_eq!(window.plan(at(41)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert_eq!(window.plan(at(75)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert!(window.plan(at(50)).unwrap_err().contains("restore 1 went back"));
    }

    #[test]
    fn a_fork_with_nothing_archived_yet_and_a_failover_after_it_go_on_from_each_other() {
        // A restore at minute 62 back to minute 25 (timeline 2, nothing of it
        // archived), then a failover at minute 64 (timeline 3, from segment 3).
        let mut segments: Vec<_> = (1..=6).map(|n| segment(1, n, n as u32 * 10)).collect();
        segments.extend([history(3, 64), segment(3, 3, 66), segment(3, 4, 70)]);
        let fork = Fork { seq: 1, target_time: at(25), forked_at: at(62), timeline: 2 };
        let found = promotions(1, &segments, std::slice::from_ref(&fork));
        assert_eq!(found, [Promotion { at: at(64), timeline: 3 }]);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, std::slice::from_ref(&fork), &found);
        assert_eq!(window.end(), Some(at(70)));
        assert_eq!(window.gaps.len(), 1, "only the restore's: {:?}", window.gaps);
        assert!(window.gaps[0].reason.contains("restore 1 went back"), "{:?}", window.gaps);
        assert_eq!(window.plan(at(68)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert_eq!(window.current_timeline(), 3);
    }

    #[test]
    fn history_files_of_restores_and_of_the_first_timeline_are_not_promotions() {
        let fork = Fork { seq: 1, target_time: at(25), forked_at: at(62), timeline: 3 };
        let segments =
            [history(2, 40), segment(2, 1, 41), history(3, 62), segment(3, 2, 63), history(4, 70), segment(4, 3, 71)];
        assert_eq!(
            promotions(2, &segments, std::slice::from_ref(&fork)),
            [Promotion { at: at(70), timeline: 4 }],
            "timeline 2 is the first, timeline 3 the restore's"
        );
        // A restore that failed after its server promoted: nothing was written on
        // its timeline.
        assert_eq!(promotions(2, &[history(5, 80)], &[]), []);
        // A restore to before a promotion leaves the promoted timeline behind.
        let mut segments: Vec<_> = (1..=6).map(|n| segment(1, n, n as u32 * 10)).collect();
        segments.extend([history(2, 45), segment(2, 5, 50), history(3, 62), segment(3, 3, 70)]);
        let found = promotions(1, &segments, std::slice::from_ref(&fork));
        assert_eq!(found, [Promotion { at: at(45), timeline: 2 }]);
        let window = Window::compute(1, &[base(1, 1, 1, 1, 5)], &segments, std::slice::from_ref(&fork), &found);
        assert_eq!(window.plan(at(20)), Ok(Plan { backup_id: 1, timeline: 1 }));
        assert_eq!(window.plan(at(66)), Ok(Plan { backup_id: 1, timeline: 3 }));
        assert!(window.plan(at(48)).is_err(), "timeline 2 is no longer part of the history");
        assert_eq!(window.current_timeline(), 3);
    }
}
