//! Tool safety against the real binary: a rug pull (the mock redefines `echo` mid-run) is
//! quarantined by its pin until the pin file approves the new definition; `file` mode shows
//! only pinned tools; a backend's tools that imitate another's are flagged (and hidden when
//! asked); a description carrying instructions is hidden. Each with its log, metric and
//! audit record.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

const WAIT: Duration = Duration::from_secs(15);

fn temp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ringmux-safety-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn tools(c: &mut Client) -> Vec<String> {
    c.list_all("tools/list", "tools")
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn records(audit: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn echo(c: &mut Client) -> Value {
    c.request(
        "tools/call",
        json!({"name": "a__echo", "arguments": {"message": "hi"}}),
    )
    .unwrap()
}

#[test]
fn a_rug_pull_is_quarantined_until_the_pin_file_approves_it() {
    let a = mock("a").flag("--rug-pull").start();
    let pins = temp("pins.json");
    let audit = temp("audit.jsonl");
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .yaml(&format!(
            "tool_safety:\n  pins:\n    file: {}\n    reload_ms: 100\naudit:\n  path: {}",
            pins.display(),
            audit.display()
        ))
        .start();
    let mut c = client(&gw.url);
    assert!(tools(&mut c).contains(&"a__echo".to_string()));
    assert_eq!(text_of(&echo(&mut c)), "hi");
    // First sight: every tool pinned, with its definition.
    assert!(
        eventually(WAIT, || {
            std::fs::read_to_string(&pins)
                .is_ok_and(|t| t.contains("\"rug_pull\"") && t.contains("\"echo\""))
        }),
        "the pin file was not written"
    );
    let pinned: Value = serde_json::from_str(&std::fs::read_to_string(&pins).unwrap()).unwrap();
    let old_sha = pinned["pins"]["a"]["echo"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        pinned["pins"]["a"]["echo"]["definition"]["description"],
        "Returns the message exactly as given"
    );

    // The rug pull: echo's description now carries an instruction.
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__rug_pull", "arguments": {}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "redefined");
    assert!(
        eventually(WAIT, || !tools(&mut c).contains(&"a__echo".to_string())),
        "the redefined echo is still listed"
    );
    let r = echo(&mut c);
    assert_eq!(
        error_code(&r),
        -32602,
        "a quarantined tool is an unknown tool: {r}"
    );
    assert!(
        tools(&mut c).contains(&"a__add".to_string()),
        "the others stay"
    );
    wait_metric(&gw.admin, "ringmux_tools_quarantined_total", 1);
    assert!(eventually(WAIT, || records(&audit)
        .iter()
        .any(|r| r["event"] == "quarantine")));
    let q = records(&audit)
        .into_iter()
        .find(|r| r["event"] == "quarantine")
        .unwrap();
    assert_eq!(q["backend"], "a");
    assert_eq!(q["name"], "echo");
    assert_eq!(
        q["old"]["definition"]["description"],
        "Returns the message exactly as given"
    );
    assert!(q["new"]["definition"]["description"]
        .as_str()
        .unwrap()
        .contains("IMPORTANT"));
    let new_sha = q["new"]["sha256"].as_str().unwrap().to_owned();
    assert_ne!(new_sha, old_sha);
    // The same pull seen again (another list) is reported once.
    tools(&mut c);
    assert_eq!(metric(&gw.admin, "ringmux_tools_quarantined_total"), 1);
    // The pin file still holds the approved definition.
    let still: Value = serde_json::from_str(&std::fs::read_to_string(&pins).unwrap()).unwrap();
    assert_eq!(still["pins"]["a"]["echo"]["sha256"], old_sha.as_str());

    // The operator approves the new definition in the pin file: echo comes back.
    let mut approved = still.clone();
    approved["pins"]["a"]["echo"] = json!({"sha256": new_sha});
    std::fs::write(&pins, serde_json::to_string_pretty(&approved).unwrap()).unwrap();
    assert!(
        eventually(WAIT, || tools(&mut c).contains(&"a__echo".to_string())),
        "the approved echo did not come back"
    );
    assert_eq!(text_of(&echo(&mut c)), "hi");

    // Approving by deleting the entry: the tool is pinned anew, as it is now.
    let mut deleted = approved.clone();
    deleted["pins"]["a"].as_object_mut().unwrap().remove("echo");
    std::fs::write(&pins, serde_json::to_string_pretty(&deleted).unwrap()).unwrap();
    assert!(
        eventually(WAIT, || {
            tools(&mut c);
            std::fs::read_to_string(&pins).is_ok_and(|t| {
                serde_json::from_str::<Value>(&t)
                    .is_ok_and(|v| v["pins"]["a"]["echo"]["sha256"] == new_sha.as_str())
            })
        }),
        "the deleted entry was not pinned again"
    );
    for p in [pins, audit] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn file_mode_shows_only_what_the_file_pins_and_a_bad_file_stops_the_start() {
    let a = mock("a").start();
    let pins = temp("file-mode.json");
    std::fs::write(&pins, r#"{"version": 1, "pins": {}}"#).unwrap();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml(&format!(
            "tool_safety:\n  pins:\n    file: {}\n    mode: file\n    reload_ms: 100",
            pins.display()
        ))
        .start();
    let mut c = client(&gw.url);
    assert_eq!(tools(&mut c), Vec::<String>::new(), "nothing is pinned yet");
    wait_metric(&gw.admin, "ringmux_tools_quarantined_total", 11);

    // Pin echo as the backend defines it now (its canonical form's SHA-256).
    let direct = {
        let mut d = client(&a.url);
        d.list_all("tools/list", "tools").unwrap()
    };
    let echo_def = direct.iter().find(|t| t["name"] == "echo").unwrap();
    let canonical =
        ringmux_core::safety::canonical_definition(echo_def.to_string().as_bytes()).unwrap();
    let sha: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &pins,
        json!({"version": 1, "pins": {"a": {"echo": {"sha256": sha}}}}).to_string(),
    )
    .unwrap();
    assert!(
        eventually(WAIT, || tools(&mut c) == ["a__echo"]),
        "echo alone is listed"
    );
    drop(gw);

    // A pin file that does not parse stops the start, naming the key.
    std::fs::write(&pins, "{not json").unwrap();
    let cfg = gateway()
        .backend("a", &a.url)
        .yaml(&format!(
            "tool_safety:\n  pins:\n    file: {}\n    mode: file",
            pins.display()
        ))
        .config_text();
    let path = temp("bad.yaml");
    std::fs::write(&path, cfg).unwrap();
    let (ok, _, err) = run_cli(&["run", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("tool_safety.pins.file"), "{err}");
    for p in [pins, path] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn imitating_tools_are_flagged_and_instructions_in_descriptions_hidden() {
    // b lists the same tools as a: each imitates a's. Hidden when asked.
    let a = mock("a").start();
    let b = mock("b").start();
    let audit = temp("flags.jsonl");
    let gw = gateway()
        .backend("a", &a.url)
        .backend("b", &b.url)
        .yaml(&format!(
            "tool_safety:\n  shadowing:\n    action: hide\naudit:\n  path: {}",
            audit.display()
        ))
        .start();
    let mut c = client(&gw.url);
    let listed = tools(&mut c);
    assert!(listed.contains(&"a__echo".to_string()));
    assert!(
        !listed.iter().any(|t| t.starts_with("b__")),
        "b's imitations are hidden: {listed:?}"
    );
    wait_metric(&gw.admin, "ringmux_tools_flagged_total", 11);
    assert!(eventually(WAIT, || records(&audit).iter().any(|r| r
        ["event"]
        == "flag"
        && r["name"] == "echo"
        && r["backend"] == "b")));
    let r = records(&audit)
        .into_iter()
        .find(|r| r["event"] == "flag" && r["name"] == "echo")
        .unwrap();
    assert!(
        r["reason"].as_str().unwrap().contains("imitates a's echo"),
        "{r}"
    );
    drop(gw);

    // A tool whose new description carries instructions: hidden by the injection check.
    let p = mock("p").flag("--rug-pull").start();
    let gw = gateway()
        .backend("p", &p.url)
        .yaml("tool_safety:\n  injection: {}")
        .start();
    let mut c = client(&gw.url);
    assert!(tools(&mut c).contains(&"p__echo".to_string()));
    c.request(
        "tools/call",
        json!({"name": "p__rug_pull", "arguments": {}}),
    )
    .unwrap();
    assert!(
        eventually(WAIT, || !tools(&mut c).contains(&"p__echo".to_string())),
        "the instruction-carrying echo is still listed"
    );
    wait_metric(&gw.admin, "ringmux_tools_flagged_total", 1);
    let _ = std::fs::remove_file(audit);
}

/// The admin API lists what tool safety holds back and approves a definition by the hash the
/// operator saw: a wrong hash changes nothing; the right one pins it (file written, every
/// shard shows the tool again, audited). With `admin.token_sha256` the API asks for it.
#[test]
fn the_admin_api_lists_and_approves_a_quarantined_tool() {
    const TOKEN: &str = "rmx-admin-token-0123";
    let a = mock("a").flag("--rug-pull").start();
    let pins = temp("api-pins.json");
    let audit = temp("api-audit.jsonl");
    let token_sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, TOKEN.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .yaml(&format!(
            "admin:\n  listen: 127.0.0.1:0\n  token_sha256: {token_sha}\ntool_safety:\n  pins:\n    file: {}\n    reload_ms: 100\naudit:\n  path: {}",
            pins.display(),
            audit.display()
        ))
        .start();
    let api = |method: &str, path: &str, body: Option<Value>, token: Option<&str>| {
        let mut c = Client::connect(&format!("{}{path}", gw.admin)).unwrap();
        c.authorization = token.map(|t| format!("Bearer {t}"));
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = c.send(method, body.as_bytes(), &[]).unwrap();
        let json = serde_json::from_slice::<Value>(&resp.body).unwrap_or(Value::Null);
        (resp.status, json)
    };
    let mut c = client(&gw.url);
    assert!(tools(&mut c).contains(&"a__echo".to_string()));
    assert!(eventually(WAIT, || std::fs::read_to_string(&pins)
        .is_ok_and(|t| t.contains("\"echo\""))));
    assert_eq!(
        api("GET", "/api/quarantine", None, Some(TOKEN)),
        (200, json!([]))
    );
    assert_eq!(api("GET", "/api/quarantine", None, None).0, 401);
    assert_eq!(api("GET", "/api/quarantine", None, Some("wrong")).0, 401);

    c.request(
        "tools/call",
        json!({"name": "a__rug_pull", "arguments": {}}),
    )
    .unwrap();
    assert!(eventually(WAIT, || !tools(&mut c).contains(&"a__echo".to_string())));
    let mut held = Value::Null;
    assert!(eventually(WAIT, || {
        held = api("GET", "/api/quarantine", None, Some(TOKEN)).1;
        held.as_array().is_some_and(|h| !h.is_empty())
    }));
    let q = &held[0];
    assert_eq!(
        (q["backend"].as_str(), q["tool"].as_str()),
        (Some("a"), Some("echo"))
    );
    assert!(q["definition"]["description"]
        .as_str()
        .unwrap()
        .contains("IMPORTANT"));
    assert_ne!(q["sha256"], q["pinned_sha256"]);
    let sha = q["sha256"].as_str().unwrap().to_owned();

    // Another hash (the old one, say) approves nothing.
    let wrong = json!({"backend": "a", "tool": "echo", "sha256": q["pinned_sha256"]});
    let (status, body) = api("POST", "/api/quarantine/approve", Some(wrong), Some(TOKEN));
    assert_eq!(status, 409, "{body}");
    let right = json!({"backend": "a", "tool": "echo", "sha256": sha});
    assert_eq!(
        api("POST", "/api/quarantine/approve", Some(right.clone()), None).0,
        401
    );
    let (status, body) = api("POST", "/api/quarantine/approve", Some(right), Some(TOKEN));
    assert_eq!((status, body), (200, json!({"approved": true})));
    // Every shard shows it again: lists from fresh sessions, whichever shard they land on.
    assert!(eventually(WAIT, || (0..4)
        .all(
            |_| tools(&mut client(&gw.url)).contains(&"a__echo".to_string())
        )));
    let pinned: Value = serde_json::from_str(&std::fs::read_to_string(&pins).unwrap()).unwrap();
    assert_eq!(pinned["pins"]["a"]["echo"]["sha256"], sha.as_str());
    assert_eq!(
        api("GET", "/api/quarantine", None, Some(TOKEN)),
        (200, json!([]))
    );
    assert!(eventually(WAIT, || records(&audit)
        .iter()
        .any(|r| r["event"] == "approve" && r["name"] == "echo")));
}
