//! The catalog of services and plans (TOML), and its Open Service Broker form.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub name: String,
    /// The engine's name in svcdash's registry (`postgresql`, `redis`, `mariadb`, `rabbitmq`).
    pub engine: String,
    /// The version instances are deployed with.
    pub version: String,
    pub description: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub plans: Vec<Plan>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Engine processes per instance.
    #[serde(default = "one")]
    pub nodes: i64,
    /// Whether instances archive their write-ahead log unless their creator says
    /// otherwise (engines that can: PostgreSQL).
    #[serde(default)]
    pub continuous_archiving: bool,
    /// Whether a cluster's commits return only once a replica has them, so a
    /// failover loses no acknowledged write (PostgreSQL).
    #[serde(default)]
    pub synchronous: bool,
}

fn one() -> i64 {
    1
}

const BUILT_IN: &str = include_str!("../catalog.toml");

impl Catalog {
    pub fn load(path: Option<&Path>, engines: &engines::Registry) -> anyhow::Result<Self> {
        let (text, origin) = match path {
            Some(path) => (
                std::fs::read_to_string(path).with_context(|| format!("reading catalog {}", path.display()))?,
                path.display().to_string(),
            ),
            None => (BUILT_IN.to_owned(), "the built-in catalog".to_owned()),
        };
        let catalog: Catalog = toml::from_str(&text).with_context(|| format!("parsing {origin}"))?;
        catalog.validate(engines).with_context(|| format!("checking {origin}"))?;
        Ok(catalog)
    }

    fn validate(&self, engines: &engines::Registry) -> anyhow::Result<()> {
        let mut ids = std::collections::HashSet::new();
        for service in &self.services {
            engines.find(&service.engine).with_context(|| format!("service {}", service.name))?;
            if !ids.insert(&service.id) {
                bail!("service id {} appears twice", service.id);
            }
            for plan in &service.plans {
                if !ids.insert(&plan.id) {
                    bail!("plan id {} appears twice", plan.id);
                }
                let engine = engines.find(&service.engine)?;
                match plan.nodes {
                    1 => {}
                    3 if engine.cluster_kind().is_some() => {}
                    3 => bail!(
                        "plan {}/{}: svcdash runs {} as single nodes only so far",
                        service.name,
                        plan.name,
                        engine.name()
                    ),
                    n => bail!(
                        "plan {}/{}: nodes = {n}; an instance has 1 node or a cluster of 3",
                        service.name,
                        plan.name
                    ),
                }
                if plan.synchronous && (plan.nodes < 2 || engine.name() != "postgresql") {
                    bail!(
                        "plan {}/{}: synchronous replication is a setting of PostgreSQL clusters",
                        service.name,
                        plan.name
                    );
                }
            }
        }
        Ok(())
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn service_by_name(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The catalog as the broker API shows it; in Cloud Foundry UAA mode every service
    /// carries the dashboard's OAuth client, which the platform registers with UAA.
    pub fn broker_catalog(
        &self,
        dashboard_client: Option<api_types::broker::DashboardClient>,
    ) -> api_types::broker::Catalog {
        use serde_json::{Map, Value, json};
        let services = self
            .services
            .iter()
            .map(|s| {
                let mut metadata = Map::new();
                metadata.insert(
                    "displayName".into(),
                    Value::from(s.display_name.clone().unwrap_or_else(|| s.name.clone())),
                );
                metadata.insert("version".into(), json!(s.version));
                api_types::broker::Service {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    description: s.description.clone(),
                    bindable: true,
                    // The catalog offers 3-node plans only for engines that cluster,
                    // and a single node can become one of them.
                    plan_updateable: s.plans.iter().any(|p| p.nodes > 1),
                    instances_retrievable: false,
                    bindings_retrievable: true,
                    tags: s.tags.clone(),
                    metadata,
                    dashboard_client: dashboard_client.clone(),
                    plans: s
                        .plans
                        .iter()
                        .map(|p| api_types::broker::Plan {
                            id: p.id.clone(),
                            name: p.name.clone(),
                            description: p.description.clone(),
                            free: true,
                            bindable: true,
                            metadata: Map::new(),
                            maintenance_info: s.maintenance_info(),
                        })
                        .collect(),
                }
            })
            .collect();
        api_types::broker::Catalog { services }
    }
}

impl Service {
    /// The service's release as OSB `maintenance_info`: its version as a semantic
    /// version (`15` → `15.0.0`, `10.11` → `10.11.0`); none for a version that is
    /// not one to three numbers.
    pub fn maintenance_info(&self) -> Option<api_types::broker::MaintenanceInfo> {
        let parts: Vec<u64> = self.version.split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut semver = parts.iter().map(u64::to_string).collect::<Vec<_>>();
        semver.resize(3, "0".to_owned());
        Some(api_types::broker::MaintenanceInfo {
            version: semver.join("."),
            description: Some(format!(
                "{} release {}",
                self.display_name.as_deref().unwrap_or(&self.name),
                self.version
            )),
        })
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    pub fn plan_by_name(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn releases_become_semantic_versions_for_platforms() {
        let service = |version: &str| super::Service {
            id: "s".into(),
            name: "x".into(),
            engine: "redis".into(),
            version: version.into(),
            description: "d".into(),
            display_name: None,
            tags: Vec::new(),
            plans: Vec::new(),
        };
        let version = |v: &str| service(v).maintenance_info().map(|m| m.version);
        assert_eq!(version("15").as_deref(), Some("15.0.0"));
        assert_eq!(version("10.11").as_deref(), Some("10.11.0"));
        assert_eq!(version("7.2.4").as_deref(), Some("7.2.4"));
        assert_eq!(version("2024-b"), None);
        assert_eq!(version("1.2.3.4"), None);
    }

    #[test]
    fn plans_have_one_node_or_a_cluster_of_three_for_every_engine() {
        let text = |engine: &str, nodes: i64| {
            format!(
                "[[services]]\nid = \"s\"\nname = \"x\"\nengine = \"{engine}\"\nversion = \"1\"\n\
                 description = \"d\"\n[[services.plans]]\nid = \"p\"\nname = \"p\"\ndescription = \"d\"\n\
                 nodes = {nodes}\n"
            )
        };
        let engines = engines::Registry::builtin();
        let check = |engine: &str, nodes: i64| {
            let catalog: super::Catalog = toml::from_str(&text(engine, nodes)).unwrap();
            catalog.validate(&engines).map_err(|e| e.to_string())
        };
        // Every built-in engine clusters; an engine added without `cluster_kind`
        // gets single-node plans only.
        for engine in ["postgresql", "redis", "mariadb", "rabbitmq"] {
            assert!(check(engine, 1).is_ok(), "{engine}");
            assert!(check(engine, 3).is_ok(), "{engine}");
            assert!(check(engine, 2).unwrap_err().contains("1 node or a cluster of 3"), "{engine}");
        }
    }

    #[test]
    fn built_in_catalog_offers_postgresql_and_redis_single_small() {
        let catalog = super::Catalog::load(None, &engines::Registry::builtin()).unwrap();
        for name in ["postgresql", "redis"] {
            let service = catalog.service_by_name(name).unwrap();
            assert!(service.plan_by_name("single-small").is_some(), "{name}");
        }
    }
}
