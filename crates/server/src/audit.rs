//! Recording state-changing actions in the audit log. Writing the log never fails
//! the action itself: a failed write is logged as an error instead.

use std::net::IpAddr;

use store::{AuditOutcome, NewAuditEntry};

use crate::auth::Caller;
use crate::state::AppState;

impl AppState {
    /// Records what a dashboard caller did (or tried to do).
    pub async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        instance_guid: Option<&str>,
        outcome: AuditOutcome,
        detail: Option<&str>,
    ) {
        self.audit_as(&caller.principal.name, caller.addr, action, instance_guid, outcome, detail).await;
    }

    /// Records an action of someone who is not (yet) a dashboard caller: a sign-in,
    /// the platform through the broker API.
    pub async fn audit_as(
        &self,
        actor: &str,
        addr: Option<IpAddr>,
        action: &str,
        instance_guid: Option<&str>,
        outcome: AuditOutcome,
        detail: Option<&str>,
    ) {
        let entry = NewAuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            instance_guid: instance_guid.map(str::to_owned),
            outcome,
            detail: detail.map(str::to_owned),
            remote_addr: addr.map(|a| a.to_string()),
        };
        if let Err(e) = self.store.append_audit(entry).await {
            tracing::error!(error = format!("{e:#}"), action, actor, "could not write the audit log");
        }
    }
}
