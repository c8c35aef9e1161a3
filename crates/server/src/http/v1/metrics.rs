//! `GET /v1/instances/{instance_id}/metrics?quantity=N`: the kept collections of
//! every node of the instance as Graphite lines, the newest `quantity` per node.
//! Without `quantity`, all kept collections up to `[metrics] max_quantity`; a
//! larger `quantity` is refused, so no request copies a whole day of history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use store::Role;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::{Path, Query};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/instances/{instance_id}/metrics", get(metrics))
}

#[derive(serde::Deserialize)]
struct MetricsQuery {
    quantity: Option<String>,
}

/// How many collections per node to answer with: 1 to the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quantity(usize);

impl Quantity {
    /// `text` from the query, or `max` without one.
    fn parse(text: Option<&str>, max: usize) -> Result<Self> {
        let Some(text) = text else { return Ok(Self(max)) };
        let invalid = |why: String| ApiError::new(StatusCode::BAD_REQUEST, "InvalidQuantity", why);
        let digits = text.trim_start_matches('0');
        if !text.bytes().all(|b| b.is_ascii_digit()) || digits.is_empty() {
            return Err(invalid(format!("quantity must be a whole number from 1 to {max}, not {text:?}")));
        }
        // Digits only: what does not fit a usize is above the maximum too.
        match digits.parse::<usize>() {
            Ok(n) if n <= max => Ok(Self(n)),
            Ok(n) => Err(invalid(format!("quantity {n} is above the maximum of {max}"))),
            Err(_) => Err(invalid(format!("quantity is above the maximum of {max}"))),
        }
    }
}

async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    Query(query): Query<MetricsQuery>,
) -> Result<Json<Vec<String>>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    let Quantity(quantity) = Quantity::parse(query.quantity.as_deref(), state.config.metrics.max_quantity)?;
    Ok(Json(state.metrics.history.lines(&instance.guid, Some(quantity))))
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    #[test]
    fn quantities_are_whole_numbers_up_to_the_maximum() {
        assert_eq!(Quantity::parse(None, 360).unwrap(), Quantity(360));
        assert_eq!(Quantity::parse(Some("1"), 360).unwrap(), Quantity(1));
        assert_eq!(Quantity::parse(Some("360"), 360).unwrap(), Quantity(360));
        for bad in ["0", "-1", "abc", "1.5", "", " 1"] {
            let e = Quantity::parse(Some(bad), 360).unwrap_err();
            assert_eq!(e.error, "InvalidQuantity", "{bad:?}");
            assert!(e.description.contains("1 to 360"), "{bad:?}: {}", e.description);
        }
        for big in ["361", "99999999999999999999999"] {
            let e = Quantity::parse(Some(big), 360).unwrap_err();
            assert_eq!(e.error, "InvalidQuantity", "{big}");
            assert!(e.description.contains("360"), "{big}: {}", e.description);
        }
    }
}
