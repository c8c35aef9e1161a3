//! Headers on every answer (pages, API JSON, errors, assets) that keep browsers
//! from running anything but svcdash's own script and stylesheet, from showing its
//! pages inside another site's frame, from telling other sites which URL a person
//! came from, and from guessing a content type other than the one declared.

use axum::http::header::{
    CONTENT_SECURITY_POLICY, HeaderName, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};

/// The pages load `/assets/app.js` and `/assets/app.css` and talk to svcdash only:
/// no inline script or style, no eval, no plugins, no `<base>`, no framing.
pub const CONTENT_SECURITY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const HEADERS: [(HeaderName, &str); 4] = [
    (CONTENT_SECURITY_POLICY, CONTENT_SECURITY),
    (X_FRAME_OPTIONS, "DENY"),
    (REFERRER_POLICY, "same-origin"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// Adds the headers to an answer (a route that set one of them keeps its own).
pub fn add(headers: &mut HeaderMap) {
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
}
