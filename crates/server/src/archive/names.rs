//! The file names PostgreSQL hands to its archive command. A name reaches an
//! object key only after it matched one of these shapes.

/// A write-ahead log file PostgreSQL archives, by the shape of its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalName {
    pub name: String,
    pub timeline: u32,
}

/// `000000010000000000000003` (a segment), `00000002.history` (a timeline's
/// history), `000000010000000000000003.partial` (the last segment of a timeline a
/// promotion ended) or `000000010000000000000003.00000028.backup` (a base backup's
/// label).
pub fn parse(name: &str) -> Option<WalName> {
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
    let ok = match name.split('.').collect::<Vec<_>>().as_slice() {
        [segment] => hex(segment, 24),
        [timeline, "history"] => hex(timeline, 8),
        [segment, "partial"] => hex(segment, 24),
        [segment, offset, "backup"] => hex(segment, 24) && hex(offset, 8),
        _ => false,
    };
    if !ok {
        return None;
    }
    let timeline = u32::from_str_radix(&name[..8], 16).ok()?;
    Some(WalName { name: name.to_owned(), timeline })
}

/// A segment's timeline and its number counted from the start of the log, for
/// segments of `segment_size` bytes; `None` for other files.
pub fn segment_number(name: &str, segment_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || parse(name).is_none() || segment_size == 0 {
        return None;
    }
    let part = |range: std::ops::Range<usize>| u64::from_str_radix(&name[range], 16).ok();
    let (timeline, log, seg) = (part(0..8)?, part(8..16)?, part(16..24)?);
    let per_log = 0x1_0000_0000 / segment_size;
    Some((u32::try_from(timeline).ok()?, log * per_log + seg))
}

/// The name of segment `number` of `timeline`.
pub fn segment_name(timeline: u32, number: u64, segment_size: u64) -> String {
    let per_log = 0x1_0000_0000 / segment_size.max(1);
    format!("{timeline:08X}{:08X}{:08X}", number / per_log, number % per_log)
}

#[cfg(test)]
mod tests {
    use super::{parse, segment_name, segment_number};

    #[test]
    fn segments_count_across_log_files() {
        const SIZE: u64 = 16 << 20;
        assert_eq!(segment_number("0000000200000001000000FF", SIZE), Some((2, 0x1FF)));
        assert_eq!(segment_name(2, 0x200, SIZE), "000000020000000200000000");
        assert_eq!(segment_number("00000002.history", SIZE), None);
        for n in [0, 1, 255, 256, 100_000] {
            assert_eq!(segment_number(&segment_name(3, n, SIZE), SIZE), Some((3, n)));
        }
    }

    #[test]
    fn only_postgresql_names_pass() {
        assert_eq!(parse("000000010000000000000003").unwrap().timeline, 1);
        assert_eq!(parse("0000000A.history").unwrap().timeline, 10);
        assert!(parse("000000020000000000000003.partial").is_some());
        assert!(parse("000000010000000000000003.00000028.backup").is_some());
        for bad in [
            "",
            "../../etc/passwd",
            "00000001000000000000000",
            "0000000100000000000000030",
            "000000010000000000000003/x",
            "000000010000000000000003.ready",
            "00000001.history/..",
            "0000000g0000000000000003",
            "00000001000000000000000a",
            "000000010000000000000003.0000002.backup",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} passed");
        }
    }
}
