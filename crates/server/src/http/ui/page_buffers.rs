//! The buffers pages are rendered into, kept for the next page.
//!
//! The server runs with `MIMALLOC_PURGE_DELAY=0` (see `malloc_tunables` in the
//! binary), so memory a page's answer freed goes back to the system at once and
//! the next answer faults it in again: on the Backups page of 100 backups (83 KB
//! of HTML) page faults and the TLB shoot-downs of returning the memory took 13 %
//! of the server's samples. A page is rendered into a kept buffer, sent from it,
//! and the buffer comes back once hyper has written it.

use std::sync::{Mutex, PoisonError};

use axum::body::{Body, Bytes};

/// Buffers kept at most: a few pages being sent at once.
const KEPT: usize = 8;
/// A buffer that grew past this (a page of thousands of rows) is not kept.
const LARGEST_KEPT: usize = 1 << 20;

static KEPT_BUFFERS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `size_hint` bytes.
pub fn take(size_hint: usize) -> String {
    let mut buf = KEPT_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default();
    buf.reserve(size_hint);
    buf
}

/// `html` as an answer's body; its buffer is kept again once the body is dropped.
pub fn body(html: String) -> Body {
    Body::from(Bytes::from_owner(Kept(html)))
}

/// A buffer that goes back to [`KEPT_BUFFERS`] when dropped.
struct Kept(String);

impl AsRef<[u8]> for Kept {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

/// Keeps `buf` for the next page, unless enough are kept or it is too large;
/// whether it was kept.
pub fn give_back(mut buf: String) -> bool {
    if buf.capacity() > LARGEST_KEPT {
        return false;
    }
    buf.clear();
    let mut kept = KEPT_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
    let keep = kept.len() < KEPT;
    if keep {
        kept.push(buf);
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pages_buffer_comes_back_empty_once_its_body_is_sent() {
        // Room for it, whatever other tests gave back.
        KEPT_BUFFERS.lock().unwrap().clear();
        let mut html = take(64 * 1024);
        html.push_str("<p>a page</p>");
        let at = html.as_ptr();
        let body = body(html);
        let sent = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(&sent[..], b"<p>a page</p>");
        drop(sent);
        // Other tests may take buffers at the same time: look for this one.
        let kept = KEPT_BUFFERS.lock().unwrap();
        let back = kept.iter().find(|b| b.as_ptr() == at).expect("the buffer is kept");
        assert!(back.is_empty() && back.capacity() >= 64 * 1024);
    }

    #[test]
    fn a_buffer_too_large_is_not_kept() {
        assert!(!give_back(String::with_capacity(LARGEST_KEPT + 1)));
    }
}
