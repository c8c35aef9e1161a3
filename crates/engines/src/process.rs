//! Starting engine programs: as the instance's own user when svcdash runs as root,
//! with a cleared environment, in their own process group, with stderr kept for
//! error messages.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The search path engine programs (and the account tools) get: system folders only.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The account an engine's programs run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
}

/// A command for an engine program, run as `run_as` in a process group of its own
/// (so a Ctrl-C meant for svcdash does not reach the engines before svcdash stops them).
/// Its environment holds only what engines need: nothing of svcdash's (its
/// configuration may come from `SVCDASH_*` variables holding secrets) reaches them.
pub fn command(program: &Path, run_as: Option<RunAs>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("PATH", SAFE_PATH).env("LANG", "C.UTF-8").current_dir("/");
    cmd.process_group(0).stdin(Stdio::null());
    if let Some(run_as) = run_as {
        cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
    }
    cmd
}

/// Runs a command to completion; on failure, the error carries the end of its output.
pub async fn run(mut cmd: Command, what: &str) -> anyhow::Result<String> {
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("starting {what}"))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        bail!("{what} failed ({}): {}", output.status, tail(&text));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What `program ARG` prints (its version, say), run as svcdash with a cleared
/// environment.
pub async fn version_output(program: &Path, arg: &str) -> anyhow::Result<String> {
    let mut cmd = command(program, None);
    cmd.arg(arg);
    run(cmd, &format!("{} {arg}", program.display())).await
}

/// Starts `cmd` with its stdout piped out; returns that stream and a future saying
/// whether the program succeeded (its stderr's end in the error).
pub fn stream_stdout(
    mut cmd: Command,
    what: &'static str,
) -> anyhow::Result<(ChildStdout, BoxFuture<'static, anyhow::Result<()>>)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    widen_pipe(&stdout);
    let stderr = collect_tail(child.stderr.take().context("no stderr")?);
    Ok((stdout, finish(child, stderr, what).boxed()))
}

/// Makes a pipe to or from a streaming program hold 1 MiB instead of 64 KiB: each
/// side then waits for the other 16 times less often, which on two cores halves the
/// time a restore spends feeding its loader. Best effort: a smaller pipe still works.
pub fn widen_pipe(pipe: &impl std::os::fd::AsFd) {
    if let Err(e) = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20)) {
        tracing::debug!(error = %e, "could not enlarge a pipe");
    }
}

/// Keeps the last few KiB a child writes to a pipe (its stderr), for error messages.
pub fn collect_tail(pipe: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut pipe = pipe;
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 8192 {
                kept.drain(..kept.len() - 4096);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Waits for a streaming child (a dump or a load) and turns a failure into an error
/// that says what the program printed.
pub async fn finish(mut child: Child, stderr: JoinHandle<String>, what: &str) -> anyhow::Result<()> {
    let status = child.wait().await.with_context(|| format!("waiting for {what}"))?;
    let text = stderr.await.unwrap_or_default();
    if !status.success() {
        bail!("{what} failed ({status}): {}", tail(&text));
    }
    Ok(())
}

/// The last lines of a program's output, trimmed, for an error message.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() { "no output".to_owned() } else { joined }
}

pub fn signal(pid: u32, signal: Signal) -> bool {
    i32::try_from(pid).is_ok_and(|pid| kill(Pid::from_raw(pid), signal).is_ok())
}

/// SIGKILL to a process group led by `pid` (engines are started as group leaders).
pub fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The process group of a process, from `/proc/PID/stat` (after the name, which
/// may hold anything but ends at the last `)`).
pub fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// The parent of a process, from `/proc/PID/stat`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The process groups a process may have been started in: its own, and its
/// parent's (PostgreSQL's backends call `setsid` and lead groups of their own).
pub fn groups_of(pid: u32) -> [Option<u32>; 2] {
    [group_of(pid), parent_of(pid).and_then(group_of)]
}

pub fn is_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|pid| kill(Pid::from_raw(pid), None).is_ok())
}
