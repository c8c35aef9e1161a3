//! Open Service Broker API v2 bodies: the parts svcdash implements.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub description: String,
    pub bindable: bool,
    pub plan_updateable: bool,
    pub instances_retrievable: bool,
    pub bindings_retrievable: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_client: Option<DashboardClient>,
    pub plans: Vec<Plan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardClient {
    pub id: String,
    pub secret: String,
    pub redirect_uri: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub description: String,
    pub free: bool,
    pub bindable: bool,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The release instances of the plan are made with, for platforms that offer
    /// upgrades (`cf update-service --upgrade`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// OSB `maintenance_info`: a release as a semantic version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceInfo {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PUT /v2/service_instances/:instance_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionRequest {
    pub service_id: String,
    pub plan_id: String,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub organization_guid: Option<String>,
    #[serde(default)]
    pub space_guid: Option<String>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The release the platform expects; it must be the catalog's.
    #[serde(default)]
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// `PATCH /v2/service_instances/:instance_id`: a plan change (or nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub service_id: String,
    #[serde(default)]
    pub plan_id: Option<String>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub previous_values: Option<Map<String, Value>>,
    /// The release the platform asks the instance to run: an upgrade when it is
    /// the catalog's and the instance runs an older one.
    #[serde(default)]
    pub maintenance_info: Option<MaintenanceInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionResponse {
    pub dashboard_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// `GET /v2/service_instances/:instance_id/last_operation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastOperation {
    /// `in progress`, `succeeded` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PUT /v2/service_instances/:instance_id/service_bindings/:binding_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindRequest {
    pub service_id: String,
    pub plan_id: String,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub bind_resource: Option<Map<String, Value>>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindResponse {
    pub credentials: Credentials,
}

/// What an application needs to reach its instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub uri: String,
    /// What else the engine offers (RabbitMQ: `vhost`, `http_api_uri`, `management_url`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The broker's error body: `{"error": "...", "description": "..."}` (`error` optional in the spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub description: String,
}
