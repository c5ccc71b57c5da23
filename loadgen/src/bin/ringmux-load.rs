//! `ringmux-load`: an MCP-aware load generator (`ringmux-load --help`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ringmux_core::version;
use ringmux_load::load::{self, client::Endpoint, report, template::Template, Op, Options};

const USAGE: &str = "usage: ringmux-load URL [options]

  URL                  the MCP endpoint, e.g. http://127.0.0.1:8080/mcp (https://: the
                       certificate is checked against the platform roots or SSL_CERT_FILE)
  -c, --connections N  keep-alive connections (default 16)
  -s, --sessions N     MCP sessions spread over the connections, at least one each; requests
                       rotate over a connection's sessions (default: one per connection)
  -t, --threads N      worker threads, one monoio runtime each (default 1)
  -d, --duration SECS  measured time (default 10)
  -n, --requests N     stop after N measured requests instead
  -w, --warmup SECS    unmeasured time first (default 1)
  -R, --rate N         open loop at N requests/s in total, latency from the intended send
                       time (default: closed loop)
  --mix SPEC           weighted request mix of call, list (tools/list, every page), read
                       (resources/read), prompt (prompts/get), ping; e.g. call=8,list=1,ping=1
                       (default call=1)
  --tool NAME          tool for call requests (default echo)
  --args JSON|@FILE    its arguments object; {{seq}} and {{conn}} become the request's number
                       and the connection's (default {\"message\":\"hello\"})
  --uri URI            resource for read requests (default mock://mock/res/0)
  --prompt NAME        prompt for prompt requests (default greet)
  --prompt-args JSON|@FILE  its arguments (default {\"name\":\"load\"})
  --protocol VERSION   protocol version to ask for (default 2025-11-25); 2026-07-28 sends
                       sessionless requests (per-request _meta, Mcp-Method/Mcp-Name headers)
  --timeout SECS       per-request timeout (default 10)
  --max-lateness-us N  open loop: the generator's p99 send lateness over which the summary's
                       last line warns that its figures are not trustworthy (default 500)
  --spin-us N          open loop: poll the clock for the last N µs before each send time
                       instead of sleeping through it; more precise where waking is slow (a
                       VM), and it costs that much CPU per request, at most a quarter of each
                       thread's time (default 200; 0: sleep only)
  --json               print the summary as JSON
  --html FILE          add this run's percentile plot to FILE (created if missing; a run with
                       the same label is replaced), a self-contained page
  --label TEXT         the run's name on the plot (default: URL and mode)
  -q, --quiet          no live progress line (it is shown only on a terminal anyway)

Errors are counted by kind; a run with errors says so in its last line and exits 1.";

fn parse_mix(spec: &str) -> Result<Vec<(Op, u32)>, String> {
    spec.split(',')
        .map(|part| {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let op = Op::parse(name.trim())
                .ok_or_else(|| format!("--mix: unknown request kind {name:?}"))?;
            let w = weight
                .trim()
                .parse()
                .map_err(|_| format!("--mix: bad weight {weight:?}"))?;
            Ok((op, w))
        })
        .collect()
}

/// `JSON` or `@FILE` (like curl's `-d @FILE`).
fn template(flag: &str, v: String) -> Result<Template, String> {
    let text = match v.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{flag}: reading {path}: {e}"))?
        }
        None => v,
    };
    Template::parse(text.trim()).map_err(|e| format!("{flag}: {e}"))
}

fn val(p: &mut lexopt::Parser) -> Result<String, String> {
    p.value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| "not UTF-8".to_string())
}

struct Output {
    json: bool,
    html: Option<PathBuf>,
    label: Option<String>,
    quiet: bool,
}

fn args() -> Result<(Options, Output), String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut url = None;
    let mut o = Options::new(Endpoint::parse("http://127.0.0.1:8080/mcp")?);
    let mut out = Output {
        json: false,
        html: None,
        label: None,
        quiet: false,
    };
    let secs = |v: String| -> Result<Duration, String> {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("not a number of seconds: {v}"))
    };
    let num = |v: String| -> Result<usize, String> {
        v.parse().map_err(|_| format!("not a number: {v}"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("connections") => o.connections = num(val(&mut p)?)?,
            Short('s') | Long("sessions") => o.sessions = num(val(&mut p)?)?,
            Short('t') | Long("threads") => o.threads = num(val(&mut p)?)?,
            Short('d') | Long("duration") => o.duration = secs(val(&mut p)?)?,
            Short('n') | Long("requests") => o.requests = Some(num(val(&mut p)?)? as u64),
            Short('w') | Long("warmup") => o.warmup = secs(val(&mut p)?)?,
            Short('R') | Long("rate") => {
                let v = val(&mut p)?;
                let r: f64 = v
                    .parse()
                    .map_err(|_| format!("--rate: not a number: {v}"))?;
                if !(r > 0.0 && r.is_finite()) {
                    return Err("--rate must be positive".into());
                }
                o.rate = Some(r);
            }
            Long("mix") => o.mix = parse_mix(&val(&mut p)?)?,
            Long("tool") => o.tool = val(&mut p)?,
            Long("args") => o.arguments = template("--args", val(&mut p)?)?,
            Long("uri") => o.uri = val(&mut p)?,
            Long("prompt") => o.prompt = val(&mut p)?,
            Long("prompt-args") => o.prompt_arguments = template("--prompt-args", val(&mut p)?)?,
            Long("protocol") => {
                let v = val(&mut p)?;
                if !version::is_supported(&v) {
                    return Err(format!("--protocol: unknown version {v}"));
                }
                o.protocol = v;
            }
            Long("timeout") => o.timeout = secs(val(&mut p)?)?,
            Long("max-lateness-us") => {
                let us: u64 = val(&mut p)?
                    .parse()
                    .map_err(|_| "--max-lateness-us takes a number of microseconds")?;
                o.max_lateness = Duration::from_micros(us);
            }
            Long("spin-us") => {
                let us: u64 = val(&mut p)?
                    .parse()
                    .map_err(|_| "--spin-us takes a number of microseconds")?;
                o.spin = Duration::from_micros(us);
            }
            Long("json") => out.json = true,
            Long("html") => out.html = Some(PathBuf::from(val(&mut p)?)),
            Long("label") => out.label = Some(val(&mut p)?),
            Short('q') | Long("quiet") => out.quiet = true,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Value(v) if url.is_none() => {
                url = Some(
                    v.into_string()
                        .map_err(|_| "URL is not UTF-8".to_string())?,
                )
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let url = url.ok_or("missing URL (see --help)")?;
    o.endpoint = Endpoint::parse(&url)?;
    Ok((o, out))
}

fn describe(opts: &Options) -> String {
    let mode = match opts.rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => "closed loop".into(),
    };
    let sessions = if opts.protocol == version::SESSIONLESS {
        "sessionless".to_string()
    } else {
        format!("{} sessions", opts.sessions.max(opts.connections))
    };
    format!(
        "{} connections, {sessions}, {} threads, {mode}",
        opts.connections, opts.threads
    )
}

fn main() -> ExitCode {
    let (opts, out) = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ringmux-load: {e}");
            return ExitCode::from(2);
        }
    };
    let live = !out.quiet && std::io::stderr().is_terminal();
    let result = load::run_with_progress(&opts, |p| {
        if live {
            eprint!("\r\x1b[2K{p}");
        }
    });
    if live {
        eprint!("\r\x1b[2K");
    }
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringmux-load: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &out.html {
        let label = out.label.clone().unwrap_or_else(|| {
            format!(
                "{}{} ({})",
                opts.endpoint.authority,
                opts.endpoint.path,
                describe(&opts)
            )
        });
        if let Err(e) = report::add_run(
            path,
            report::Run {
                label,
                summary: summary.clone(),
            },
        ) {
            eprintln!("ringmux-load: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if out.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        println!("{}, {:.1} s measured", describe(&opts), summary.seconds);
        println!("{summary}");
    }
    if summary.error_total() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
