//! A node's data points under the reference's names: `system.*` (machine figures
//! and the node's disks), `parachute.*`, and svcdash's own `process.*` (the engine's
//! processes). Values are integers: bytes, milliseconds, load × 1,000,000, percent.

use super::system::{Disk, Machine, ProcessTree};

pub type Points = Vec<(String, i64)>;

/// The filesystems holding a node's three folders.
#[derive(Default)]
pub struct NodeDisks {
    pub system: Option<Disk>,
    pub ephemeral: Option<Disk>,
    pub persistent: Option<Disk>,
}

impl NodeDisks {
    pub fn get(&self, name: &str) -> Option<Disk> {
        match name {
            "system" => self.system,
            "ephemeral" => self.ephemeral,
            "persistent" => self.persistent,
            _ => None,
        }
    }
}

/// A cluster node's `replication.*` points: `role` (1 for the primary, 0 for a
/// replica, 2 for a member of a cluster whose every node takes writes),
/// `lag_bytes` and `lag_ms` where the engine could tell, and a member's
/// `members` (the nodes it sees in step with it).
pub fn replication(figures: &engines::Replication) -> Points {
    let mut points = Points::new();
    let role = match figures.role {
        engines::Role::Replica => 0,
        engines::Role::Primary => 1,
        engines::Role::Member => 2,
    };
    push(&mut points, "replication.role", role);
    if let Some(members) = figures.members {
        push(&mut points, "replication.members", members);
    }
    if let Some(bytes) = figures.lag_bytes {
        push(&mut points, "replication.lag_bytes", bytes);
    }
    if let Some(seconds) = figures.lag_seconds {
        push(&mut points, "replication.lag_ms", seconds.saturating_mul(1000));
    }
    points
}

fn push(points: &mut Points, name: impl Into<String>, value: impl TryInto<i64>) {
    points.push((name.into(), value.try_into().unwrap_or(i64::MAX)));
}

fn flag(ok: bool) -> i64 {
    i64::from(!ok)
}

fn push_disk(points: &mut Points, prefix: &str, disk: Option<Disk>) {
    push(points, format!("{prefix}.error"), flag(disk.is_some()));
    if let Some(d) = disk {
        push(points, format!("{prefix}.total"), d.total);
        push(points, format!("{prefix}.used"), d.used);
        push(points, format!("{prefix}.free"), d.free);
    }
}

/// `system.*`: the machine's load, CPUs, memory and swap; the node's `system`,
/// `ephemeral` and `persistent` disks, then every other physical disk by mount point.
pub fn system(machine: &Machine, disks: &NodeDisks) -> Points {
    let mut p = Points::with_capacity(64);
    push(&mut p, "system.cpu.error", flag(machine.cpus.is_some()));
    for (n, cpu) in machine.cpus.iter().flatten().enumerate() {
        push(&mut p, format!("system.cpu{n}.user"), cpu.user);
        push(&mut p, format!("system.cpu{n}.system"), cpu.system);
        push(&mut p, format!("system.cpu{n}.idle"), cpu.idle);
    }
    push(&mut p, "system.load.error", flag(machine.load.is_some()));
    if let Some(load) = machine.load {
        for (name, value) in ["load1", "load5", "load15"].into_iter().zip(load) {
            push(&mut p, format!("system.load.{name}"), (f64::from(value) * 1_000_000.0).round() as i64);
        }
    }
    push(&mut p, "system.memory.error", flag(machine.memory.is_some()));
    if let Some(m) = &machine.memory {
        push(&mut p, "system.memory.total", m.total);
        push(&mut p, "system.memory.used", m.used);
        push(&mut p, "system.memory.free", m.free);
        push(&mut p, "system.memory.shared", m.shared);
        push(&mut p, "system.memory.buffers", m.buffers);
        push(&mut p, "system.memory.cached", m.cached);
    }
    push(&mut p, "system.swap.error", flag(machine.memory.is_some()));
    if let Some(m) = &machine.memory {
        push(&mut p, "system.swap.total", m.swap_total);
        push(&mut p, "system.swap.used", m.swap_total.saturating_sub(m.swap_free));
        push(&mut p, "system.swap.free", m.swap_free);
    }
    push(&mut p, "system.disk.error", flag(machine.mounts.is_some()));
    for name in ["system", "ephemeral", "persistent"] {
        push_disk(&mut p, &format!("system.disk.{name}"), disks.get(name));
    }
    for (name, disk) in machine.mounts.iter().flatten() {
        // The node's own folders name these three.
        if !matches!(name.as_str(), "system" | "ephemeral" | "persistent") {
            push_disk(&mut p, &format!("system.disk.{name}"), *disk);
        }
    }
    p
}

/// `process.*`: the engine's processes together (svcdash's addition; the machine
/// figures are shared by every node of the local deployer, these are not).
pub fn process(tree: Option<ProcessTree>) -> Points {
    let mut p = Points::with_capacity(5);
    push(&mut p, "process.running", i64::from(tree.is_some()));
    if let Some(t) = tree {
        push(&mut p, "process.count", t.count);
        push(&mut p, "process.rss", t.rss);
        push(&mut p, "process.cpu_user", t.user_ms);
        push(&mut p, "process.cpu_system", t.system_ms);
    }
    p
}

/// One watched disk as the parachute sees it.
pub struct WatchedDisk {
    pub name: &'static str,
    pub threshold: u8,
    pub disk: Option<Disk>,
}

impl WatchedDisk {
    /// At or above its threshold.
    pub fn over(&self) -> bool {
        self.disk.is_some_and(|d| d.used_percent() >= u64::from(self.threshold))
    }
}

/// `parachute.*`: `activated` while the parachute keeps the engine stopped.
pub fn parachute(watched: &[WatchedDisk], activated: bool) -> Points {
    let mut p = Points::with_capacity(2 + 7 * watched.len());
    push(&mut p, "parachute.error", flag(watched.iter().all(|w| w.disk.is_some())));
    push(&mut p, "parachute.activated", i64::from(activated));
    for w in watched {
        let prefix = format!("parachute.disk.{}", w.name);
        push(&mut p, format!("{prefix}.error"), flag(w.disk.is_some()));
        if let Some(d) = w.disk {
            push(&mut p, format!("{prefix}.total"), d.total);
            push(&mut p, format!("{prefix}.used"), d.used);
            push(&mut p, format!("{prefix}.used_percent"), d.used_percent());
            push(&mut p, format!("{prefix}.used_threshold"), w.threshold);
            push(&mut p, format!("{prefix}.free"), d.free);
            push(&mut p, format!("{prefix}.activated"), i64::from(w.over()));
        }
    }
    p
}
