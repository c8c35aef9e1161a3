//! The `progress` of a running backup or restore, from what its worker recorded:
//! rate and time left are worked out here, so every svcdash serving the API
//! answers the same.

use api_types::{TaskStatus, v1};
use chrono::{DateTime, Utc};
use store::{Job, Restore};

/// How far `job` is, while it runs.
pub fn of_job(job: &Job, now: DateTime<Utc>) -> Option<v1::Progress> {
    if job.status != TaskStatus::Running {
        return None;
    }
    let recorded = job.progress.unwrap_or(store::JobProgress { bytes: 0, total: None });
    let seconds = job.started_at.map_or(0.0, |s| (now - s).num_milliseconds().max(0) as f64 / 1000.0);
    let rate = match seconds >= 1.0 {
        true => (recorded.bytes as f64 / seconds) as u64,
        false => 0,
    };
    // An estimate can fall short: the job is not done until it ends.
    let total = recorded.total.map(|t| t.max(recorded.bytes));
    let left = total.map(|t| t - recorded.bytes);
    Some(v1::Progress {
        bytes_done: recorded.bytes,
        bytes_total: total,
        bytes_per_second: rate,
        eta_seconds: left.filter(|_| rate > 0).map(|l| l.div_ceil(rate)),
        percent: total.map(|t| match t {
            0 => 0,
            t => ((recorded.bytes as u128 * 100 / t as u128) as u8).min(99),
        }),
        cancel_requested_by: job.cancelled_by.clone(),
    })
}

/// One line for people: `120.5 MiB of about 1.2 GiB · 35.2 MiB/s · about 31 s
/// left`; `estimated`: the total is a guess (a backup's).
pub fn describe(p: &v1::Progress, estimated: bool) -> String {
    use crate::http::ui::format;
    let size = |b: u64| format::size(i64::try_from(b).unwrap_or(i64::MAX));
    let mut text = match p.bytes_total {
        Some(total) if estimated => format!("{} of about {}", size(p.bytes_done), size(total)),
        Some(total) => format!("{} of {}", size(p.bytes_done), size(total)),
        None => size(p.bytes_done),
    };
    if let Some(pct) = p.percent {
        text += &format!(" ({pct} %)");
    }
    if p.bytes_per_second > 0 {
        text += &format!(" · {}/s", size(p.bytes_per_second));
    }
    if let Some(eta) = p.eta_seconds.filter(|_| p.bytes_per_second > 0) {
        text += &format!(" · about {} left", format::seconds(eta.max(1)));
    }
    if let Some(who) = &p.cancel_requested_by {
        text += &format!(" · stopping: cancelled by {who}");
    }
    text
}

/// How far a restore is: its running node's job (nodes restore one at a time).
pub fn of_restore(restore: &Restore, now: DateTime<Utc>) -> Option<v1::Progress> {
    restore.jobs.iter().find_map(|job| of_job(job, now))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use store::{JobKind, JobProgress};

    use super::*;

    fn running(started: DateTime<Utc>, progress: Option<JobProgress>) -> Job {
        Job {
            id: 1,
            instance_id: 1,
            kind: JobKind::Backup,
            backup_id: Some(1),
            restore_id: None,
            node_index: None,
            status: TaskStatus::Running,
            error: None,
            created_at: started,
            started_at: Some(started),
            updated_at: started,
            finished_at: None,
            progress,
            cancelled_by: None,
        }
    }

    #[test]
    fn rate_eta_and_percent_follow_from_the_recorded_bytes() {
        let now = Utc::now();
        let job = running(now - Duration::seconds(10), Some(JobProgress { bytes: 100 << 20, total: Some(400 << 20) }));
        let p = of_job(&job, now).unwrap();
        assert_eq!((p.bytes_done, p.bytes_total), (100 << 20, Some(400 << 20)));
        assert_eq!(p.bytes_per_second, 10 << 20);
        assert_eq!(p.eta_seconds, Some(30));
        assert_eq!(p.percent, Some(25));
        assert_eq!(describe(&p, true), "100.0 MiB of about 400.0 MiB (25 %) · 10.0 MiB/s · about 30 s left");
    }

    #[test]
    fn an_estimate_exceeded_shows_99_percent_and_an_unknown_total_no_eta() {
        let now = Utc::now();
        let over = running(now - Duration::seconds(4), Some(JobProgress { bytes: 500, total: Some(400) }));
        let p = of_job(&over, now).unwrap();
        assert_eq!((p.bytes_total, p.percent, p.eta_seconds), (Some(500), Some(99), Some(0)));
        let unknown = running(now - Duration::seconds(4), Some(JobProgress { bytes: 500, total: None }));
        let p = of_job(&unknown, now).unwrap();
        assert_eq!((p.bytes_total, p.percent, p.eta_seconds), (None, None, None));
        let mut done = running(now, None);
        done.status = TaskStatus::Done;
        assert_eq!(of_job(&done, now), None);
        let fresh = of_job(&running(now, None), now).unwrap();
        assert_eq!((fresh.bytes_done, fresh.bytes_per_second), (0, 0));
    }
}
