//! Allocator settings for `svcdash serve`. glibc and mimalloc read theirs from the
//! environment only when a process starts, and the workspace forbids the `unsafe`
//! of `mallopt` and `mi_option_set`, so `serve` starts itself again (`exec`: same
//! process id) with them in its environment. Engines are started with a cleared
//! environment, so the settings do not reach them.
//!
//! The Rust code allocates through mimalloc, but C code in the process (zstd's
//! compression workers, SQLite) calls the C library's malloc. With glibc's
//! defaults each backup's new compression threads get arenas of their own, and
//! freed buffers of several MiB raise the mmap threshold, so what a backup freed
//! stays in the arenas. `BENCH_SERIES=12 BENCH_MB=300 bench/backup-restore.sh`:
//! with the defaults the server's size after each backup rose 109 → 228 MiB and
//! after each restore 69 → 185 MiB; with two arenas and a fixed 128 KiB threshold
//! it stayed level: 90–115 MiB after each backup, 67–71 MiB after each restore.
//!
//! mimalloc gives freed pages back to the system only after a delay (10 ms), and
//! only when the thread that owns them next calls into it: a backup's buffers,
//! freed by other threads or by threads that then sit idle, stayed resident. With
//! no delay they go back as they are freed. `BENCH_SERIES=3 BENCH_GIB=1`: the
//! peak during backups 95, 113, 112 MiB and 68–92 MiB after each with the
//! default; 80, 85, 82 MiB and 47–48 MiB after each with no delay. Fresh memory
//! then costs page faults every time, so the backup pipeline's stages reuse their
//! buffers (`Pool` in the `backup` crate's `pipeline`).

/// Two arenas (the main one and one for every other thread) and a fixed mmap
/// threshold: blocks of 128 KiB and more are mapped and unmapped on their own.
const GLIBC_TUNABLES: &str = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072";

/// mimalloc's delay in milliseconds before freed memory goes back to the system.
const MIMALLOC_PURGE_DELAY: &str = "0";

/// The variables to set for the restart: each unless the environment already
/// has it (after the restart, or set by the operator: theirs wins).
fn missing(glibc_tunables: Option<&str>, purge_delay_set: bool) -> Vec<(&'static str, String)> {
    let mut settings = Vec::new();
    let existing = glibc_tunables.unwrap_or_default();
    if !existing.contains("glibc.malloc.") {
        let tunables =
            if existing.is_empty() { GLIBC_TUNABLES.to_owned() } else { format!("{existing}:{GLIBC_TUNABLES}") };
        settings.push(("GLIBC_TUNABLES", tunables));
    }
    if !purge_delay_set {
        settings.push(("MIMALLOC_PURGE_DELAY", MIMALLOC_PURGE_DELAY.to_owned()));
    }
    settings
}

/// Starts this program again with the settings [`missing`] from the environment,
/// if any are. Returns only if there are none, or it could not restart; svcdash
/// then goes on with the allocators' defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn restart_with_tunables() {
    use std::os::unix::process::CommandExt;

    let glibc_tunables = std::env::var("GLIBC_TUNABLES").ok();
    let settings = missing(glibc_tunables.as_deref(), std::env::var_os("MIMALLOC_PURGE_DELAY").is_some());
    if settings.is_empty() {
        return;
    }
    let Ok(program) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(program);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let error = command.args(args).envs(settings).exec();
    eprintln!("warning: could not restart with the allocators' settings ({error}); going on without them");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn restart_with_tunables() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_settings_are_added_to_a_bare_environment() {
        assert_eq!(
            missing(None, false),
            vec![("GLIBC_TUNABLES", GLIBC_TUNABLES.to_owned()), ("MIMALLOC_PURGE_DELAY", "0".to_owned())]
        );
    }

    #[test]
    fn the_operators_settings_win_and_others_of_theirs_are_kept() {
        assert_eq!(missing(Some("glibc.malloc.arena_max=4"), true), vec![]);
        assert_eq!(
            missing(Some("glibc.pthread.rseq=0"), true),
            vec![("GLIBC_TUNABLES", format!("glibc.pthread.rseq=0:{GLIBC_TUNABLES}"))]
        );
        assert_eq!(missing(Some(GLIBC_TUNABLES), false), vec![("MIMALLOC_PURGE_DELAY", "0".to_owned())]);
    }
}
