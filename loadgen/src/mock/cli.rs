//! The mock's command line, shared by the `ringmux-mock` binary and `ringmux mock`.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::{spawn as mock_spawn, MockConfig};

/// Usage text.
pub const USAGE: &str = "\
usage: ringmux-mock [--listen ADDR] [--name N] [--tools N] [--tool-bytes N] [--prompts N]
                    [--resources N] [--page-size N] [--latency-ms N] [--conformance]
                    [--no-get-stream] [--json-only] [--threads N] [--faults] [--stdio]
                    [--modern] [--sse] [--instructions TEXT] [--links] [--rug-pull]
                    [--dual] [--stall-ms N --stall-every-ms M] [--require-bearer T]
                    [--drop-lists N] [--trace]

  --listen ADDR     address to bind (default 127.0.0.1:0: any free port)
  --name N          serverInfo.name and resource URI authority (default mock)
  --tools N         tools listed: 11 fixed + generated tool_NNNN up to N (default 14)
  --tool-bytes N    approximate JSON size of each generated tool (default 400)
  --prompts N       prompts: greet + prompt_1.. up to N (default 3)
  --resources N     resources mock://NAME/res/0.. (default 3)
  --page-size N     items per list page, 0 = one page (default 0)
  --latency-ms N    delay before answering each request (default 0)
  --conformance     serve the @modelcontextprotocol/conformance fixtures
  --no-get-stream   answer GET /mcp with 405
  --json-only       use SSE only for tools that must stream
  --threads N       server threads sharing the port (default 1)
  --faults          also list `crash` (exits with status 3) and `garbage` (sends a
                    message that is not JSON-RPC before its answer)
  --stdio           speak newline-delimited JSON-RPC on stdin/stdout instead of HTTP
                    (one client; exits when stdin closes)
  --require-bearer T  answer 401 to requests without `Authorization: Bearer T`
  --modern          also serve the sessionless era (2026-07-28): server/discover, _meta
                    checked on every request, input_required for sampling/elicitation/roots,
                    subscriptions/listen
  --sse             serve the legacy HTTP+SSE transport (2024-11-05): GET /sse, then POST
                    /message?sessionId=… (answers arrive on the stream)
  --instructions T  `instructions` in the initialize and server/discover results
  --links           also list `links` (answers a resource link and an embedded resource)
  --rug-pull        also list `rug_pull` (gives `echo` a new description carrying an
                    instruction, then sends notifications/tools/list_changed)
  --dual            with --modern: server/discover offers the stateful versions too
  --trace           list a tool `traceparent` that answers its call's traceparent header
  --drop-lists N    close the connection of the first N tools/list requests, unanswered
  --stall-ms N      every --stall-every-ms (default 1000) the server answers nothing for N ms";

/// Parses the mock's flags (without the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(
    args: I,
) -> Result<(MockConfig, SocketAddr, bool), lexopt::Error> {
    use lexopt::prelude::*;
    let mut cfg = MockConfig::default();
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut stdio = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => listen = parser.value()?.parse()?,
            Long("name") => cfg.name = parser.value()?.string()?,
            Long("tools") => cfg.tools = parser.value()?.parse()?,
            Long("tool-bytes") => cfg.tool_bytes = parser.value()?.parse()?,
            Long("prompts") => cfg.prompts = parser.value()?.parse()?,
            Long("resources") => cfg.resources = parser.value()?.parse()?,
            Long("page-size") => cfg.page_size = parser.value()?.parse()?,
            Long("latency-ms") => cfg.latency = Duration::from_millis(parser.value()?.parse()?),
            Long("conformance") => cfg.conformance = true,
            Long("no-get-stream") => cfg.get_stream = false,
            Long("json-only") => cfg.json_only = true,
            Long("threads") => cfg.threads = parser.value()?.parse()?,
            Long("faults") => cfg.faults = true,
            Long("stdio") => stdio = true,
            Long("modern") => cfg.modern = true,
            Long("sse") => cfg.sse = true,
            Long("links") => cfg.links = true,
            Long("rug-pull") => cfg.rug_pull = true,
            Long("dual") => cfg.dual = true,
            Long("stall-ms") => {
                let every = cfg.stall.map_or(Duration::from_secs(1), |s| s.1);
                cfg.stall = Some((Duration::from_millis(parser.value()?.parse()?), every));
            }
            Long("stall-every-ms") => {
                let stall = cfg.stall.map_or(Duration::ZERO, |s| s.0);
                cfg.stall = Some((stall, Duration::from_millis(parser.value()?.parse()?)));
            }
            Long("trace") => cfg.trace = true,
            Long("drop-lists") => cfg.drop_lists = parser.value()?.parse()?,
            Long("instructions") => cfg.instructions = Some(parser.value()?.string()?),
            Long("require-bearer") => cfg.require_bearer = Some(parser.value()?.string()?),
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((cfg, listen, stdio))
}

/// Runs the mock as a process: parse flags, bind, print `listening on URL`, serve until killed.
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let (cfg, listen, stdio) = match parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("ringmux-mock: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if stdio {
        return super::stdio::run(cfg);
    }
    let handle = match mock_spawn(cfg, listen) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("ringmux-mock: cannot serve on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    // Whoever started us waits for this line; if they went away, serving is pointless.
    if writeln!(stdout, "listening on {}", handle.url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    handle.wait();
    ExitCode::SUCCESS
}
