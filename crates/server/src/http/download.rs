//! Downloading a backup: the stored object as it is (compressed, encrypted with
//! the person's key), streamed in constant memory, with its length, a telling
//! file name, and single byte ranges for resuming.

use axum::body::Body;
use axum::http::header::{ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use object_store::GetOptions;
use store::{AuditOutcome, Backup, Instance};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Streams `backup` of `instance` to the caller, or hands the reason it cannot be
/// downloaded to `refused` (each API answers that in its own shape).
pub async fn download(
    state: &AppState,
    caller: &Caller,
    instance: &Instance,
    backup: &Backup,
    headers: &HeaderMap,
    refused: impl FnOnce(String) -> Response,
) -> Response {
    let personal = match state.personal_key(instance).await {
        Ok(key) => key,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    if let Some(reason) = crate::backups::not_downloadable_reason(backup, personal.as_ref()) {
        return refused(reason);
    }
    let size = backup.size.unwrap_or(0).max(0) as u64;
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(text) => match parse_range(text, size) {
            Ok(range) => range,
            Err(()) => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(CONTENT_RANGE, format!("bytes */{size}"))],
                    axum::Json(api_types::ErrorBody {
                        error: "RangeNotSatisfiable".into(),
                        description: format!("the backup has {size} bytes; the range {text:?} is outside them"),
                    }),
                )
                    .into_response();
            }
        },
    };
    let path = state.storage.path(&backup.object_key);
    let options = GetOptions::default().with_range(range.clone());
    let object = match state.storage.store().get_opts(&path, options).await {
        Ok(object) => object,
        Err(e) => {
            return ApiError::internal(anyhow::anyhow!("reading backup object {}: {e}", backup.object_key))
                .into_response();
        }
    };
    let detail = format!("backup {}{}", backup.seq, range.as_ref().map_or(String::new(), |r| format!(", bytes {r:?}")));
    state.audit(caller, "backup.download", Some(&instance.guid), AuditOutcome::Success, Some(&detail)).await;

    let body = Body::from_stream(object.into_stream().map_err(std::io::Error::other));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let disposition = format!("attachment; filename=\"{}\"", file_name(instance, backup));
    h.insert(CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("file names are plain ASCII"));
    match range {
        Some(r) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = response.headers_mut();
            h.insert(CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            h.insert(CONTENT_RANGE, HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end - 1)).unwrap());
        }
        None => {
            response.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(size));
        }
    }
    response
}

/// `<instance>-backup-<n>-<date>.<format>`, e.g. `orders-backup-3-20260412T013003Z.dump.zst.age`.
pub fn file_name(instance: &Instance, backup: &Backup) -> String {
    let safe: String = instance
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    let format = backup
        .object_key
        .rsplit('/')
        .next()
        .and_then(|name| name.split_once('.'))
        .map_or("zst.age", |(_, format)| format);
    format!("{safe}-backup-{}-{}.{format}", backup.seq, backup.job.created_at.format("%Y%m%dT%H%M%SZ"))
}

/// One byte range of an object of `size` bytes (RFC 9110): `Ok(None)` for a
/// header to ignore (several ranges, another unit: the whole object is sent),
/// `Err` when the range lies outside the object.
fn parse_range(text: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = text.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => start..(end + 1).min(size),
        (Ok(start), Err(_)) if last.is_empty() => start..size,
        (Err(_), Ok(suffix)) if first.is_empty() => size.saturating_sub(suffix)..size,
        _ => return Ok(None),
    };
    if range.start >= size || range.is_empty() { Err(()) } else { Ok(Some(range)) }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ok(Some(990..1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=-0", 1000), Err(()));
        // Not for us to answer partially: the whole object goes out.
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=5-1", 1000), Ok(None));
    }
}
