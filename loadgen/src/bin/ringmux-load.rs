//! `ringmux-load`: an MCP-aware load generator (`ringmux-load --help`).

use std::process::ExitCode;
use std::time::Duration;

use ringmux_load::load::{self, client::Endpoint, Op, Options};

const USAGE: &str = "usage: ringmux-load URL [options]

  URL                  the MCP endpoint, e.g. http://127.0.0.1:8080/mcp
  -c, --connections N  connections, each with its own MCP session (default 16)
  -t, --threads N      worker threads, one monoio runtime each (default 1)
  -d, --duration SECS  measured time (default 10)
  -w, --warmup SECS    unmeasured time first (default 1)
  -R, --rate N         open loop at N requests/s in total, latency from the intended send
                       time (default: closed loop)
  --mix SPEC           weighted request mix, e.g. call=8,list=1,ping=1 (default call=1)
  --tool NAME          tool for call requests (default echo)
  --args JSON          its arguments object (default {\"message\":\"hello\"})
  --timeout SECS       per-request timeout (default 10)
  --json               print the summary as JSON

Errors are counted by kind; a run with errors says so in its last line and exits 1.";

fn parse_mix(spec: &str) -> Result<Vec<(Op, u32)>, String> {
    spec.split(',')
        .map(|part| {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let op = match name.trim() {
                "call" => Op::Call,
                "list" => Op::List,
                "ping" => Op::Ping,
                other => return Err(format!("--mix: unknown request kind {other:?}")),
            };
            let w = weight
                .trim()
                .parse()
                .map_err(|_| format!("--mix: bad weight {weight:?}"))?;
            Ok((op, w))
        })
        .collect()
}

fn val(p: &mut lexopt::Parser) -> Result<String, String> {
    p.value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| "not UTF-8".to_string())
}

fn args() -> Result<(Options, bool), String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut url = None;
    let mut o = Options::new(Endpoint::parse("http://127.0.0.1:8080/mcp")?);
    let mut json = false;
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
            Short('t') | Long("threads") => o.threads = num(val(&mut p)?)?,
            Short('d') | Long("duration") => o.duration = secs(val(&mut p)?)?,
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
            Long("args") => {
                let v = val(&mut p)?;
                match serde_json::from_str::<serde_json::Value>(&v) {
                    Ok(serde_json::Value::Object(_)) => o.arguments = v,
                    _ => return Err("--args must be a JSON object".into()),
                }
            }
            Long("timeout") => o.timeout = secs(val(&mut p)?)?,
            Long("json") => json = true,
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
    o.endpoint = Endpoint::parse(&url.ok_or("missing URL (see --help)")?)?;
    Ok((o, json))
}

fn main() -> ExitCode {
    let (opts, json) = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ringmux-load: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = match load::run(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringmux-load: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        let mode = match opts.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None => "closed loop".into(),
        };
        println!(
            "{} connections, {} threads, {mode}, {:.1} s measured",
            opts.connections,
            opts.threads,
            opts.duration.as_secs_f64()
        );
        println!("{summary}");
    }
    if summary.error_total() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
