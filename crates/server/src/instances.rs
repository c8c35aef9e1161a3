//! Instances as svcdash runs them: creating and deleting them (for the broker and
//! the CLI alike) and turning stored nodes into what the deployer needs.

use anyhow::Context;
use engines::{EngineRef, NodeSpec};
use secrecy::SecretString;
use store::{Instance, InstanceState, Job, JobKind, NewInstance, Node};

use crate::catalog::{Plan, Service};
use crate::state::AppState;

/// Who an instance belongs to (CF: organisation and space).
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    pub subtenant_id: String,
    pub subtenant_name: Option<String>,
}

/// How a new instance begins.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start {
    /// Whether it archives its write-ahead log ([`AppState::continuous_archiving`]).
    pub continuous_archiving: bool,
    /// The moment of another instance it starts from, instead of empty.
    pub restore_from: Option<store::RestoreFrom>,
}

impl AppState {
    /// Whether a new instance of `plan` archives its write-ahead log: as its creator
    /// asked, else as the plan says. The error says why a request cannot be met.
    pub fn continuous_archiving(&self, service: &Service, plan: &Plan, asked: Option<bool>) -> Result<bool, String> {
        let archiving = asked.unwrap_or(plan.continuous_archiving);
        let engine = self.engines.find(&service.engine).map_err(|e| format!("{e:#}"))?;
        if archiving && !engine.archives_wal() {
            return Err(format!(
                "continuous archiving is available for PostgreSQL instances only; service {} runs {}",
                service.name,
                engine.name()
            ));
        }
        Ok(archiving)
    }

    /// Records a new instance and queues its provisioning.
    pub async fn create_instance(
        &self,
        guid: &str,
        name: &str,
        service: &Service,
        plan: &Plan,
        tenancy: Tenancy,
        start: Start,
    ) -> store::StoreResult<(Instance, Job)> {
        let created = self
            .store
            .create_instance(NewInstance {
                guid: guid.to_owned(),
                name: name.to_owned(),
                service_id: service.id.clone(),
                plan_id: plan.id.clone(),
                tenant_id: tenancy.tenant_id,
                tenant_name: tenancy.tenant_name,
                subtenant_id: tenancy.subtenant_id,
                subtenant_name: tenancy.subtenant_name,
                backup_guid: uuid::Uuid::new_v4().to_string(),
                local_name: engines::new_local_name(),
                version: service.version.clone(),
                continuous_archiving: start.continuous_archiving,
                restore_from: start.restore_from,
            })
            .await?;
        self.jobs.notify_one();
        Ok(created)
    }

    /// Queues a restart, recreate or update, for the API and the CLI alike: only
    /// for a provisioned instance, not while the parachute holds it on a full disk,
    /// and one operation at a time.
    pub async fn queue_lifecycle(&self, instance: &Instance, kind: JobKind) -> crate::domain_error::DomainResult<Job> {
        use crate::domain_error::DomainError;
        if !matches!(instance.state, InstanceState::Provisioned | InstanceState::Available | InstanceState::Failed) {
            return Err(DomainError::conflict(
                "InstanceNotReady",
                format!(
                    "service instance {} is {}; only a provisioned instance can {kind}",
                    instance.guid, instance.state
                ),
            ));
        }
        if let Some(why) = crate::metrics::parachute::still_full(self, instance).await? {
            return Err(DomainError::conflict(
                "ParachuteActive",
                format!("{why}; free space on it (or ask the operator for more) before the engine can start again"),
            ));
        }
        match self.store.enqueue_lifecycle(instance.id, kind).await {
            Ok(job) => {
                self.jobs.notify_one();
                Ok(job)
            }
            Err(store::StoreError::Conflict(what)) => Err(DomainError::conflict(
                "OperationInProgress",
                format!("the instance cannot {kind} now: {what}; try again when it has finished"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Queues the removal of an instance's processes and data (its backups stay).
    pub async fn delete_instance(&self, instance: &Instance) -> store::StoreResult<Job> {
        let job = self.store.enqueue_deprovision(instance.id).await?;
        self.jobs.notify_one();
        Ok(job)
    }

    /// The release the instance runs (instances older than version tracking run
    /// the catalog's current one; [`Self::record_versions`] writes it down at start).
    pub fn version_of(&self, instance: &Instance) -> String {
        match (&instance.version, self.catalog.service(&instance.service_id)) {
            (Some(version), _) => version.clone(),
            (None, Some(service)) => service.version.clone(),
            (None, None) => "unknown".to_owned(),
        }
    }

    /// Records the catalog's current release for instances that have none recorded
    /// (made before releases were tracked), so a later catalog change offers them
    /// the update instead of silently renaming what they run.
    pub async fn record_versions(&self) -> anyhow::Result<()> {
        for instance in self.store.list_instances().await? {
            if instance.version.is_some() || instance.state == InstanceState::Deleted {
                continue;
            }
            if let Some(service) = self.catalog.service(&instance.service_id) {
                self.store.set_instance_version(instance.id, &service.version).await?;
            }
        }
        Ok(())
    }

    /// The catalog's newer release of the instance's service, if it runs an older one.
    pub fn available_updates(&self, instance: &Instance) -> Vec<api_types::v1::AvailableUpdate> {
        let Some(service) = self.catalog.service(&instance.service_id) else {
            return Vec::new();
        };
        if instance.state == InstanceState::Deleted || !newer(&service.version, &self.version_of(instance)) {
            return Vec::new();
        }
        vec![api_types::v1::AvailableUpdate {
            name: service.name.clone(),
            kind: "release".to_owned(),
            version: service.version.clone(),
        }]
    }

    pub fn engine_of(&self, instance: &Instance) -> anyhow::Result<EngineRef> {
        let service = self.catalog.service(&instance.service_id).with_context(|| {
            format!("service {} of instance {} is not in the catalog", instance.service_id, instance.guid)
        })?;
        self.engines.find(&service.engine).cloned()
    }

    /// What the deployer needs to run `node`, one of the instance's `nodes` (the
    /// others are its peers in a cluster).
    pub fn node_spec(
        &self,
        instance: &Instance,
        engine: &EngineRef,
        node: &Node,
        nodes: &[Node],
    ) -> anyhow::Result<NodeSpec> {
        let peers = match nodes.len() {
            0 | 1 => Vec::new(),
            _ => nodes
                .iter()
                .filter(|n| n.index != node.index)
                .map(|n| engines::Peer {
                    index: n.index,
                    host: "127.0.0.1".to_owned(),
                    port: n.port,
                    extra_ports: n.extra_ports.clone(),
                    role: n.role.map(crate::cluster::engine_role),
                })
                .collect(),
        };
        let synchronous = self
            .catalog
            .service(&instance.service_id)
            .and_then(|s| s.plan(&instance.plan_id))
            .is_some_and(|p| p.synchronous && nodes.len() > 1);
        Ok(NodeSpec {
            role: node.role.map(crate::cluster::engine_role),
            peers,
            synchronous,
            engine: engine.clone(),
            instance_guid: instance.guid.clone(),
            local_name: instance.local_name.clone(),
            index: node.index,
            port: node.port,
            extra_ports: node.extra_ports.clone(),
            admin_user: node.admin_user.clone(),
            admin_password: self.master.unseal(&node.sealed_password)?,
            archive: match instance.continuous_archiving {
                true => Some(engines::WalArchive {
                    client: crate::archive::client_program(&self.config)?,
                    timeout_secs: self.config.backups.wal_archive_timeout_secs.max(1),
                }),
                false => None,
            },
        })
    }

    pub async fn node_specs(&self, instance: &Instance) -> anyhow::Result<Vec<NodeSpec>> {
        let engine = self.engine_of(instance)?;
        let nodes = self.store.nodes(instance.id).await?;
        nodes.iter().map(|n| self.node_spec(instance, &engine, n, &nodes)).collect()
    }

    /// Starts the engines of every provisioned instance, as after a restart of svcdash,
    /// all at once; returns when each has started or been marked failed.
    pub async fn start_instances(&self) -> anyhow::Result<()> {
        let instances = self.store.list_instances().await?;
        let starts = instances
            .into_iter()
            .filter(|i| matches!(i.state, InstanceState::Provisioned | InstanceState::Available))
            .map(|instance| async move {
                let result: anyhow::Result<()> = async {
                    // A node whose data a restore left behind stays stopped: the
                    // supervisor has it copy the primary once the primary runs.
                    let pending: Vec<i64> =
                        self.store.nodes(instance.id).await?.iter().filter(|n| n.copy_pending).map(|n| n.index).collect();
                    for spec in self.node_specs(&instance).await? {
                        if !pending.contains(&spec.index) {
                            self.deployer.start(&spec).await?;
                        }
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = result {
                    tracing::error!(instance = %instance.guid, error = format!("{e:#}"), "could not start the instance");
                    let reason = format!("could not start after svcdash restarted: {e:#}");
                    let _ = self.store.set_instance_state(instance.id, InstanceState::Failed, Some(&reason)).await;
                }
            });
        futures::future::join_all(starts).await;
        Ok(())
    }
}

/// Whether release `candidate` is newer than `current`: dotted numbers compare as
/// numbers (`15.10` > `15.9`), anything else merely has to differ.
fn newer(candidate: &str, current: &str) -> bool {
    let numbers = |v: &str| v.split('.').map(str::parse::<u64>).collect::<Result<Vec<_>, _>>();
    match (numbers(candidate), numbers(current)) {
        (Ok(a), Ok(b)) => a > b,
        _ => candidate != current,
    }
}

/// A new generated secret, sealed for storage.
pub fn sealed_secret(state: &AppState, len: usize) -> anyhow::Result<(SecretString, String)> {
    let secret = engines::generate_secret(len);
    let sealed = state.master.seal(&secret)?;
    Ok((SecretString::from(secret), sealed))
}

/// A new instance id, in the form platforms use.
pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn releases_compare_as_numbers() {
        assert!(super::newer("15.2.0", "15.1.0"));
        assert!(super::newer("15.10", "15.9"));
        assert!(super::newer("7.1.0", "7"));
        assert!(!super::newer("7", "7.1.0"), "a catalog going back offers no update");
        assert!(!super::newer("15", "15"));
        assert!(super::newer("2024-b", "2024-a"));
    }
}
