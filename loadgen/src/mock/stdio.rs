//! The stdio transport (`ringmux mock --stdio`): one client speaks newline-delimited JSON-RPC
//! on stdin and reads the answers, notifications and server→client requests as lines on
//! stdout. The handlers are the HTTP mode's; only the framing differs ([`Io::lines`]). Logs
//! go to stderr. The process exits when stdin closes.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use futures_channel::mpsc;
use futures_util::StreamExt;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, Kind};

use super::emit::Io;
use super::session::Session;
use super::{routes, MockConfig, Shared};

/// Serves stdin/stdout until stdin closes.
pub fn run(cfg: MockConfig) -> ExitCode {
    let (tx, rx) = mpsc::unbounded::<Vec<u8>>();
    // Blocking reads on their own thread; the runtime sees whole lines.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().split(b'\n') {
            let Ok(line) = line else { break };
            if tx.unbounded_send(line).is_err() {
                break;
            }
        }
    });
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringmux-mock: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(Arc::new(Shared::new(cfg)), rx));
    ExitCode::SUCCESS
}

async fn serve(sh: Arc<Shared>, mut lines: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut session: Option<Arc<Session>> = None;
    let mut io = Io::lines();
    while let Some(line) = lines.next().await {
        let line = trim(line);
        if line.is_empty() {
            continue;
        }
        let msg = match jsonrpc::parse(&line) {
            Ok(m) => m,
            Err(e) => {
                let mut out = Vec::new();
                jsonrpc::write_error(&mut out, None, &e);
                io.respond(200, None, &out, true, &[]);
                let _ = io.flush().await;
                continue;
            }
        };
        match (msg.kind, &session) {
            (Kind::Request, _) if msg.method == "initialize" => {
                let Some(id) = msg.id else { continue };
                let s = match sh.sessions.create() {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("ringmux-mock: {e}");
                        continue;
                    }
                };
                // The session's GET-stream messages (roots/list, resource updates, list
                // changes) go to stdout as well.
                let mut unprompted = s.listen();
                monoio::spawn(async move {
                    let mut io = Io::lines();
                    while let Some(msg) = unprompted.next().await {
                        io.event(None, &msg);
                        if io.flush().await.is_err() {
                            break;
                        }
                    }
                });
                session = Some(s);
                let mut out = Vec::with_capacity(512);
                routes::initialize_response(&sh, &msg, id, &mut out);
                io.respond(200, None, &out, true, &[]);
                let _ = io.flush().await;
            }
            (Kind::Request, Some(s)) => {
                let (sh, s) = (sh.clone(), s.clone());
                monoio::spawn(async move {
                    let mut io = Io::lines();
                    let mut out = Vec::with_capacity(1024);
                    routes::stdio_request(&sh, &mut io, &line, &s, &mut out).await;
                });
            }
            (Kind::Request, None) => {
                let mut out = Vec::new();
                jsonrpc::write_error(
                    &mut out,
                    msg.id,
                    &RpcError::InvalidRequest("initialize first".into()),
                );
                io.respond(200, None, &out, true, &[]);
                let _ = io.flush().await;
            }
            (Kind::Response, Some(s)) => {
                if let Some(id) = msg.id {
                    s.answer(id, &line);
                }
            }
            (Kind::Notification, Some(s)) => s.record(match msg.params.request_id {
                Some(id) => format!("{}:{}", msg.method, id.get()),
                None => msg.method.to_string(),
            }),
            _ => {}
        }
    }
}

fn trim(mut line: Vec<u8>) -> Vec<u8> {
    while line.last().is_some_and(|b| b.is_ascii_whitespace()) {
        line.pop();
    }
    line
}
