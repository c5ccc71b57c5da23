//! The dispatch table driven directly, without sockets: arguments, errors, pagination,
//! and both catalogs.

use super::*;
use crate::mock::MockConfig;
use serde_json::{json, Value};

fn server(cfg: MockConfig) -> Shared {
    Shared::new(cfg)
}

/// Runs one request through the table; a task counts as `Ok(None)`.
fn run(sh: &Shared, session: &Arc<Session>, body: &Value) -> Result<Option<Value>, Fail> {
    let body = body.to_string();
    let msg = ringmux_core::jsonrpc::parse(body.as_bytes()).unwrap();
    let call = Call {
        msg: &msg,
        body: body.as_bytes(),
        session,
        modern: false,
        traceparent: None,
        tracestate: None,
    };
    let mut out = Vec::new();
    match dispatch(sh, &msg.method, &call, &mut out)? {
        Action::Done => Ok(Some(serde_json::from_slice(&out).unwrap())),
        Action::Task(_) => Ok(None),
    }
}

fn answer(sh: &Shared, method: &str, params: Value) -> Result<Value, Fail> {
    let session = sh.sessions.create().unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    Ok(run(sh, &session, &body)?.expect("a direct answer"))
}

fn text(v: &Value) -> &str {
    v["content"][0]["text"].as_str().unwrap()
}

fn code_of(r: Result<Value, Fail>) -> i32 {
    r.unwrap_err().code
}

fn call_tool(sh: &Shared, name: &str, args: Value) -> Result<Value, Fail> {
    answer(sh, "tools/call", json!({"name": name, "arguments": args}))
}

#[test]
fn echo_and_add() {
    let sh = server(MockConfig::default());
    let msg = "héllo \"quoted\" \\ \n\u{1F600}";
    assert_eq!(
        text(&call_tool(&sh, "echo", json!({"message": msg})).unwrap()),
        msg
    );
    assert_eq!(
        text(&call_tool(&sh, "add", json!({"a": 2, "b": 3})).unwrap()),
        "5"
    );
    assert_eq!(
        text(&call_tool(&sh, "add", json!({"a": 1.5, "b": 1})).unwrap()),
        "2.5"
    );
    assert_eq!(
        code_of(call_tool(&sh, "echo", json!({}))),
        code::INVALID_PARAMS
    );
    assert_eq!(
        code_of(call_tool(&sh, "echo", json!({"message": 5}))),
        code::INVALID_PARAMS
    );
    assert_eq!(
        code_of(call_tool(&sh, "add", json!({"a": "2", "b": 3}))),
        code::INVALID_PARAMS
    );
    assert_eq!(
        code_of(call_tool(&sh, "echo", json!("message"))),
        code::INVALID_PARAMS
    );
}

#[test]
fn tool_names() {
    let sh = server(MockConfig::default());
    assert_eq!(
        text(&call_tool(&sh, "tool_0003", json!({})).unwrap()),
        "tool_0003 ok"
    );
    let fail = call_tool(&sh, "fail", json!({})).unwrap();
    assert_eq!(fail["isError"], true);
    assert_eq!(text(&fail), "failed on purpose");
    for unknown in ["tool_0004", "tool_3", "tool_00003", "extra_1", "nope"] {
        let err = call_tool(&sh, unknown, json!({})).unwrap_err();
        assert_eq!(err, Fail::unknown_tool(unknown));
    }
    sh.catalog.add_extra_tool();
    assert_eq!(
        text(&call_tool(&sh, "extra_1", json!({})).unwrap()),
        "extra_1 ok"
    );
    let missing = answer(&sh, "tools/call", json!({"arguments": {}}));
    assert_eq!(code_of(missing), code::INVALID_PARAMS);
}

#[test]
fn tasks_and_their_arguments() {
    let sh = server(MockConfig::default());
    let session = sh.sessions.create().unwrap();
    let call = |name: &str, args: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": args, "_meta": {"progressToken": 7}}});
        run(&sh, &session, &body)
    };
    assert!(call("progress", json!({})).unwrap().is_none());
    assert!(call("progress", json!({"steps": 5})).unwrap().is_none());
    assert_eq!(
        call("progress", json!({"steps": -1})).unwrap_err().code,
        code::INVALID_PARAMS
    );
    assert!(call("slow", json!({"ms": 1})).unwrap().is_none());
    assert_eq!(
        call("slow", json!({})).unwrap_err().code,
        code::INVALID_PARAMS
    );
    assert!(call("touch_tools", json!({})).unwrap().is_none());
}

#[test]
fn drop_session_forgets_the_caller() {
    let sh = server(MockConfig::default());
    let session = sh.sessions.create().unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "drop_session"}});
    assert_eq!(
        text(&run(&sh, &session, &body).unwrap().unwrap()),
        "dropped"
    );
    assert!(sh.sessions.get(&session.id).is_none());
}

#[test]
fn prompts_and_resources() {
    let sh = server(MockConfig {
        name: "w".into(),
        ..MockConfig::default()
    });
    let greet = answer(
        &sh,
        "prompts/get",
        json!({"name": "greet", "arguments": {"name": "Ann"}}),
    )
    .unwrap();
    assert_eq!(greet["messages"][0]["content"]["text"], "Hello, Ann!");
    assert_eq!(
        code_of(answer(&sh, "prompts/get", json!({"name": "greet"}))),
        code::INVALID_PARAMS
    );
    let p2 = answer(&sh, "prompts/get", json!({"name": "prompt_2"})).unwrap();
    assert_eq!(p2["messages"][0]["content"]["text"], "prompt 2");
    assert_eq!(
        code_of(answer(&sh, "prompts/get", json!({"name": "prompt_3"}))),
        code::INVALID_PARAMS
    );
    let res = answer(&sh, "resources/read", json!({"uri": "mock://w/res/2"})).unwrap();
    assert_eq!(
        res,
        json!({"contents": [{"uri": "mock://w/res/2", "mimeType": "text/plain", "text": "resource 2 of w"}]})
    );
    let item = answer(&sh, "resources/read", json!({"uri": "mock://w/item/a b"})).unwrap();
    assert_eq!(item["contents"][0]["text"], "item a b of w");
    for missing in [
        "mock://w/res/3",
        "mock://x/res/0",
        "mock://w/item/",
        "file:///etc",
    ] {
        let err = answer(&sh, "resources/read", json!({"uri": missing})).unwrap_err();
        assert_eq!(err.code, code::RESOURCE_NOT_FOUND, "{missing}");
    }
    assert_eq!(
        code_of(answer(&sh, "resources/read", json!({}))),
        code::INVALID_PARAMS
    );
}

#[test]
fn small_methods() {
    let sh = server(MockConfig::default());
    assert_eq!(answer(&sh, "ping", json!({})).unwrap(), json!({}));
    assert_eq!(
        answer(&sh, "logging/setLevel", json!({"level": "debug"})).unwrap(),
        json!({})
    );
    assert_eq!(
        code_of(answer(&sh, "logging/setLevel", json!({"level": "loud"}))),
        code::INVALID_PARAMS
    );
    assert_eq!(
        answer(&sh, "resources/subscribe", json!({"uri": "x"})).unwrap(),
        json!({})
    );
    assert_eq!(
        code_of(answer(&sh, "resources/unsubscribe", json!({}))),
        code::INVALID_PARAMS
    );
    let done = answer(
        &sh,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "name", "value": "a"}}),
    );
    assert_eq!(
        done.unwrap()["completion"]["values"],
        json!(["alpha", "beta"])
    );
    assert_eq!(
        code_of(answer(&sh, "tools/unknown", json!({}))),
        code::METHOD_NOT_FOUND
    );
}

#[test]
fn lists_paginate() {
    let sh = server(MockConfig {
        page_size: 4,
        ..MockConfig::default()
    });
    let first = answer(&sh, "tools/list", json!({})).unwrap();
    assert_eq!(first["tools"].as_array().unwrap().len(), 4);
    assert_eq!(first["nextCursor"], "4");
    let last = answer(&sh, "tools/list", json!({"cursor": "12"})).unwrap();
    assert_eq!(last["tools"].as_array().unwrap().len(), 2);
    assert_eq!(
        code_of(answer(&sh, "tools/list", json!({"cursor": "zzz"}))),
        code::INVALID_PARAMS
    );
    let templates = answer(&sh, "resources/templates/list", json!({})).unwrap();
    assert_eq!(
        templates["resourceTemplates"][0]["uriTemplate"],
        "mock://mock/item/{id}"
    );
    assert_eq!(
        answer(&sh, "prompts/list", json!({})).unwrap()["prompts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        answer(&sh, "resources/list", json!({})).unwrap()["resources"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn conformance_fixtures() {
    let sh = server(MockConfig {
        conformance: true,
        ..MockConfig::default()
    });
    let tools = answer(&sh, "tools/list", json!({})).unwrap();
    assert_eq!(tools["tools"].as_array().unwrap().len(), 14);
    let schema = &tools["tools"][13]["inputSchema"];
    assert_eq!(schema["$defs"]["address"]["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    let simple = answer(&sh, "tools/call", json!({"name": "test_simple_text"})).unwrap();
    assert_eq!(text(&simple), "This is a simple text response for testing.");
    let mixed = call_tool(&sh, "test_multiple_content_types", json!({})).unwrap();
    assert_eq!(
        mixed["content"][2]["resource"]["text"],
        "{\"test\":\"data\",\"value\":123}"
    );
    let audio = call_tool(&sh, "test_audio_content", json!({})).unwrap();
    assert_eq!(audio["content"][0]["mimeType"], "audio/wav");
    assert_eq!(
        call_tool(&sh, "test_error_handling", json!({})).unwrap()["isError"],
        true
    );
    let args = json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "testValue1", "arg2": "testValue2"}});
    let prompt = answer(&sh, "prompts/get", args).unwrap();
    assert_eq!(
        prompt["messages"][0]["content"]["text"],
        "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
    );
    let res = answer(
        &sh,
        "resources/read",
        json!({"uri": "test://template/123/data"}),
    )
    .unwrap();
    let data: Value = serde_json::from_str(res["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"id": "123", "templateTest": true, "data": "Data for ID: 123"})
    );
    assert!(answer(
        &sh,
        "resources/read",
        json!({"uri": "test://static-binary"})
    )
    .unwrap()["contents"][0]["blob"]
        .is_string());
    let done = answer(
        &sh,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "x"}}),
    )
    .unwrap();
    assert_eq!(done["completion"]["values"], json!([]));
}
