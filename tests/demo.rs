//! The README's first-run commands: `ringmux demo`, then `ringmux tools URL` lists the merged
//! tools of both built-in backends.

#[path = "support/harness.rs"]
mod harness;

use harness::*;

#[test]
fn demo_serves_two_backends_and_tools_lists_them() {
    let gw = demo();
    let (ok, out, err) = run_cli(&["tools", &gw.url]);
    assert!(ok, "{err}");
    let names: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert!(
        names.contains(&"weather__echo") && names.contains(&"docs__echo"),
        "{out}"
    );
    assert_eq!(names.len(), 12 + 11, "{out}");
    let mut cl = client(&gw.url);
    let echo = cl
        .request(
            "tools/call",
            json!({"name": "docs__echo", "arguments": {"message": "demo"}}),
        )
        .unwrap();
    assert_eq!(text_of(&echo), "demo");
    // The admin page and the API it reads, on the admin listener the demo names.
    let get = |path: &str| {
        let mut c = Client::connect(&format!("{}{path}", gw.admin)).expect("connecting");
        let r = c.send("GET", b"", &[]).expect("GET");
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    let (status, page) = get("/");
    assert_eq!(status, 200);
    assert!(page.contains("<title>ringmux admin</title>"), "{page}");
    let (status, backends) = get("/api/backends");
    assert_eq!(status, 200);
    let backends: serde_json::Value = serde_json::from_str(&backends).unwrap();
    let names: Vec<&str> = backends
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["weather", "docs"]);
}
