//! The in-process tier: the gateway and a mock backend started inside the test process (no
//! child processes, no ports parsed from logs), driven by the probe client, and stopped by
//! awaiting the server's shutdown future.

use std::time::Duration;

use ringmux::probe::Client;
use ringmux::server;
use ringmux_load::mock::{self, MockConfig};
use serde_json::json;

#[test]
fn the_gateway_runs_in_process_and_its_shutdown_future_resolves() {
    let mut backend = mock::spawn(
        MockConfig {
            name: "a".into(),
            ..MockConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nshards: 2\npin_cores: false\nbackends:\n  - name: a\n    url: {}\n",
        backend.url()
    );
    let cfg = ringmux_core::config::load(&yaml, 2).unwrap();
    let listeners = server::bind(cfg.listen, cfg.shards).unwrap();
    let srv = server::start(cfg, listeners).unwrap();
    let url = format!("http://{}/mcp", srv.addr);

    let mut c = Client::connect(&url).unwrap();
    c.initialize().unwrap();
    let echo = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "in process"}}),
        )
        .unwrap();
    assert_eq!(echo["result"]["content"][0]["text"], "in process", "{echo}");

    let stopped = srv.shutdown();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let done =
        rt.block_on(async move { monoio::time::timeout(Duration::from_secs(30), stopped).await });
    assert!(matches!(done, Ok(Ok(()))), "the shards did not stop");
    // Stopped: the listener is closed.
    assert!(Client::connect(&url)
        .and_then(|mut c| c.initialize())
        .is_err());
    backend.stop();
}
