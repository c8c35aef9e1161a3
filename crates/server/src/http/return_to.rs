//! Where a browser goes after signing in: a path on this server, never another site.
//!
//! The target arrives in a query string or a form field anyone can craft, so it is
//! checked the way browsers will read it: they drop tabs and line breaks from URLs
//! and treat `\` as `/`, which turns `/\evil.example` or `/<tab>/evil.example` into
//! `//evil.example`, a link to another host.

use std::fmt;

/// Longer targets are not links svcdash hands out: refused rather than stored.
const MAX_LEN: usize = 2048;

/// A same-origin path (with its query), safe to redirect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo(String);

impl ReturnTo {
    /// The target when it is a same-origin path; `None` for anything else.
    pub fn parse(target: &str) -> Option<Self> {
        let rest = target.strip_prefix('/')?;
        let safe = target.len() <= MAX_LEN
            && !rest.starts_with(['/', '\\'])
            // Links svcdash makes are percent-encoded, so a target with anything but
            // printable ASCII (spaces, control characters, other scripts) is not one.
            && target.chars().all(|c| c.is_ascii_graphic() && c != '\\')
            && stays_on_this_origin(target);
        safe.then(|| Self(target.to_owned()))
    }

    /// The target when it is safe, else the start page.
    pub fn or_home(target: Option<&str>) -> Self {
        target.and_then(Self::parse).unwrap_or_else(|| Self("/".to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReturnTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A second opinion from a WHATWG URL parser, as browsers resolve a `Location`.
fn stays_on_this_origin(target: &str) -> bool {
    let base = url::Url::parse("http://svcdash.invalid/").expect("a valid base URL");
    base.join(target).is_ok_and(|url| url.origin() == base.origin())
}

#[cfg(test)]
mod tests {
    use super::ReturnTo;

    #[test]
    fn keeps_paths_on_this_server() {
        for good in ["/", "/service-instances/x?y=1", "/service-instances/x/backups#restores", "/a/b%2F%2Fc", "/%C3%A4"]
        {
            assert_eq!(ReturnTo::parse(good).map(|r| r.to_string()).as_deref(), Some(good), "{good}");
        }
    }

    #[test]
    fn refuses_anything_that_leaves_it() {
        for bad in [
            "",
            "service-instances",
            "//evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "/\t/evil.example",
            "/\n/evil",
            "/\r/evil",
            "/\u{7f}/evil",
            "/\u{0}/evil",
            "/\u{85}/evil",
            "/x\\y",
            "/a b",
            "/ä",
            "/\u{2028}/evil",
            "https://evil.example",
            "javascript:alert(1)",
            " /evil",
            "///evil.example",
        ] {
            assert_eq!(ReturnTo::parse(bad), None, "{bad:?}");
            assert_eq!(ReturnTo::or_home(Some(bad)).as_str(), "/", "{bad:?}");
        }
        assert_eq!(ReturnTo::parse(&format!("/{}", "a".repeat(3000))), None);
        assert_eq!(ReturnTo::or_home(None).as_str(), "/");
    }
}
