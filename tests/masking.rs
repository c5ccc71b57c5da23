//! Masking against the real binary: a secret in a tool's result reaches the client masked;
//! arguments are masked before the backend sees them, or the call is refused; an answer with
//! nothing to mask passes unchanged.

#[path = "support/harness.rs"]
mod harness;

use harness::*;

const SECRET: &str = "AKIAABCDEFGHIJKLMNOP";

fn echo(c: &mut Client, message: &str) -> Value {
    c.request(
        "tools/call",
        json!({"name": "a__echo", "arguments": {"message": message}}),
    )
    .unwrap()
}

fn gateway_masking(a: &Proc, masking: &str) -> Proc {
    gateway()
        .backend("a", &a.url)
        .yaml(&format!("masking:\n{masking}"))
        .start()
}

#[test]
fn secrets_in_results_are_masked_before_the_client_sees_them() {
    let a = mock("a").start();
    // Arguments not checked: the backend echoes the key, and the answer is masked.
    let gw = gateway_masking(&a, "  arguments: off\n  defaults: true\n  patterns:\n    - {name: ticket, regex: 'TICKET-[0-9]{4}'}");
    let mut c = client(&gw.url);
    let r = echo(
        &mut c,
        &format!("key {SECRET}, mail alice@example.com, TICKET-1234"),
    );
    assert_eq!(
        text_of(&r),
        "key [masked:aws_access_key], mail [masked:email], [masked:ticket]",
        "{r}"
    );
    assert_eq!(r["id"], json!(1), "the answer is still the call's");
    let clean = echo(&mut c, "nothing to see");
    assert_eq!(text_of(&clean), "nothing to see");
    assert_eq!(metric(&gw.admin, "ringmux_masked_total"), 1);
}

#[test]
fn secrets_in_arguments_are_masked_or_refused() {
    let a = mock("a").start();
    let gw = gateway_masking(&a, "  arguments: mask");
    let mut c = client(&gw.url);
    // The backend saw the masked argument (and echoed it).
    let r = echo(&mut c, &format!("send {SECRET} out"));
    assert_eq!(text_of(&r), "send [masked:aws_access_key] out");
    drop(gw);

    let gw = gateway_masking(&a, "  arguments: refuse");
    let mut c = client(&gw.url);
    let r = echo(&mut c, &format!("send {SECRET} out"));
    assert_eq!(error_code(&r), -32602, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("aws_access_key"));
    let r = echo(&mut c, "fine");
    assert_eq!(text_of(&r), "fine");
}

/// A backend's request to the client (here sampling, carrying what the tool was given) has its
/// secrets masked as answers do: the client's model never reads them.
#[test]
fn secrets_in_a_backends_requests_to_the_client_are_masked() {
    let c = mock("c").flag("--conformance").start();
    let gw = gateway()
        .backend("c", &c.url)
        .yaml("modern:\n  principal_header: x-principal\nmasking:\n  arguments: off")
        .start();
    let r = modern_request(
        &gw.url,
        1,
        "tools/call",
        json!({"name": "c__test_sampling", "arguments": {"prompt": format!("use {SECRET}")}}),
        json!({"sampling": {}}),
        &[("x-principal", "alice")],
    );
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let asked = r["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(asked["method"], "sampling/createMessage");
    let text = asked["params"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert_eq!(text, "use [masked:aws_access_key]", "{r}");
    assert!(!r.to_string().contains(SECRET));
}
