//! How pages show sizes, times and durations.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Bytes in binary units, as the reference's dashboard counts them (1 MiB = 1024²).
pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A timestamp people read: UTC, to the second. Written field by field rather
/// than through chrono's `format`, which parses its pattern on every call: a
/// page of 100 backups shows 200 of these, and the parsing took a tenth of it.
pub fn time(t: &DateTime<Utc>) -> String {
    let (d, s) = (t.date_naive(), t.time());
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", d.year(), d.month(), d.day(), s.hour(), s.minute(), s.second())
}

/// A moment to restore to: UTC, to the millisecond (what the API takes).
pub fn time_ms(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

/// `1h 02m 03s`, `2m 05s`, `7s`, `0.4s`.
pub fn duration(from: &DateTime<Utc>, to: &DateTime<Utc>) -> String {
    let ms = (*to - *from).num_milliseconds().max(0);
    let s = ms / 1000;
    match s {
        0..=9 => format!("{:.1}s", ms as f64 / 1000.0),
        10..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m {:02}s", s / 3600, s % 3600 / 60, s % 60),
    }
}

/// A length of time given in seconds: `24 h`, `90 min`, `45 s`.
pub fn seconds(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ if s.is_multiple_of(3600) => format!("{} h", s / 3600),
        _ => format!("{:.1} h", s as f64 / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_read_as_chronos_pattern_writes_them() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::milliseconds(678);
        for t in [t0, t0 + chrono::Duration::days(400) + chrono::Duration::seconds(86_399), DateTime::UNIX_EPOCH] {
            assert_eq!(time(&t), t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        }
        assert_eq!(time(&t0), "2026-01-02 03:04:05 UTC");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(329_800_000), "314.5 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn durations_read_naturally() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let after = |ms| t0 + chrono::Duration::milliseconds(ms);
        assert_eq!(duration(&t0, &after(400)), "0.4s");
        assert_eq!(duration(&t0, &after(42_000)), "42s");
        assert_eq!(duration(&t0, &after(125_000)), "2m 05s");
        assert_eq!(duration(&t0, &after(3_723_000)), "1h 02m 03s");
        assert_eq!(duration(&after(5), &t0), "0.0s");
    }
}
