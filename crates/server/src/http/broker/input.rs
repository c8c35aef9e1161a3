//! What the broker takes from a platform: extractors that refuse with the broker's
//! error body, and the checks the Open Service Broker API asks for before anything
//! changes (required fields present and not blank, service and plan the instance's).

use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};

use super::{Failure, internal};

impl From<PathRejection> for Failure {
    fn from(r: PathRejection) -> Self {
        // A route whose parameters do not fit its handler is svcdash's mistake.
        if r.status().is_server_error() {
            return internal(anyhow::anyhow!(r.body_text()));
        }
        Self::bad_request(r.body_text())
    }
}

impl From<QueryRejection> for Failure {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

/// axum's `Path`, refusing with the broker's error body: with [`BrokerId`] fields,
/// a request with a bad id reaches no handler.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Failure))]
pub struct Path<T>(pub T);

/// axum's `Query`, refusing with the broker's error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Failure))]
pub struct Query<T>(pub T);

/// A field the Open Service Broker API requires: present and not blank.
pub fn required<'a>(field: &str, value: Option<&'a str>) -> Result<&'a str, Failure> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(Failure::bad_request(format!("{field} must not be empty"))),
        None => Err(Failure::bad_request(format!("{field} is required"))),
    }
}

/// A field the Open Service Broker API allows to be left out, but not blank.
pub fn optional<'a>(field: &str, value: Option<&'a str>) -> Result<Option<&'a str>, Failure> {
    value.map(|v| required(field, Some(v))).transpose()
}

/// Refuses a request whose `service_id` or `plan_id` (each checked when given) are
/// not the instance's.
pub fn ensure_same_offering(
    instance: &store::Instance,
    service_id: Option<&str>,
    plan_id: Option<&str>,
) -> Result<(), Failure> {
    if let Some(other) = service_id.filter(|s| *s != instance.service_id) {
        return Err(Failure::bad_request(format!(
            "service_id {other:?} is not the service of instance {}",
            instance.guid
        )));
    }
    if let Some(other) = plan_id.filter(|p| *p != instance.plan_id) {
        return Err(Failure::bad_request(format!("plan_id {other:?} is not the plan of instance {}", instance.guid)));
    }
    Ok(())
}
