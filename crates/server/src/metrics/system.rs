//! Figures of this machine as the reference's `system` metrics name them, read
//! from `/proc` and `statvfs`. Every node of the local deployer shares them, except
//! for its disks (the filesystems holding its folders) and its engine's processes.

use std::collections::HashMap;
use std::path::Path;

use procfs::{Current, CurrentSI};

/// One reading of the machine. `None` where the figures could not be read: the
/// metric's `error` point says so.
pub struct Machine {
    pub load: Option<[f32; 3]>,
    pub cpus: Option<Vec<CpuTimes>>,
    pub memory: Option<Memory>,
    /// Mounted physical devices by metric name, in mount order.
    pub mounts: Option<Vec<(String, Option<Disk>)>>,
    /// Every process: parent pid, resident bytes, user and system milliseconds.
    processes: HashMap<i32, ProcessFigures>,
}

/// Milliseconds since boot.
pub struct CpuTimes {
    /// User time including nice time.
    pub user: u64,
    pub system: u64,
    pub idle: u64,
}

/// Bytes.
pub struct Memory {
    pub total: u64,
    pub used: u64,
    pub free: u64,
    pub shared: u64,
    pub buffers: u64,
    pub cached: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// Bytes; `free` leaves out the blocks reserved for root, as `df` does.
#[derive(Debug, Clone, Copy)]
pub struct Disk {
    pub total: u64,
    pub used: u64,
    pub free: u64,
}

impl Disk {
    /// Whole percent in use of the space non-root users can have, as `df` counts it
    /// (rounded down, as the reference's examples show).
    pub fn used_percent(&self) -> u64 {
        let usable = self.used + self.free;
        (self.used * 100).checked_div(usable).unwrap_or(0)
    }
}

#[derive(Clone, Copy)]
struct ProcessFigures {
    parent: i32,
    rss: u64,
    user_ms: u64,
    system_ms: u64,
}

/// What the processes of one engine use together.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessTree {
    pub count: u64,
    pub rss: u64,
    pub user_ms: u64,
    pub system_ms: u64,
}

impl Machine {
    /// Reads everything once; blocking (small `/proc` reads), so run it off the runtime.
    pub fn read() -> Self {
        let load = procfs::LoadAverage::current().ok().map(|l| [l.one, l.five, l.fifteen]);
        let cpus = procfs::KernelStats::current().ok().map(|stats| {
            stats
                .cpu_time
                .iter()
                .map(|t| CpuTimes { user: t.user_ms() + t.nice_ms(), system: t.system_ms(), idle: t.idle_ms() })
                .collect()
        });
        let memory = procfs::Meminfo::current().ok().map(|m| {
            let reclaimable = m.s_reclaimable.unwrap_or(0);
            Memory {
                total: m.mem_total,
                used: m.mem_total.saturating_sub(m.mem_free + m.cached + m.buffers + reclaimable),
                free: m.mem_free,
                shared: m.shmem.unwrap_or(0),
                buffers: m.buffers,
                cached: m.cached,
                swap_total: m.swap_total,
                swap_free: m.swap_free,
            }
        });
        Self { load, cpus, memory, mounts: physical_mounts(), processes: processes() }
    }

    /// The process `pid` and all its descendants.
    pub fn process_tree(&self, pid: u32) -> Option<ProcessTree> {
        self.process_trees(&[pid])
    }

    /// The processes `pids` and all their descendants, each counted once; `None`
    /// when there are none or the first has gone.
    pub fn process_trees(&self, pids: &[u32]) -> Option<ProcessTree> {
        let roots: Vec<i32> = pids.iter().filter_map(|p| i32::try_from(*p).ok()).collect();
        self.processes.get(roots.first()?)?;
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for (&p, figures) in &self.processes {
            children.entry(figures.parent).or_default().push(p);
        }
        let mut tree = ProcessTree::default();
        let mut pending = roots;
        // /proc is read process by process, not at one instant: guard against cycles.
        let mut seen = std::collections::HashSet::new();
        while let Some(p) = pending.pop() {
            if !seen.insert(p) {
                continue;
            }
            let Some(figures) = self.processes.get(&p) else { continue };
            tree.count += 1;
            tree.rss += figures.rss;
            tree.user_ms += figures.user_ms;
            tree.system_ms += figures.system_ms;
            pending.extend(children.get(&p).into_iter().flatten());
        }
        Some(tree)
    }
}

/// The filesystem holding `path`.
pub fn disk(path: &Path) -> Option<Disk> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    let unit = stat.fragment_size();
    let total = stat.blocks() * unit;
    let used = stat.blocks().saturating_sub(stat.blocks_free()) * unit;
    Some(Disk { total, used, free: stat.blocks_available() * unit })
}

/// The reference's disk name for a mount point: `/` is `system`, a VM's data and
/// store disks are `ephemeral` and `persistent`; others lose their first `/` and
/// have the rest replaced by `_`.
pub fn mount_name(mount_point: &str) -> String {
    match mount_point {
        "/" => "system".to_owned(),
        "/var/vcap/data" => "ephemeral".to_owned(),
        "/var/vcap/store" => "persistent".to_owned(),
        // Anything but letters, digits, `-` and `_` would add levels to a Graphite path.
        other => other
            .strip_prefix('/')
            .unwrap_or(other)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect(),
    }
}

/// Mounted block devices with a size, as the reference monitors them.
fn physical_mounts() -> Option<Vec<(String, Option<Disk>)>> {
    let infos = procfs::process::Process::myself().ok()?.mountinfo().ok()?;
    let mut mounts: Vec<(String, Option<Disk>)> = Vec::new();
    for info in infos.iter() {
        // Block devices, not loop devices (snap packages, images) nor single files
        // bind-mounted from a disk (a container's /etc/hosts).
        let physical =
            info.mount_source.as_deref().is_some_and(|s| s.starts_with("/dev/") && !s.starts_with("/dev/loop"));
        if !physical || !info.mount_point.is_dir() {
            continue;
        }
        let disk = disk(&info.mount_point);
        if disk.is_some_and(|d| d.total == 0) {
            continue;
        }
        let name = mount_name(&info.mount_point.to_string_lossy());
        // A later mount on the same point hides the earlier one.
        mounts.retain(|(n, _)| *n != name);
        mounts.push((name, disk));
    }
    Some(mounts)
}

fn processes() -> HashMap<i32, ProcessFigures> {
    let Ok(all) = procfs::process::all_processes() else {
        return HashMap::new();
    };
    let ticks = procfs::ticks_per_second().max(1);
    let page = procfs::page_size();
    all.filter_map(|p| p.ok()?.stat().ok())
        .map(|stat| {
            let figures = ProcessFigures {
                parent: stat.ppid,
                rss: stat.rss * page,
                user_ms: stat.utime * 1000 / ticks,
                system_ms: stat.stime * 1000 / ticks,
            };
            (stat.pid, figures)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_named_as_the_reference_names_them() {
        assert_eq!(mount_name("/"), "system");
        assert_eq!(mount_name("/var/log"), "var_log");
        assert_eq!(mount_name("/tmp"), "tmp");
        assert_eq!(mount_name("/var/vcap/data"), "ephemeral");
        assert_eq!(mount_name("/var/vcap/store"), "persistent");
        assert_eq!(mount_name("/var/vcap/store/x"), "var_vcap_store_x");
        assert_eq!(mount_name("/etc/resolv.conf"), "etc_resolv_conf");
        assert_eq!(mount_name("/mnt/my disk"), "mnt_my_disk");
    }

    #[test]
    fn used_percent_counts_what_non_root_users_can_have() {
        // The reference's ephemeral disk: 18 % used, though used/total is 17.5 %.
        let disk = Disk { total: 6113067008, used: 1068199936, free: 4710739968 };
        assert_eq!(disk.used_percent(), 18);
        assert_eq!(Disk { total: 0, used: 0, free: 0 }.used_percent(), 0);
    }

    #[test]
    fn machine_figures_are_read() {
        let machine = Machine::read();
        let memory = machine.memory.as_ref().expect("meminfo");
        assert!(memory.total > 0 && memory.used <= memory.total && memory.free <= memory.total);
        assert!(!machine.cpus.as_ref().expect("stat").is_empty());
        let me = machine.process_tree(std::process::id()).expect("this test's process");
        assert!(me.count >= 1 && me.rss > 0);
    }
}
