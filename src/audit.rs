//! The audit log (`audit:`): one JSON line per authorization decision and per backend request
//! to a client that policy refused. Each shard writes its own lines to its own descriptor of
//! the file (opened once with `O_APPEND`, so lines from different shards never interleave
//! inside a line); no lock, no channel. A line holds no secret: the principal's id (never a
//! token), and a call's arguments only when `audit.arguments` says so.

use std::cell::RefCell;
use std::io::Write as _;

use serde::Serialize;

/// One record.
#[derive(Serialize)]
pub struct Record<'a> {
    /// `authz` (a decision on an item), `client_request` (a backend's request to a client),
    /// `quarantine` (a tool whose definition is not the pinned one) or `flag` (shadowing,
    /// injection).
    pub event: &'static str,
    /// `allow` or `deny`.
    pub decision: &'static str,
    pub principal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
    pub method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'a str>,
    /// The item as the client names it (tool, prompt, URI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// The rule that decided (`null`: the policy's default, or a backend's `client_requests`).
    pub rule: Option<&'a str>,
    /// How long the decision took.
    pub decision_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<&'a serde_json::value::RawValue>,
    /// Tool safety: why a tool was quarantined or flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Tool safety: the pinned definition and the one the backend lists now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<&'a serde_json::value::RawValue>,
}

impl<'a> Record<'a> {
    /// A record of `event` about `backend`'s part in `method`, decided `allow`, with nothing
    /// else known yet (fill in the rest with `..`).
    pub fn new(
        event: &'static str,
        allow: bool,
        principal: &'a str,
        method: &'a str,
        backend: &'a str,
    ) -> Record<'a> {
        Record {
            event,
            decision: if allow { "allow" } else { "deny" },
            principal,
            session: None,
            method,
            backend: Some(backend),
            name: None,
            rule: None,
            decision_us: 0,
            arguments: None,
            reason: None,
            old: None,
            new: None,
        }
    }
}

/// A shard's audit writer.
pub struct Audit {
    out: RefCell<std::fs::File>,
    line: RefCell<Vec<u8>>,
    pub allowed: bool,
    pub arguments: bool,
}

/// Opens the audit log once for the whole gateway (the shards get duplicates): appended to,
/// created if missing; `None` in the config is standard output.
pub fn open(cfg: &ringmux_core::config::Audit) -> std::io::Result<std::fs::File> {
    open_path(cfg.path.as_deref())
}

/// Opens a log file to append to (created if missing), or a duplicate of standard output.
pub fn open_path(path: Option<&std::path::Path>) -> std::io::Result<std::fs::File> {
    match path {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p),
        None => {
            use std::os::fd::AsFd as _;
            Ok(std::io::stdout().as_fd().try_clone_to_owned()?.into())
        }
    }
}

impl Audit {
    pub fn new(out: std::fs::File, cfg: &ringmux_core::config::Audit) -> Audit {
        Audit {
            out: RefCell::new(out),
            line: RefCell::new(Vec::with_capacity(512)),
            allowed: cfg.allowed,
            arguments: cfg.arguments,
        }
    }

    /// Whether a decision (`allow`) is to be recorded.
    pub fn wants(&self, allow: bool) -> bool {
        !allow || self.allowed
    }

    /// Writes one record as one line (one `write` of the whole line).
    pub fn record(&self, rec: &Record<'_>) {
        let mut line = self.line.borrow_mut();
        line.clear();
        line.extend_from_slice(b"{\"time\":\"");
        write_rfc3339(&mut line, std::time::SystemTime::now());
        line.extend_from_slice(b"\",");
        // The record's own members follow the time (its `{` dropped).
        let start = line.len();
        if serde_json::to_writer(&mut *line, rec).is_err() {
            return;
        }
        line.remove(start);
        line.push(b'\n');
        if let Err(e) = self.out.borrow_mut().write_all(&line) {
            tracing::warn!("audit log write failed: {e}");
        }
    }
}

/// `2026-12-04T16:38:28.123Z`.
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, t: std::time::SystemTime) {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc() {
        let mut out = Vec::new();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_402_308_123);
        super::write_rfc3339(&mut out, t);
        assert_eq!(String::from_utf8(out).unwrap(), "2026-12-04T16:38:28.123Z");
        let mut out = Vec::new();
        super::write_rfc3339(
            &mut out,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400),
        );
        assert_eq!(String::from_utf8(out).unwrap(), "2000-02-29T00:00:00.000Z");
    }
}
