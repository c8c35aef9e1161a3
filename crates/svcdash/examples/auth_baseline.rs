//! The API load benchmark's baseline (`bench/api-load.sh`): the least an
//! authenticated route can cost in svcdash. It opens the same configuration and
//! state as `svcdash serve` and answers `GET /v1/instances/{id}/backups` with an
//! empty list once the caller's bearer token is checked, through the very
//! extractor the real routes use, on the same allocator and runtime. What the
//! real route costs beyond it is the instance lookup, the access check, the
//! query and the JSON.
//!
//! `cargo run --release -p svcdash --example auth_baseline -- 127.0.0.1:PORT`,
//! with the environment (`SVCDASH_DATA`, …) of the server whose state it reads.

use std::net::SocketAddr;

use axum::Json;
use axum::routing::get;
use server::auth::Caller;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen: SocketAddr =
        std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: auth_baseline ADDRESS:PORT"))?.parse()?;
    let config = server::Config::load(None, serde_json::json!({ "listen": listen.to_string() }))?;
    let state = server::AppState::open(config).await?;
    let app = axum::Router::new()
        .route("/v1/instances/{instance_id}/backups", get(authenticated_empty_list))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("auth_baseline listening on {listen}");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

async fn authenticated_empty_list(_caller: Caller) -> Json<[(); 0]> {
    Json([])
}
