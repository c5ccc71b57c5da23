//! Tool calls whose answer takes time or is preceded by messages on the response stream:
//! progress and logging notifications, list changes, server→client sampling and elicitation,
//! and the conformance reconnection test.

use std::borrow::Cow;
use std::time::Duration;

use monoio::time::{sleep, timeout};
use ringmux_core::jsonrpc::{write_str, Raw};
use serde_json::Value;

use super::dispatch::{Call, Fail};
use super::emit::Emitter;
use super::fixtures::{ELICIT_DEFAULTS, ELICIT_ENUMS, ELICIT_USER};
use super::tools::text_result;
use super::Shared;

/// Between two `progress` steps: long enough that events visibly arrive one by one.
const STEP_DELAY: Duration = Duration::from_millis(10);
/// Between the conformance tools' notifications (the reference server's pacing).
const CONFORMANCE_DELAY: Duration = Duration::from_millis(50);
/// How long `test_reconnection` keeps working after closing its stream.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// How long a server→client request waits for the client's answer (the SDK's own default
/// request timeout).
const ASK_TIMEOUT: Duration = Duration::from_secs(60);

const LIST_CHANGED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;

/// Which elicitation a conformance tool asks for.
pub(crate) enum Elicit<'a> {
    /// `test_elicitation`: username and email, with the caller's message.
    User { message: Cow<'a, str> },
    /// `test_elicitation_sep1034_defaults`.
    Defaults,
    /// `test_elicitation_sep1330_enums`.
    Enums,
}

/// A tool call that finishes asynchronously.
pub(crate) enum Task<'a> {
    /// `progress`: one `notifications/progress` per step (when there is a token), then "done".
    Progress { steps: u64, token: Option<Raw<'a>> },
    /// `slow`: sleep, then "slept".
    Slow { ms: u64 },
    /// `touch_tools`: add a tool, announce the change, then "touched".
    Touch,
    /// `rug_pull`: redefine `echo`, announce the change, then "redefined".
    RugPull,
    /// `test_tool_with_logging`: three info log messages.
    Logging,
    /// `test_tool_with_progress`: progress 0, 50, 100 of 100.
    Percent { token: Option<Raw<'a>> },
    /// `test_sampling`.
    Sampling { prompt: Cow<'a, str> },
    /// `test_elicitation*`.
    Elicit(Elicit<'a>),
    /// `test_reconnection`: end the POST stream early; the answer is only replayed.
    Reconnection,
    /// `log_levels`: one `notifications/message` at each of debug, info, warning, error.
    LogLevels,
    /// `ask_roots`: `roots/list` on the session's GET stream; the roots are the answer.
    AskRoots,
    /// `garbage` (`--faults`): a message that is not JSON-RPC, then "survived".
    Garbage,
    /// `cut_stream` (`--faults`): a log message, then the stream ends without the answer and
    /// without an event id to resume from; the answer is never sent.
    Cut,
}

impl Task<'_> {
    /// Whether messages precede the result, so the answer should be an SSE stream (when the
    /// client accepts one). `json_only` keeps `touch_tools` on JSON: its notification also
    /// reaches the GET streams.
    pub fn streams(&self, json_only: bool) -> bool {
        match self {
            Task::Progress { token, .. } => token.is_some(),
            Task::Slow { .. } => false,
            Task::Touch | Task::RugPull => !json_only,
            Task::Logging
            | Task::Percent { .. }
            | Task::Sampling { .. }
            | Task::Elicit(_)
            | Task::Reconnection
            | Task::LogLevels
            | Task::Garbage
            | Task::Cut => true,
            Task::AskRoots => false,
        }
    }
}

/// Runs `task`, sending its messages through `em`, and appends the tool result to `out`.
pub(crate) async fn run(
    task: Task<'_>,
    sh: &Shared,
    call: &Call<'_>,
    em: &mut Emitter<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Fail> {
    match task {
        Task::Progress { steps, token } => {
            for i in 1..=steps {
                if i > 1 {
                    sleep(STEP_DELAY).await;
                }
                if let Some(token) = token {
                    em.send(&progress(token, i, steps)).await;
                }
            }
            text_result(out, "done", false);
        }
        Task::Slow { ms } => {
            sleep(Duration::from_millis(ms)).await;
            text_result(out, "slept", false);
        }
        Task::RugPull => {
            sh.catalog.redefine_tool("echo", super::tools::ECHO_PULLED);
            sh.sessions.notify_all(LIST_CHANGED);
            if call.modern {
                sh.stateless.notify(&LIST_CHANGED.into());
            } else {
                em.send(LIST_CHANGED).await;
            }
            text_result(out, "redefined", false);
        }
        Task::Touch => {
            sh.catalog.add_extra_tool();
            sh.sessions.notify_all(LIST_CHANGED);
            if call.modern {
                // The era's list changes travel on subscriptions/listen streams only.
                sh.stateless.notify(&LIST_CHANGED.into());
            } else {
                em.send(LIST_CHANGED).await;
            }
            text_result(out, "touched", false);
        }
        Task::Logging => {
            let steps = [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ];
            for (i, data) in steps.into_iter().enumerate() {
                if i > 0 {
                    sleep(CONFORMANCE_DELAY).await;
                }
                let mut msg = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"conformance-test-server","data":"#.to_vec();
                write_str(&mut msg, data);
                msg.extend_from_slice(b"}}");
                em.send(&msg).await;
            }
            text_result(out, "Tool with logging executed successfully", false);
        }
        Task::Percent { token } => {
            for (i, p) in [0, 50, 100].into_iter().enumerate() {
                if i > 0 {
                    sleep(CONFORMANCE_DELAY).await;
                }
                if let Some(token) = token {
                    em.send(&progress(token, p, 100)).await;
                }
            }
            let text = token.map_or(Cow::Borrowed("no progress token"), |t| {
                ringmux_core::jsonrpc::raw_str(t).unwrap_or(Cow::Borrowed(t.get()))
            });
            text_result(out, &text, false);
        }
        Task::Sampling { prompt } => {
            let mut params =
                br#"{"messages":[{"role":"user","content":{"type":"text","text":"#.to_vec();
            write_str(&mut params, &prompt);
            params.extend_from_slice(br#"}}],"maxTokens":100}"#);
            let result = ask(call, em, "sampling/createMessage", &params).await?;
            let text = result["content"]["text"]
                .as_str()
                .or_else(|| result["message"]["content"]["text"].as_str())
                .unwrap_or("No response");
            text_result(out, &format!("LLM response: {text}"), false);
        }
        Task::Elicit(kind) => {
            let mut params = b"{".to_vec();
            match &kind {
                Elicit::User { message } => {
                    params.extend_from_slice(b"\"message\":");
                    write_str(&mut params, message);
                    params.push(b',');
                    params.extend_from_slice(ELICIT_USER.as_bytes());
                }
                Elicit::Defaults => params.extend_from_slice(ELICIT_DEFAULTS.as_bytes()),
                Elicit::Enums => params.extend_from_slice(ELICIT_ENUMS.as_bytes()),
            }
            params.push(b'}');
            let result = ask(call, em, "elicitation/create", &params).await?;
            let action = result["action"].as_str().unwrap_or("unknown");
            let content = match result.get("content") {
                Some(c) => c.to_string(),
                None => "{}".to_string(),
            };
            let lead = match kind {
                Elicit::User { .. } => "User response",
                Elicit::Defaults | Elicit::Enums => "Elicitation completed",
            };
            text_result(
                out,
                &format!("{lead}: action={action}, content={content}"),
                false,
            );
        }
        Task::LogLevels => {
            for level in ["debug", "info", "warning", "error"] {
                let msg = format!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"{level}","logger":"mock","data":"at {level}"}}}}"#
                );
                em.send(msg.as_bytes()).await;
            }
            text_result(out, "logged", false);
        }
        Task::AskRoots if call.modern => {
            let roots = ask(call, em, "roots/list", b"{}").await?;
            text_result(out, &roots.to_string(), false);
        }
        Task::AskRoots => {
            let (n, id, answer) = call.session.ask();
            let msg = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"roots/list"}}"#);
            call.session.notify(&msg.into_bytes().into());
            let body = match timeout(ASK_TIMEOUT, answer).await {
                Ok(Ok(body)) => body,
                _ => {
                    call.session.forget(n);
                    return Err(Fail::internal("the client did not answer roots/list"));
                }
            };
            let response: Value = serde_json::from_slice(&body)
                .map_err(|e| Fail::internal(format!("unreadable roots/list answer: {e}")))?;
            text_result(out, &response["result"].to_string(), false);
        }
        Task::Garbage => {
            em.send(b"this line is not JSON-RPC {").await;
            text_result(out, "survived", false);
        }
        Task::Cut => {
            em.send(br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","data":"cutting the stream"}}"#).await;
            em.end_early().await;
            // Never answered: the answer would only go to a replay log, which this stream
            // has none of.
            return Err(Fail::internal("cut"));
        }
        Task::Reconnection => {
            em.end_early().await;
            sleep(RECONNECT_DELAY).await;
            text_result(out, "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.", false);
        }
    }
    Ok(())
}

/// `notifications/progress` for `token`.
fn progress(token: Raw<'_>, progress: u64, total: u64) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{},"progress":{progress},"total":{total}}}}}"#,
        token.get()
    )
    .into_bytes()
}

/// Sends a server→client request on the call's stream and waits for the client's answer
/// (POSTed on another connection, routed through the session). Returns its `result`.
async fn ask(
    call: &Call<'_>,
    em: &mut Emitter<'_>,
    method: &str,
    params: &[u8],
) -> Result<Value, Fail> {
    if call.modern {
        return ask_inline(call, method, params);
    }
    if !em.streaming() {
        return Err(Fail::internal(format!(
            "{method} needs an SSE response; send Accept: text/event-stream"
        )));
    }
    let (n, id, answer) = call.session.ask();
    let mut msg = br#"{"jsonrpc":"2.0","id":"#.to_vec();
    msg.extend_from_slice(id.as_bytes());
    msg.extend_from_slice(br#","method":"#);
    write_str(&mut msg, method);
    msg.extend_from_slice(br#","params":"#);
    msg.extend_from_slice(params);
    msg.push(b'}');
    em.send(&msg).await;
    let body = match timeout(ASK_TIMEOUT, answer).await {
        Ok(Ok(body)) => body,
        _ => {
            call.session.forget(n);
            return Err(Fail::internal(format!(
                "the client did not answer {method}"
            )));
        }
    };
    let mut response: Value = serde_json::from_slice(&body)
        .map_err(|e| Fail::internal(format!("unreadable answer to {method}: {e}")))?;
    if let Some(error) = response.get("error") {
        return Err(Fail::internal(format!(
            "the client answered {method} with an error: {error}"
        )));
    }
    Ok(response["result"].take())
}

#[derive(serde::Deserialize, Default)]
struct Retry {
    #[serde(rename = "inputResponses", default)]
    input_responses: Option<serde_json::Map<String, Value>>,
    #[serde(rename = "requestState", default)]
    request_state: Option<String>,
}

/// A server→client request of the 2026-07-28 era: the first call ends `input_required`; the
/// retry carries the answer under the request's key, with the `requestState` echoed.
fn ask_inline(call: &Call<'_>, method: &str, params: &[u8]) -> Result<Value, Fail> {
    let key = match method {
        "sampling/createMessage" => "sampling",
        "elicitation/create" => "elicitation",
        "roots/list" => "roots",
        other => other,
    };
    let state = format!("mock-state:{key}");
    let retry: Retry = call.params()?;
    if let Some(mut answers) = retry.input_responses {
        if retry.request_state.as_deref() != Some(state.as_str()) {
            return Err(Fail::params("requestState was not echoed"));
        }
        return answers
            .remove(key)
            .ok_or_else(|| Fail::params(format!("inputResponses has no {key:?}")));
    }
    let mut result = br#"{"resultType":"input_required","inputRequests":{"#.to_vec();
    write_str(&mut result, key);
    result.extend_from_slice(br#":{"method":"#);
    write_str(&mut result, method);
    result.extend_from_slice(br#","params":"#);
    result.extend_from_slice(params);
    result.extend_from_slice(br#"}},"requestState":"#);
    write_str(&mut result, &state);
    result.push(b'}');
    Err(Fail::input_required(
        String::from_utf8(result).expect("UTF-8 in, UTF-8 out"),
    ))
}
