//! glibc's malloc settings for `svcdash serve`. glibc reads them only when a
//! process starts, and the workspace forbids the `unsafe` of `mallopt`, so
//! `serve` starts itself again (`exec`: same process id) with them in its
//! environment. Engines are started with a cleared environment, so the settings
//! do not reach them.
//!
//! The Rust code allocates through mimalloc, but C code in the process (zstd's
//! compression workers, SQLite) calls the C library's malloc. With glibc's
//! defaults each backup's new compression threads get arenas of their own, and
//! freed buffers of several MiB raise the mmap threshold, so what a backup freed
//! stays in the arenas. `BENCH_SERIES=12 BENCH_MB=300 bench/backup-restore.sh`:
//! with the defaults the server's size after each backup rose 109 → 228 MiB and
//! after each restore 69 → 185 MiB; with two arenas and a fixed 128 KiB threshold
//! it stayed level: 90–115 MiB after each backup, 67–71 MiB after each restore.

/// Two arenas (the main one and one for every other thread) and a fixed mmap
/// threshold: blocks of 128 KiB and more are mapped and unmapped on their own.
const TUNABLES: &str = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072";

/// Starts this program again with [`TUNABLES`], unless glibc's malloc settings are
/// in the environment already (after the restart, or set by the operator). Returns
/// only if it could not; svcdash then goes on with glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn restart_with_tunables() {
    use std::os::unix::process::CommandExt;

    let existing = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if existing.contains("glibc.malloc.") {
        return;
    }
    let Ok(program) = std::env::current_exe() else { return };
    let tunables = if existing.is_empty() { TUNABLES.to_owned() } else { format!("{existing}:{TUNABLES}") };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(program);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let error = command.args(args).env("GLIBC_TUNABLES", tunables).exec();
    eprintln!("warning: could not restart with glibc's malloc settings ({error}); going on without them");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn restart_with_tunables() {}
