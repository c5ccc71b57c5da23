//! The request pipeline's session stage on the real binary: a session is its principal's
//! alone. Until authentication exists the principal comes from the trusted
//! `modern.principal_header` (an authenticating proxy in front names the client), so that is
//! how these tests name two clients; whatever names the principal later, the check is the same.

#[path = "support/harness.rs"]
mod harness;

use harness::*;

fn as_principal(c: &mut Client, who: &str, method: &str, params: Value) -> RawResponse {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    c.send("POST", body.to_string().as_bytes(), &[("x-principal", who)])
        .unwrap()
}

#[test]
fn another_principals_session_id_is_not_found() {
    let a = mock("a").start();
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .yaml("modern:\n  principal_header: x-principal")
        .start();
    // Alice initializes; her session is bound to her.
    let mut alice = Client::connect(&gw.url).unwrap();
    let init = as_principal(
        &mut alice,
        "alice",
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "alice", "version": "1"}}),
    );
    assert_eq!(init.status, 200, "{init:?}");
    alice.session = init.header("mcp-session-id").map(str::to_owned);
    assert!(alice.session.is_some());
    let echo = json!({"name": "a__echo", "arguments": {"message": "mine"}});
    let ok = as_principal(&mut alice, "alice", "tools/call", echo.clone());
    assert_eq!(text_of(&ok.messages()[0]), "mine");

    // Mallory presents Alice's session id: 404 for a call, a GET stream and a DELETE, as for
    // an unknown id; and anonymous clients are another principal too.
    for who in ["mallory", ""] {
        let mut other = sibling(&gw.url, &alice);
        let extra: Vec<(&str, &str)> = if who.is_empty() {
            vec![]
        } else {
            vec![("x-principal", who)]
        };
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": echo});
        let r = other
            .send("POST", body.to_string().as_bytes(), &extra)
            .unwrap();
        assert_eq!(r.status, 404, "{who:?}: {r:?}");
        let get = sibling(&gw.url, &alice)
            .send(
                "GET",
                b"",
                &[&[("accept", "text/event-stream")], &extra[..]].concat(),
            )
            .unwrap();
        assert_eq!(get.status, 404, "{who:?} GET");
        let del = sibling(&gw.url, &alice)
            .send("DELETE", b"", &extra)
            .unwrap();
        assert_eq!(del.status, 404, "{who:?} DELETE");
    }

    // Alice's session is untouched.
    let ok = as_principal(&mut alice, "alice", "tools/call", echo);
    assert_eq!(text_of(&ok.messages()[0]), "mine");
    let del = alice
        .send("DELETE", b"", &[("x-principal", "alice")])
        .unwrap();
    assert_eq!(del.status, 200);
}
