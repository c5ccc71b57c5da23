//! A stdio backend's child process: spawned with only stdin, stdout and stderr (socket pairs;
//! every other descriptor close-on-exec), its own process group and `PR_SET_PDEATHSIG`; its
//! stdin fed by a writer task, its stdout split into lines, its stderr logged; stopped by
//! closing stdin, then SIGTERM, then SIGKILL, and always reaped.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_util::future::AbortHandle;
use futures_util::StreamExt;
use monoio::io::AsyncWriteRentExt;
use monoio::net::UnixStream;

use crate::io::{consume, read_more};

use super::stdio::MAX_LINE;

/// Longest stderr line logged (the rest is cut).
pub(super) const MAX_LOG_LINE: usize = 4096;

pub(super) const READ_CHUNK: usize = 16 << 10;

/// After stdin is closed, the child has this long to exit before SIGTERM…
pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);

/// …and then this long before SIGKILL.
pub(super) const TERM_GRACE: Duration = Duration::from_secs(1);

/// A running child and the way to its stdin.
pub(super) struct Running {
    /// The process (`None`: a legacy SSE connection).
    pub(super) proc: Option<Child>,
    pub(super) stdin: mpsc::UnboundedSender<Vec<u8>>,
    pub(super) stdout: mpsc::UnboundedReceiver<Vec<u8>>,
    pub(super) started: Instant,
    /// Tasks to abort when it stops (a legacy SSE connection's reader and writer).
    pub(super) tasks: Vec<AbortHandle>,
}

/// Spawns the child with socket pairs for stdin, stdout and stderr, and the tasks that
/// write, read and log them.
pub(super) fn spawn(name: &str, spec: &ringmux_core::config::StdioCommand) -> io::Result<Running> {
    let (stdin_ours, stdin_theirs) = StdUnixStream::pair()?;
    let (stdout_ours, stdout_theirs) = StdUnixStream::pair()?;
    let (stderr_ours, stderr_theirs) = StdUnixStream::pair()?;
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(OwnedFd::from(stdin_theirs)))
        .stdout(Stdio::from(OwnedFd::from(stdout_theirs)))
        .stderr(Stdio::from(OwnedFd::from(stderr_theirs)));
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: prctl, setpgid, close_range, getrlimit and fcntl are async-signal-safe, and
    // nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // A process group of its own: a Ctrl-C at ringmux's terminal reaches ringmux,
            // which stops the child when it is done with it, not the child directly.
            libc::setpgid(0, 0);
            close_inherited_on_exec();
            Ok(())
        });
    }
    let proc = cmd.spawn()?;
    // The child's ends are closed here with `cmd`: only the child holds them now.
    drop(cmd);
    for s in [&stdin_ours, &stdout_ours, &stderr_ours] {
        s.set_nonblocking(true)?;
    }
    let stdin = UnixStream::from_std(stdin_ours)?;
    let stdout = UnixStream::from_std(stdout_ours)?;
    let stderr = UnixStream::from_std(stderr_ours)?;
    let (stdin_tx, stdin_rx) = mpsc::unbounded();
    let (stdout_tx, stdout_rx) = mpsc::unbounded();
    monoio::spawn(write_lines(stdin, stdin_rx));
    monoio::spawn(read_lines(stdout, stdout_tx, name.to_owned()));
    monoio::spawn(log_lines(stderr, name.to_owned(), proc.id()));
    Ok(Running {
        proc: Some(proc),
        stdin: stdin_tx,
        stdout: stdout_rx,
        started: Instant::now(),
        tasks: Vec::new(),
    })
}

/// Writes each message as one line (JSON allows raw newlines only between tokens, where a
/// space means the same).
pub(super) async fn write_lines(mut sock: UnixStream, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(mut msg) = rx.next().await {
        for b in msg.iter_mut() {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        msg.push(b'\n');
        let (res, _) = sock.write_all(msg).await;
        if res.is_err() {
            break;
        }
    }
}

/// Calls `each` with every complete line read from `sock` (without its line ending); a line
/// longer than `max` is cut there and the rest of it skipped.
pub(super) async fn for_each_line(
    mut sock: UnixStream,
    max: usize,
    mut each: impl FnMut(&[u8]) -> bool,
) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut skipping = false;
    loop {
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + nl];
            start += nl + 1;
            if std::mem::take(&mut skipping) {
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() && !each(line) {
                return;
            }
        }
        consume(&mut buf, start);
        if buf.len() < READ_CHUNK {
            // Between lines: give back what a long one grew the buffer to.
            crate::io::trim(&mut buf, READ_CHUNK);
        }
        if buf.len() > max {
            if !skipping {
                each(&buf[..max]);
            }
            buf.clear();
            skipping = true;
        }
        let (res, b) = read_more(&mut sock, buf, READ_CHUNK).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
}

pub(super) async fn read_lines(sock: UnixStream, tx: mpsc::UnboundedSender<Vec<u8>>, name: String) {
    for_each_line(sock, MAX_LINE, |line| {
        if line.len() >= MAX_LINE {
            tracing::warn!(backend = %name, "stdout line longer than {MAX_LINE} bytes; dropped");
            return true;
        }
        tx.unbounded_send(line.to_vec()).is_ok()
    })
    .await;
}

pub(super) async fn log_lines(sock: UnixStream, name: String, pid: u32) {
    for_each_line(sock, MAX_LOG_LINE, |line| {
        tracing::info!(backend = %name, pid, "stderr: {}", String::from_utf8_lossy(line));
        true
    })
    .await;
}

/// Stops a child: close its stdin, wait, SIGTERM, wait, SIGKILL; always reaps it. Returns
/// its exit status when it could be read.
pub(super) async fn stop(name: &str, child: Running) -> Option<ExitStatus> {
    let Running {
        proc,
        stdin,
        stdout,
        tasks,
        ..
    } = child;
    drop(stdin);
    drop(stdout);
    for t in tasks {
        t.abort();
    }
    let mut proc = proc?;
    let pid = proc.id();
    if let Some(s) = wait_for(&mut proc, STOP_GRACE).await {
        return Some(s);
    }
    // SAFETY: kill(2) on our own unreaped child: the pid cannot have been reused.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    if let Some(s) = wait_for(&mut proc, TERM_GRACE).await {
        tracing::warn!(backend = name, pid, "stdio backend needed SIGTERM to stop");
        return Some(s);
    }
    let _ = proc.kill();
    tracing::warn!(backend = name, pid, "stdio backend needed SIGKILL to stop");
    let s = wait_for(&mut proc, Duration::from_secs(5)).await;
    if s.is_none() {
        tracing::error!(
            backend = name,
            pid,
            "stdio backend did not die after SIGKILL; not reaped"
        );
    }
    s
}

/// Polls for the child's exit for up to `limit`.
pub(super) async fn wait_for(proc: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        match proc.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= until {
            return None;
        }
        monoio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// In a forked child: marks every descriptor above stderr close-on-exec, so the program gets
/// its stdin, stdout and stderr and nothing else. ringmux opens every descriptor close-on-exec
/// (`conn::serve` marks accepted sockets, which monoio's io_uring accept leaves inheritable),
/// but another shard may accept between its accept and that mark; this closes the window.
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11) rather than closing outright: std's own
/// exec-error pipe must stay open until exec. Older kernels get one fcntl per descriptor.
///
/// # Safety
/// Only between fork and exec (async-signal-safe calls only).
unsafe fn close_inherited_on_exec() {
    if libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    ) == 0
    {
        return;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
        lim.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1 << 16
    };
    for fd in 3..top {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}
