//! A legacy HTTP+SSE (2024-11-05) backend driven like a stdio child: the SSE stream stands for
//! stdout, the POSTs to the endpoint its first event names for stdin.

use std::time::Instant;

use futures_channel::mpsc;
use futures_util::StreamExt;
use ringmux_core::config::Backend;

use crate::backend::upstream::{Body, Pool, Status};

use super::process::Running;

/// The protocol version a legacy HTTP+SSE server speaks.
pub(super) const LEGACY_VERSION: &str = "2024-11-05";

/// Connects to a legacy HTTP+SSE (2024-11-05) server: `GET` its SSE endpoint, wait for the
/// `endpoint` event, then POST every message there; `message` events are its messages. The
/// actor sees the same two channels as with a process.
pub(super) async fn connect_sse(backend: &Backend) -> Result<Running, String> {
    let stream_pool = Pool::new(u16::MAX, backend.clone(), None, None);
    let resp = stream_pool
        .open_stream(None, LEGACY_VERSION, None)
        .await
        .map_err(|e| format!("GET {}: {e}", backend.url))?;
    let mut events = match resp.body {
        Body::Events(e) if resp.status == Status::Ok => e,
        _ => {
            return Err(format!(
                "GET {} answered {} without an event stream",
                backend.url, resp.status
            ))
        }
    };
    let endpoint = loop {
        match events.next().await {
            Ok(Some(ev)) if ev.event.as_deref() == Some("endpoint") => {
                break String::from_utf8(ev.data).map_err(|_| "endpoint is not UTF-8")?;
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err("the SSE stream ended before its endpoint event".into()),
            Err(e) => return Err(format!("no endpoint event: {e}")),
        }
    };
    events.wait_forever();
    let mut post = backend.clone();
    post.path = endpoint_path(backend, endpoint.trim())?;
    post.legacy_sse = false;
    post.era = ringmux_core::config::Era::Stateful;
    let post_pool = Pool::new(u16::MAX, post, None, None);
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded::<Vec<u8>>();
    let (stdout_tx, stdout_rx) = mpsc::unbounded();
    let (reader, read_handle) = futures_util::future::abortable(async move {
        while let Ok(Some(ev)) = events.next().await {
            let is_message = ev.event.as_deref().is_none_or(|e| e == "message");
            if is_message && !ev.data.is_empty() && stdout_tx.unbounded_send(ev.data).is_err() {
                break;
            }
        }
    });
    let name = backend.name.clone();
    let (writer, write_handle) = futures_util::future::abortable(async move {
        // In order, one at a time: a legacy server answers each POST with 202 at once.
        while let Some(msg) = stdin_rx.next().await {
            match post_pool
                .post(None, LEGACY_VERSION, &msg, Instant::now(), None)
                .await
            {
                Ok(resp) => {
                    let status = resp.status;
                    let _ = crate::backend::upstream::final_message(resp.body).await;
                    if !matches!(status, Status::Ok | Status::Accepted) {
                        tracing::warn!(backend = %name, %status, "legacy SSE backend refused a message");
                    }
                }
                Err(e) => tracing::warn!(backend = %name, "message not delivered: {e}"),
            }
        }
    });
    monoio::spawn(reader);
    monoio::spawn(writer);
    Ok(Running {
        proc: None,
        stdin: stdin_tx,
        stdout: stdout_rx,
        started: Instant::now(),
        tasks: vec![read_handle, write_handle],
    })
}

/// The path to POST to, from a legacy server's `endpoint` event: an absolute path, a path
/// relative to the SSE endpoint, or a URL on the same origin.
pub(super) fn endpoint_path(backend: &Backend, endpoint: &str) -> Result<String, String> {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        let url = ringmux_core::config::parse_http_url(endpoint)?;
        if url.authority != backend.authority {
            return Err(format!("endpoint {endpoint} is on another origin"));
        }
        return Ok(url.path);
    }
    if endpoint.is_empty() || endpoint.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("malformed endpoint {endpoint:?}"));
    }
    if endpoint.starts_with('/') {
        return Ok(endpoint.to_owned());
    }
    let base = backend.path.rsplit_once('/').map_or("", |(dir, _)| dir);
    Ok(format!("{base}/{endpoint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_endpoints_resolve_on_the_same_origin() {
        let cfg = ringmux_core::config::load(
            "listen: 127.0.0.1:0\nbackends:\n  - name: l\n    url: http://127.0.0.1:9/api/sse\n    transport: sse\n",
            1,
        )
        .unwrap();
        let b = &cfg.backends[0];
        assert_eq!(
            endpoint_path(b, "/messages?sessionId=1").unwrap(),
            "/messages?sessionId=1"
        );
        assert_eq!(endpoint_path(b, "message?s=2").unwrap(), "/api/message?s=2");
        assert_eq!(
            endpoint_path(b, "http://127.0.0.1:9/m?s=3").unwrap(),
            "/m?s=3"
        );
        assert!(endpoint_path(b, "http://evil.example:9/m").is_err());
        assert!(endpoint_path(b, "/a b").is_err());
    }
}
