//! One operating-system account per instance when svcdash runs as root, so that
//! engines of different tenants cannot read each other's files, signal each other's
//! processes, or read svcdash's own. Accounts are made and removed with the system's
//! `useradd` and `userdel`: PostgreSQL refuses a uid without a passwd entry, and the
//! tools take the password file's lock, which other programs on the host respect.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};

use crate::process::RunAs;

/// One `useradd`/`userdel` at a time from this process; other processes are waited
/// out by retrying while the password file is locked.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// The account named `name`, made first if it does not exist. Blocking.
pub fn ensure(name: &str, comment: &str) -> anyhow::Result<RunAs> {
    check_name(name)?;
    let _one = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(user) = lookup(name)? {
        return Ok(RunAs { uid: user.uid, gid: user.gid });
    }
    let comment: String = comment.chars().filter(|c| c.is_ascii_alphanumeric() || " -_.".contains(*c)).collect();
    retry(&format!("creating the account {name}"), || {
        let mut cmd = Command::new("useradd");
        cmd.args(["--system", "--user-group", "--no-create-home", "--no-log-init"])
            .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", &comment])
            .arg(name);
        cmd
    })
    .or_else(|e| {
        // Another process may have made it meanwhile.
        if lookup(name).ok().flatten().is_some() { Ok(()) } else { Err(e) }
    })?;
    let user = lookup(name)?.with_context(|| format!("the account {name} is missing right after useradd made it"))?;
    tracing::info!(account = name, uid = user.uid.as_raw(), "made an account for an instance");
    Ok(RunAs { uid: user.uid, gid: user.gid })
}

/// Removes the account and its group after killing any process still running under
/// it: a uid freed with processes left would pass them to the next account that
/// gets the number. Blocking; nothing to do when the account does not exist.
pub fn remove(name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    let _one = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(user) = lookup(name)? else { return Ok(()) };
    kill_processes_of(user.uid);
    retry(&format!("removing the account {name}"), || {
        let mut cmd = Command::new("userdel");
        cmd.arg(name);
        cmd
    })?;
    // `userdel` removes the user's own group where USERGROUPS_ENAB is on (Debian's default).
    if nix::unistd::Group::from_name(name).ok().flatten().is_some() {
        retry(&format!("removing the group {name}"), || {
            let mut cmd = Command::new("groupdel");
            cmd.arg(name);
            cmd
        })?;
    }
    tracing::info!(account = name, "removed an instance's account");
    Ok(())
}

/// The account named `name`, if it exists. Blocking.
pub fn find(name: &str) -> anyhow::Result<Option<RunAs>> {
    check_name(name)?;
    Ok(lookup(name)?.map(|user| RunAs { uid: user.uid, gid: user.gid }))
}

/// Whether an account of this name exists.
pub fn exists(name: &str) -> bool {
    lookup(name).ok().flatten().is_some()
}

fn lookup(name: &str) -> anyhow::Result<Option<User>> {
    User::from_name(name).with_context(|| format!("looking up the account {name}"))
}

/// Account names are made by svcdash (never taken from a request), but they reach a
/// command line: lower-case letters, digits and `-`, starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (2..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("{name:?} is not an account name svcdash makes");
    }
    Ok(())
}

/// Runs the command until it succeeds; the password file may be locked by another
/// process for a moment.
fn retry(what: &str, command: impl Fn() -> Command) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        let output = command().env_clear().env("PATH", crate::process::SAFE_PATH).output();
        let output = output.with_context(|| format!("{what}: starting the command"))?;
        if output.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{what} failed ({}): {text}", output.status);
        }
        tracing::debug!(status = %output.status, error = %text, "{what}: trying again");
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}

/// SIGKILL to every process whose real or effective uid is `uid`, until none is left
/// (or a few seconds passed).
pub(crate) fn kill_processes_of(uid: Uid) {
    if uid.is_root() {
        return;
    }
    let started = Instant::now();
    loop {
        let pids = pids_of(uid);
        if pids.is_empty() || started.elapsed() > Duration::from_secs(5) {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The processes running as `uid` whose name (`/proc/PID/comm`) is one of `names`.
pub(crate) fn processes_of(uid: u32, names: &[&str]) -> Vec<u32> {
    pids_of(Uid::from_raw(uid))
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| names.contains(&comm.trim_end()))
        })
        .filter(|pid| !is_zombie(*pid))
        .filter_map(|pid| u32::try_from(pid).ok())
        .collect()
}

/// Whether a process has exited and waits for its parent to reap it (a killed
/// node's process whose parent is gone, on a host whose init does not reap): it
/// holds no memory and belongs to no node any more.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').and_then(|end| stat[end + 1..].split_whitespace().next().map(|s| s == "Z")))
        .unwrap_or(false)
}

fn pids_of(uid: Uid) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_uids(*pid).is_some_and(|(real, effective)| real == uid || effective == uid))
        .collect()
}

/// The real and effective uid of a process, from `/proc/PID/status`.
pub(crate) fn process_uids(pid: i32) -> Option<(Uid, Uid)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_whitespace().map(|n| n.parse::<u32>().ok());
    Some((Uid::from_raw(ids.next()??), Uid::from_raw(ids.next()??)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_names_svcdash_makes_are_accepted() {
        for good in ["sd-k3j9x2m1qp", "ab"] {
            assert!(super::check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "-x", "1abc", "Sd-x", "sd x", "sd/x", "../x", "sd\nx", &"a".repeat(33)] {
            assert!(super::check_name(bad).is_err(), "{bad:?}");
        }
    }
}
