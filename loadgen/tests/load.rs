//! The load generator against the project's mock MCP server, in process: closed and open
//! loop, the request mix, and errors counted (never hidden).

use std::time::Duration;

use ringmux_load::load::{self, client::Endpoint, Op, Options};
use ringmux_load::mock::{spawn, MockConfig};

fn options(url: &str) -> Options {
    Options {
        connections: 4,
        threads: 2,
        duration: Duration::from_millis(600),
        warmup: Duration::from_millis(100),
        arguments: r#"{"message":"hi"}"#.into(),
        timeout: Duration::from_secs(5),
        ..Options::new(Endpoint::parse(url).unwrap())
    }
}

#[test]
fn closed_loop_mix_against_the_mock() {
    let mock = spawn(
        MockConfig {
            tools: 60,
            page_size: 25,
            ..MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let mut o = options(&mock.url());
    o.mix = vec![(Op::Call, 4), (Op::List, 1), (Op::Ping, 1)];
    let s = load::run(&o).unwrap();
    assert!(s.ok > 100, "{s}");
    assert_eq!(s.error_total(), 0, "{s}");
    assert!(
        s.p50_us > 0 && s.p50_us <= s.p99_us && s.p99_us <= s.max_us,
        "{s}"
    );
}

#[test]
fn open_loop_keeps_the_rate() {
    let mock = spawn(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut o = options(&mock.url());
    o.rate = Some(500.0);
    o.duration = Duration::from_secs(1);
    let s = load::run(&o).unwrap();
    // 500 req/s for one second, whatever the server's speed (it is far faster).
    assert!((450..=550).contains(&s.ok), "{s}");
    assert_eq!(s.error_total(), 0, "{s}");
}

#[test]
fn errors_are_counted_by_kind() {
    let mock = spawn(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut o = options(&mock.url());
    o.tool = "no_such_tool".into();
    let s = load::run(&o).unwrap();
    assert_eq!(s.ok, 0, "{s}");
    assert!(s.error_total() > 0);
    assert!(
        s.errors.keys().all(|k| k.starts_with("jsonrpc_")),
        "{:?}",
        s.errors
    );
    assert!(s.to_string().lines().last().unwrap().starts_with("ERRORS"));
}
