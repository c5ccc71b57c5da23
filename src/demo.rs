//! The embedded default: two of the project's mock MCP servers (`weather`, `docs`) started
//! in-process on loopback, with a gateway in front. Nothing else needs to be installed.

use std::net::SocketAddr;
use std::time::Duration;

use ringmux_load::mock::{self, MockConfig, MockHandle};

/// Starts the demo backends and returns them with the gateway config text that fronts them.
pub fn backends() -> std::io::Result<(Vec<MockHandle>, String)> {
    let local: SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
    let weather = mock::spawn(
        MockConfig {
            name: "weather".into(),
            tools: 12,
            latency: Duration::ZERO,
            ..MockConfig::default()
        },
        local,
    )?;
    let docs = mock::spawn(
        MockConfig {
            name: "docs".into(),
            tools: 11,
            resources: 4,
            ..MockConfig::default()
        },
        local,
    )?;
    let yaml = format!(
        "backends:\n  - name: weather\n    url: {}\n  - name: docs\n    url: {}\n",
        weather.url(),
        docs.url()
    );
    Ok((vec![weather, docs], yaml))
}
