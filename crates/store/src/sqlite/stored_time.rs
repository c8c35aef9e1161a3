//! Timestamps of [`super::folded`] rows and of the rows [`super::readers`] read.
//! sqlx writes a `DateTime<Utc>` as RFC 3339 with `+00:00` and 0, 3, 6 or 9
//! digits of fraction; chrono's general parser took a twentieth of a listing's
//! time for the four timestamps of every backup. That form is read here digit by
//! digit; anything else goes to chrono's parser.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::de::{self, Deserializer, Visitor};

/// For `#[serde(deserialize_with)]` on a `DateTime<Utc>`.
pub(super) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Timestamp)
}

/// For `#[serde(deserialize_with)]` on an `Option<DateTime<Utc>>`.
pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    d.deserialize_option(OptionalTimestamp)
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    stored(s).or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]+00:00`.
fn stored(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes().strip_suffix(b"+00:00")?;
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if b.len() < 19 || separators.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let number =
        |digits: &[u8]| digits.iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')));
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            number(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let year = i32::try_from(number(&b[0..4])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)?;
    let time = NaiveTime::from_hms_nano_opt(number(&b[11..13])?, number(&b[14..16])?, number(&b[17..19])?, nanos)?;
    Some(date.and_time(time).and_utc())
}

struct Timestamp;

impl<'de> Visitor<'de> for Timestamp {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        parse(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
    }
}

/// A timestamp column as the store's inline readers ([`super::readers`]) read it;
/// `Option<Stored>` for a column that may be NULL.
pub(super) struct Stored(pub DateTime<Utc>);

impl rusqlite::types::FromSql for Stored {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        parse(text).map(Stored).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("{text:?} is not an RFC 3339 timestamp").into())
        })
    }
}

/// The same timestamp, or `null`.
struct OptionalTimestamp;

impl<'de> Visitor<'de> for OptionalTimestamp {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        required(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{SecondsFormat, TimeZone};

    use super::*;

    #[derive(serde::Deserialize)]
    struct Row {
        #[serde(deserialize_with = "required")]
        at: DateTime<Utc>,
        #[serde(deserialize_with = "optional")]
        maybe: Option<DateTime<Utc>>,
    }

    #[test]
    fn every_form_sqlx_writes_reads_back_as_it_was() {
        let second = Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 58).unwrap();
        for nanos in [0, 832_000_000, 123_456_000, 987_654_321, 5] {
            let t = second + chrono::Duration::nanoseconds(nanos);
            let text = t.to_rfc3339_opts(SecondsFormat::AutoSi, false);
            assert_eq!(stored(&text), Some(t), "{text}");
        }
    }

    #[test]
    fn other_forms_go_to_chronos_parser_and_nonsense_is_refused() {
        let t = Utc.with_ymd_and_hms(2021, 4, 21, 1, 30, 3).unwrap() + chrono::Duration::milliseconds(832);
        assert_eq!(stored("2021-04-21T01:30:03.832Z"), None);
        assert_eq!(parse("2021-04-21T01:30:03.832Z"), Some(t));
        assert_eq!(parse("2021-04-21T03:30:03.832+02:00"), Some(t));
        for bad in ["2021-02-30T01:30:03+00:00", "2021-04-21T01:30:03.+00:00", "2021-04-21T01:30:03", "x"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_read_required_and_optional_timestamps() {
        let row: Row = serde_json::from_str(r#"{"at": "2021-04-21T01:30:03.832+00:00", "maybe": null}"#).unwrap();
        assert_eq!(row.at.timestamp_subsec_millis(), 832);
        assert_eq!(row.maybe, None);
        let row: Row =
            serde_json::from_str(r#"{"at": "2021-04-21T01:30:03+00:00", "maybe": "2021-04-21T01:30:04+00:00"}"#)
                .unwrap();
        assert_eq!(row.maybe.unwrap() - row.at, chrono::Duration::seconds(1));
        assert!(serde_json::from_str::<Row>(r#"{"at": "soon", "maybe": null}"#).is_err());
    }
}
