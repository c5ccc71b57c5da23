//! Waiting for an intended send time, to the microsecond.
//!
//! monoio's timer wheel has millisecond ticks, so `monoio::time::sleep` wakes up to a tick
//! late: at 1,000 req/s an open loop measured 0.6-1 ms of its own lateness into every request.
//! A [`Pacer`] instead arms a `timerfd` (an hrtimer, nanosecond resolution) at the intended
//! time and waits for it to become readable through the runtime's driver (an io_uring
//! `POLL_ADD`, or epoll): the runtime goes on serving the other connections meanwhile. The
//! thread's timer slack is set to 1 ns ([`precise_thread`]) so that the
//! kernel does not defer the wake-up to batch it with others.
//!
//! Waking from a sleep is not instant, though: on the 2-core VM a thread asleep for 0.1-5 ms
//! wakes 40-105 µs late (p50; the hypervisor's), whatever the timer. So the pacer sleeps until
//! `spin` (`--spin-us`, default 200 µs) before the send time and then polls the clock, yielding
//! to the runtime's other tasks between looks (the runtime reaps their I/O completions
//! meanwhile, so the other connections are not held up). The cost is up to `spin` of CPU per
//! request: 20% of a core at 1,000 req/s per thread; `--spin-us 0` sleeps only. The window is
//! cut so that polling takes at most a quarter of a thread's time at its share of the rate
//! (`load::spin_for`): a thread that busy is woken by its connections' I/O anyway, and a
//! load generator that took whole cores would take them from the target it measures.
//!
//! Measured (release build, `ringmux-load URL -c 1 -R RATE -d 3 --spin-us N` against
//! `ringmux mock`, 2-core VM): the generator's own lateness (send time minus intended time)
//!
//! | N (µs) | 200 req/s p50 / p99 | 1,000 req/s | 5,000 req/s |
//! |---|---|---|---|
//! | before (monoio's ms sleep) | ~0.5-1 ms | ~0.5-1 ms | ~0.5-1 ms |
//! | 0 (timerfd only) | 109 / 320 µs | 53 / 122 µs | 43 / 85 µs |
//! | 50 | 36 / 155 µs | 1 / 40 µs | 1 / 42 µs |
//! | 200 (default) | 1 / 1 µs (once 963 µs) | 1 / 6 µs | 1 / 1 µs |
//! | 400 | 1 / 1 µs | 1 / 1 µs | 1 / 23 µs |
//!
//! A timerfd `read` through io_uring instead of the readiness wait measured the same (the
//! read is punted to an io-wq thread): the wake-up, not the mechanism, is the cost. Spinning
//! without yielding would stall the runtime's other connections.

use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

/// Waits for instants: a timer for the coarse part, then polling for the last `spin`.
pub struct Pacer {
    timer: Option<Timer>,
    spin: Duration,
}

struct Timer {
    /// The timerfd, seen by monoio as a socket so that its driver can wait for it to be
    /// readable (monoio exposes readiness waits on its socket types only; nothing but
    /// readiness and close is ever done through it).
    fd: monoio::net::udp::UdpSocket,
}

impl Pacer {
    /// A pacer for the current runtime (a timerfd; monoio's sleep if none can be made) that
    /// polls the clock for the last `spin` before each instant.
    pub fn new(spin: Duration) -> Pacer {
        Pacer {
            timer: Timer::new(),
            spin,
        }
    }

    /// Returns at `at` (at once if it has passed).
    pub async fn until(&mut self, at: Instant) {
        let Some(wake) = at.checked_sub(self.spin) else {
            return;
        };
        let left = wake.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            let timed = match &self.timer {
                Some(t) => t.arm(left) && t.expired().await,
                None => false,
            };
            if !timed {
                monoio::time::sleep(wake.saturating_duration_since(Instant::now())).await;
            }
        }
        // The last stretch: the other tasks run (and the driver reaps their completions)
        // between two looks at the clock.
        while Instant::now() < at {
            YieldNow(false).await;
        }
    }
}

/// Sleeps for `d` with a [`Pacer`] of its own (the mock's configured latency: precise, so
/// that tests can hold the load generator against a server whose latency is known).
pub async fn sleep(d: Duration, spin: Duration) {
    Pacer::new(spin).until(Instant::now() + d).await;
}

/// Pending once (waking itself at once), then ready: lets the runtime run its other tasks.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl Timer {
    fn new() -> Option<Timer> {
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just created and is owned by nobody else; the UdpSocket type is
        // only a carrier for monoio (see the field's comment): no socket call is made on it.
        let std = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
        monoio::net::udp::UdpSocket::from_std(std)
            .ok()
            .map(|fd| Timer { fd })
    }

    /// Arms the timer to fire `after` from now (relative: `Instant` and CLOCK_MONOTONIC are the
    /// same clock on Linux, but std does not expose the conversion).
    fn arm(&self, after: Duration) -> bool {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                // Zero would disarm it.
                tv_nsec: (after.subsec_nanos().max(1)) as libc::c_long,
            },
        };
        // SAFETY: the descriptor is the timerfd this timer owns; `spec` outlives the call.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) == 0 }
    }

    /// Waits until the armed timer fires, and consumes the expiry.
    async fn expired(&self) -> bool {
        loop {
            if self.fd.readable(false).await.is_err() {
                return false;
            }
            let mut count = [0u8; 8];
            // SAFETY: reads 8 bytes into `count` from the timerfd (non-blocking).
            let n = unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
            if n == 8 {
                return true;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                return false;
            }
        }
    }
}

/// Sets this thread's timer slack to 1 ns, so that the kernel wakes it when asked rather than
/// up to 50 µs later (the default slack) to batch wake-ups.
pub fn precise_thread() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}
