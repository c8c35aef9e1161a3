//! Instance and binding ids as the broker takes them from a platform. They are
//! stored, logged and shown, so anything that could be read as a path (`/`, `..`),
//! a line break or another word is refused here, before a handler sees it.

use std::fmt;

use serde::Deserialize;

/// An instance or binding id from a broker request: 1 to 64 ASCII letters, digits,
/// `-`, `_` and `.`, and neither `.` nor `..`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BrokerId(String);

/// Why a text is not a [`BrokerId`]; says so without repeating long input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBrokerId(String);

impl BrokerId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: String) -> Result<Self, InvalidBrokerId> {
        const RULE: &str = "ids are 1 to 64 ASCII letters, digits, '-', '_' and '.', and not '.' or '..'";
        if text.is_empty() {
            return Err(InvalidBrokerId(format!("the id is empty; {RULE}")));
        }
        if text.len() > Self::MAX_LEN {
            return Err(InvalidBrokerId(format!("the id is {} bytes long; {RULE}", text.len())));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !text.chars().all(allowed) || text == "." || text == ".." {
            return Err(InvalidBrokerId(format!("{text:?} is not a valid id; {RULE}")));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BrokerId {
    type Error = InvalidBrokerId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(text)
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::BrokerId;

    #[test]
    fn platform_ids_are_accepted() {
        for good in [
            "5ec7e75a-0000-4000-8000-000000000001",
            "x1",
            "my_instance.v2",
            "a..b",
            "...",
            &"a".repeat(64),
            &crate::instances::new_guid(),
        ] {
            assert_eq!(BrokerId::parse(good.to_owned()).unwrap().as_str(), good);
        }
    }

    #[test]
    fn paths_line_breaks_and_odd_characters_are_refused() {
        for bad in ["", ".", "..", "../../evil", "a/b", "a\\b", "a\nb", "a b", "é", "a%2Fb", "a\0", &"a".repeat(65)] {
            let err = BrokerId::parse(bad.to_owned()).unwrap_err().to_string();
            assert!(err.contains("1 to 64 ASCII letters"), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "the description repeats a line break: {err}");
        }
        let long = BrokerId::parse("x".repeat(500)).unwrap_err().to_string();
        assert!(long.contains("500 bytes") && !long.contains("xxxxx"), "{long}");
    }
}
