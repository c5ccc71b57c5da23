//! Hardening: what a hostile client, a hostile backend, a curious child process and an
//! operator's signal do to the real binary. Each test names the defect it guards against.

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::*;

const WAIT: Duration = Duration::from_secs(10);

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Descriptor numbers of `pid` with what each points to.
fn fd_links(pid: u32) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((n, target.display().to_string()))
        })
        .collect();
    out.sort();
    out
}

const O_CLOEXEC: u32 = 0o2000000;

/// The open flags of descriptor `fd` of `pid` (close-on-exec when gone: nothing to inherit).
fn fd_flags(pid: u32, fd: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|info| {
            let f = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            u32::from_str_radix(f.trim(), 8).ok()
        })
        .unwrap_or(O_CLOEXEC)
}

/// A stdio child must not inherit the gateway's client sockets (it could write forged
/// responses to other clients, or keep a closed connection from ending), and every
/// descriptor the gateway holds is close-on-exec.
#[test]
fn stdio_children_get_only_stdin_stdout_stderr() {
    let h = mock("h").start();
    let gw = gateway().backend("h", &h.url).stdio_mock("s", "").start();
    // Client connections open while the child is spawned.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addr_of(&gw.url)).unwrap())
        .collect();
    let mut c = client(&gw.url);
    let mut child = None;
    assert!(
        eventually(WAIT, || {
            child = children_of(gw.pid()).first().copied();
            child.is_some()
        }),
        "no stdio child"
    );
    // What the child holds besides stdin, stdout and stderr is its own (the mock's runtime:
    // anon inodes); a socket or pipe there came from the gateway.
    let inherited: Vec<_> = fd_links(child.unwrap())
        .into_iter()
        .filter(|(fd, target)| {
            *fd > 2 && (target.starts_with("socket:") || target.starts_with("pipe:"))
        })
        .collect();
    assert!(
        inherited.is_empty(),
        "the stdio child inherited the gateway's descriptors: {inherited:?}"
    );
    // The session works through the child.
    let tools = c.list_all("tools/list", "tools").unwrap();
    assert!(tools.iter().any(|t| t["name"] == "s__echo"), "{tools:?}");

    // Every socket, pipe and anon inode of the gateway is close-on-exec, except what it
    // inherited from this test (cargo's jobserver pipe, say), which is not its doing.
    let ours: BTreeSet<String> = fd_links(std::process::id())
        .into_iter()
        .filter(|(fd, _)| fd_flags(std::process::id(), *fd) & O_CLOEXEC == 0)
        .map(|(_, target)| target)
        .collect();
    for s in &mut idle {
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .unwrap();
    }
    for s in &mut idle {
        let mut b = [0u8; 64];
        let _ = s.read(&mut b).unwrap();
    }
    for (fd, target) in fd_links(gw.pid()) {
        if fd <= 2 || ours.contains(&target) {
            continue;
        }
        let flags = fd_flags(gw.pid(), fd);
        assert!(
            flags & O_CLOEXEC != 0,
            "gateway fd {fd} ({target}) is not close-on-exec (flags {flags:o})"
        );
    }
}
