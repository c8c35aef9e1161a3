//! Cluster instances of MariaDB, on Galera: every node takes writes while it is in
//! the cluster's primary component (a majority of its nodes), and a commit returns
//! once every node has certified it, so losing a node loses no acknowledged write
//! and needs no failover. A node that returns catches up by incremental state
//! transfer (IST) or, when it missed too much or has other data, by a full copy
//! (SST, `mariadb-backup` streamed through `socat`).
//!
//! Group communication, IST and SST all run over TLS with one self-signed
//! certificate per instance, which every node presents and trusts as its only
//! authority: a process of another tenant on the host can neither join the
//! cluster, nor receive a state transfer, nor push one into a joining node.
//!
//! A new cluster (a new instance, a restore, a cold start) is started by one node
//! with `--wsrep-new-cluster`; the others join it. Which one: a node starts a new
//! cluster only when no other node listens and its own state allows it (data that
//! never was a cluster's, or `safe_to_bootstrap: 1`, which Galera writes on the
//! last node to leave). svcdash stops a cluster's nodes one by one, node 0 last,
//! so that node 0 starts it again.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::engine::{Node, StartMode};
use crate::{NodeLayout, files, process};

/// Galera's library, as Debian's `galera-4` installs it.
const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// The configuration file a cluster node's server and its state-transfer scripts
/// read (they take nothing from the command line): svcdash's, readable by the node.
pub fn config_file(layout: &NodeLayout) -> PathBuf {
    layout.system().join("galera.cnf")
}

/// The instance's TLS key and certificate, in the instance's folder (svcdash's,
/// readable by the instance's group): every node of the instance uses the same.
fn tls_dir(layout: &NodeLayout) -> anyhow::Result<PathBuf> {
    Ok(layout.root().parent().context("a node's folder has an instance folder")?.join("galera-tls"))
}

/// Makes the instance's key and self-signed certificate unless they exist.
pub async fn ensure_certificate(node: &Node<'_>) -> anyhow::Result<()> {
    let dir = tls_dir(node.layout)?;
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    if files::read_small(&cert).is_some() && std::fs::metadata(&key).is_ok() {
        return Ok(());
    }
    let (svcdash, _) = crate::layout::owners(node.run_as);
    // Root's folder, the group may read: openssl writes where no engine can.
    files::folder(&dir, svcdash, 0o750)?;
    let openssl = node.tools.find(node.spec.engine.as_ref(), "openssl")?;
    let mut cmd = process::command(&openssl, None);
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "36500", "-subj", "/CN=svcdash galera"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    process::run(cmd, "openssl req").await?;
    for (path, mode) in [(&key, 0o640), (&cert, 0o644)] {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        files::give(&file, path, svcdash, mode)?;
    }
    Ok(())
}

/// This node and its peers, by index: (index, host, Galera's group port).
fn group_addresses(node: &Node<'_>) -> anyhow::Result<Vec<(i64, String, u16)>> {
    let engine = node.spec.engine.as_ref();
    let mut all = vec![(node.spec.index, "127.0.0.1".to_owned(), node.port("galera")?)];
    for peer in &node.spec.peers {
        all.push((peer.index, peer.host.clone(), peer.port_named(engine, "galera")?));
    }
    all.sort_unstable();
    Ok(all)
}

/// Writes the node's configuration: the cluster, TLS for every transfer, and the
/// settings Galera needs of the server.
pub fn write_config(node: &Node<'_>, os_user: &str, buffer_pool: &str) -> anyhow::Result<()> {
    let layout = node.layout;
    let tls = tls_dir(layout)?;
    let (key, cert) = (tls.join("key.pem"), tls.join("cert.pem"));
    let (key, cert) = (key.display(), cert.display());
    let members: Vec<String> = group_addresses(node)?.iter().map(|(_, h, p)| format!("{h}:{p}")).collect();
    let (group, ist, sst) = (node.port("galera")?, node.port("ist")?, node.port("sst")?);
    let text = format!(
        "[mysqld]\n\
         wsrep_on=ON\n\
         wsrep_provider={PROVIDER}\n\
         wsrep_cluster_name={name}\n\
         wsrep_cluster_address=gcomm://{members}\n\
         wsrep_node_name=node-{index}\n\
         wsrep_node_address=127.0.0.1:{group}\n\
         wsrep_provider_options=\"gmcast.listen_addr=tcp://127.0.0.1:{group};ist.recv_addr=127.0.0.1:{ist};\
         gcache.size=64M;pc.recovery=TRUE;socket.ssl_key={key};socket.ssl_cert={cert};socket.ssl_ca={cert}\"\n\
         wsrep_sst_receive_address=127.0.0.1:{sst}\n\
         wsrep_sst_method=mariabackup\n\
         wsrep_sst_auth={os_user}:\n\
         binlog_format=ROW\n\
         innodb_autoinc_lock_mode=2\n\
         innodb_buffer_pool_size={buffer_pool}\n\
         tmpdir={tmp}\n\
         [sst]\n\
         encrypt=4\n\
         tkey={key}\n\
         tcert={cert}\n\
         tca={cert}\n\
         sst-log-archive=0\n",
        name = node.spec.local_name,
        members = members.join(","),
        index = node.spec.index,
        tmp = layout.run_dir().display(),
    );
    let (svcdash, _) = crate::layout::owners(node.run_as);
    files::write_new(&config_file(layout), text.as_bytes(), svcdash, 0o640).context("writing the Galera configuration")
}

/// Whether the node starts a new cluster rather than join one: no other node
/// listens, and its data may start one (see the module's notes). A node whose
/// state says another node has newer data waits to be joined instead: its start
/// fails, and it is started again once another node runs.
pub fn starts_new_cluster(node: &Node<'_>, mode: StartMode) -> anyhow::Result<bool> {
    let others_listen = group_addresses(node)?
        .iter()
        .filter(|(index, _, _)| *index != node.spec.index)
        .any(|(_, host, port)| listens(host, *port));
    if others_listen {
        return Ok(false);
    }
    if mode == StartMode::AfterRestore {
        return Ok(true);
    }
    let data = node.layout.data_dir();
    Ok(match files::read_small(&data.join("grastate.dat")) {
        Some(state) => state.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["safe_to_bootstrap:", "1"]),
        // A server's data that was never a cluster's (a new instance's node 0, a
        // single node becoming a cluster); a joiner's folder is empty.
        None => files::is_folder(&data.join("mysql")),
    })
}

/// Whether the member stopped without saying where it was: its state file has
/// no position (`seqno: -1`, which Galera writes while the server runs), and it
/// has data to recover one from.
pub fn crashed(node: &Node<'_>) -> bool {
    let data = node.layout.data_dir();
    files::is_folder(&data.join("mysql"))
        && files::read_small(&data.join("grastate.dat"))
            .is_some_and(|state| state.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["seqno:", "-1"]))
}

/// The position `mariadbd --wsrep-recover` wrote in its log: `uuid:seqno`.
pub fn recovered_position(log: &str) -> Option<String> {
    let position = log.lines().rev().find_map(|l| l.split("WSREP: Recovered position: ").nth(1))?.trim();
    let (uuid, seqno) = position.rsplit_once(':')?;
    let valid = uuid.len() == 36
        && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && seqno.parse::<i64>().is_ok_and(|n| n >= 0);
    valid.then(|| position.to_owned())
}

fn listens(host: &str, port: u16) -> bool {
    let Ok(ip) = host.parse() else { return false };
    TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_millis(300)).is_ok()
}

/// What Galera says of the node: whether it is in the primary component, and
/// whether it is synced with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub primary_component: bool,
    pub synced: bool,
    /// The members of the component the node is in.
    pub size: Option<u64>,
}

pub fn status(rows: &[(String, String)]) -> Status {
    let value = |name: &str| rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    Status {
        primary_component: value("wsrep_cluster_status") == Some("Primary"),
        synced: value("wsrep_local_state_comment") == Some("Synced") && value("wsrep_ready") == Some("ON"),
        size: value("wsrep_cluster_size").and_then(|v| v.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovered_position_is_read_from_the_log_and_nothing_else_passes() {
        let log = "2026-12-01  7:09:40 0 [Note] InnoDB: Starting crash recovery\n\
                   2026-12-01  7:09:41 0 [Note] WSREP: Recovered position: 0c082361-ed56-11f1-85f5-06d73873133b:8110\n";
        assert_eq!(recovered_position(log).as_deref(), Some("0c082361-ed56-11f1-85f5-06d73873133b:8110"));
        for bad in [
            "WSREP: Recovered position: 00000000-0000-0000-0000-000000000000:-1",
            "WSREP: Recovered position: 0c082361; --init-file=/x:1",
            "nothing recovered",
        ] {
            assert_eq!(recovered_position(bad), None, "{bad}");
        }
    }
}
