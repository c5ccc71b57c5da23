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
}
