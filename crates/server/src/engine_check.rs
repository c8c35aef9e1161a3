//! Which engines the catalog's services need, and whether this machine has them:
//! said at start (so an operator learns before the first provision fails) and by
//! `svcdash engines`.

use crate::state::AppState;

/// One catalog service and the engine behind it.
pub struct EngineStatus {
    pub service: String,
    pub engine: &'static str,
    /// The release the catalog deploys.
    pub catalog_version: String,
    /// The release installed here, or why it cannot run.
    pub installed: Result<String, String>,
}

impl EngineStatus {
    /// Whether the installed release is the catalog's (`10.11.19` is release `10.11`).
    pub fn matches(&self) -> bool {
        self.installed
            .as_ref()
            .is_ok_and(|v| v == &self.catalog_version || v.starts_with(&format!("{}.", self.catalog_version)))
    }
}

pub async fn check(state: &AppState) -> Vec<EngineStatus> {
    let tools = state.config.engines.tools();
    let mut out = Vec::new();
    for service in &state.catalog.services {
        let Some(engine) = state.engines.get(&service.engine) else { continue };
        let installed = match tools.check(engine.as_ref()) {
            Ok(()) => engine.version(&tools).await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        };
        out.push(EngineStatus {
            service: service.name.clone(),
            engine: engine.name(),
            catalog_version: service.version.clone(),
            installed,
        });
    }
    out
}

/// Logs what [`check`] found: missing engines and other releases than the catalog's.
pub async fn log(state: &AppState) {
    for status in check(state).await {
        match &status.installed {
            Err(why) => tracing::warn!(
                service = %status.service,
                engine = status.engine,
                "instances of this service cannot be provisioned or started here: {why}"
            ),
            Ok(version) if !status.matches() => tracing::warn!(
                service = %status.service,
                engine = status.engine,
                installed = %version,
                catalog = %status.catalog_version,
                "the installed release is not the one the catalog offers"
            ),
            Ok(version) => {
                tracing::info!(service = %status.service, engine = status.engine, installed = %version, "engine found")
            }
        }
    }
}
