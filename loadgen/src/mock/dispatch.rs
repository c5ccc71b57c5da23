//! The one table from MCP method to handler. A handler appends its result to the response
//! (whose `{"jsonrpc":"2.0","id":…,"result":` prefix is already written) and either is done
//! or hands back a [`Task`] for answers that take time or send messages first.

use std::borrow::Cow;
use std::sync::Arc;

use ringmux_core::error::code;
use ringmux_core::jsonrpc::{raw_str, write_error_parts, Message, Raw, LOG_LEVELS};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::session::Session;
use super::tasks::Task;
use super::{fixtures, tools, Shared};

/// [`Fail::code`] of an `input_required` result (no JSON-RPC error uses it).
const INPUT_REQUIRED: i32 = 1;

/// A JSON-RPC error answer, with the exact message the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub code: i32,
    pub message: Cow<'static, str>,
}

impl Fail {
    pub fn params(message: impl Into<Cow<'static, str>>) -> Self {
        Fail {
            code: code::INVALID_PARAMS,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Fail {
            code: code::INTERNAL_ERROR,
            message: message.into(),
        }
    }

    /// Not an error: a 2026-07-28 `input_required` result (its JSON), which ends the call the
    /// same way (the client retries with the answers).
    pub fn input_required(result: String) -> Self {
        Fail {
            code: INPUT_REQUIRED,
            message: result.into(),
        }
    }

    pub fn is_input_required(&self) -> bool {
        self.code == INPUT_REQUIRED
    }

    pub fn unknown_tool(name: &str) -> Self {
        Fail::params(format!("Unknown tool: {name}"))
    }

    pub fn unknown_prompt(name: &str) -> Self {
        Fail::params(format!("Unknown prompt: {name}"))
    }

    pub fn unknown_resource(uri: &str) -> Self {
        Fail {
            code: code::RESOURCE_NOT_FOUND,
            message: format!("Resource not found: {uri}").into(),
        }
    }

    /// Writes the whole error response.
    pub fn write(&self, out: &mut Vec<u8>, id: Option<Raw<'_>>) {
        write_error_parts(out, id, self.code, &self.message, None);
    }
}

/// What a handler produced.
pub(crate) enum Action<'a> {
    /// The result is complete.
    Done,
    /// The result comes from running this task.
    Task(Task<'a>),
}

/// One request being answered.
pub(crate) struct Call<'a> {
    pub msg: &'a Message<'a>,
    /// The whole request body, for the params the envelope parser does not pick out.
    pub body: &'a [u8],
    pub session: &'a Arc<Session>,
    /// A 2026-07-28 request: server→client requests go out as `input_required`.
    pub modern: bool,
    /// The request's `traceparent` and `tracestate` headers.
    pub traceparent: Option<&'a [u8]>,
    pub tracestate: Option<&'a [u8]>,
}

/// `{"params": T}`: a second, targeted parse of the body.
#[derive(Deserialize)]
struct ParamsOf<T> {
    params: Option<T>,
}

#[derive(Deserialize, Default)]
struct ArgumentsOnly<'a> {
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct LevelOnly<'a> {
    #[serde(borrow)]
    level: Option<Cow<'a, str>>,
}

impl<'a> Call<'a> {
    /// `params.name` as a string.
    pub fn name(&self) -> Result<Cow<'a, str>, Fail> {
        self.msg
            .params
            .name
            .and_then(raw_str)
            .ok_or_else(|| Fail::params("params.name must be a string"))
    }

    /// `params.uri` as a string.
    pub fn uri(&self) -> Result<Cow<'a, str>, Fail> {
        self.msg
            .params
            .uri
            .and_then(raw_str)
            .ok_or_else(|| Fail::params("params.uri must be a string"))
    }

    /// `params._meta.progressToken`, raw.
    pub fn progress_token(&self) -> Option<Raw<'a>> {
        self.msg.params.meta.as_ref()?.progress_token
    }

    /// `params` decoded as `T` (absent params: `T::default()`).
    pub fn params<T: Deserialize<'a> + Default>(&self) -> Result<T, Fail> {
        match serde_json::from_slice::<ParamsOf<T>>(self.body) {
            Ok(p) => Ok(p.params.unwrap_or_default()),
            Err(e) => Err(Fail::params(format!("Invalid params: {e}"))),
        }
    }

    /// `params.arguments` decoded as `T`; absent or null arguments are `{}`.
    pub fn args<T: Deserialize<'a>>(&self) -> Result<T, Fail> {
        let raw = self.params::<ArgumentsOnly<'a>>()?.arguments;
        let text = raw.map_or("{}", RawValue::get);
        serde_json::from_str(text).map_err(|e| Fail::params(format!("Invalid arguments: {e}")))
    }

    /// `params.arguments` as raw JSON (`{}` when absent).
    pub fn raw_args(&self) -> Result<&'a str, Fail> {
        let raw = self.params::<ArgumentsOnly<'a>>()?.arguments;
        Ok(raw.map_or("{}", RawValue::get))
    }
}

type Handler = for<'a> fn(&Shared, &Call<'a>, &mut Vec<u8>) -> Result<Action<'a>, Fail>;

/// Every method the mock answers (`initialize` is handled by the connection, which mints the
/// session).
const METHODS: &[(&str, Handler)] = &[
    ("ping", empty),
    ("logging/setLevel", set_level),
    ("resources/subscribe", subscription),
    ("resources/unsubscribe", subscription),
    ("tools/list", tools_list),
    ("prompts/list", prompts_list),
    ("resources/list", resources_list),
    ("resources/templates/list", templates_list),
    ("tools/call", tools_call),
    ("prompts/get", prompts_get),
    ("resources/read", resources_read),
    ("completion/complete", complete),
];

/// Answers `method`.
pub(crate) fn dispatch<'a>(
    sh: &Shared,
    method: &str,
    call: &Call<'a>,
    out: &mut Vec<u8>,
) -> Result<Action<'a>, Fail> {
    match METHODS.iter().find(|(m, _)| *m == method) {
        Some((_, handler)) => handler(sh, call, out),
        None => Err(Fail {
            code: code::METHOD_NOT_FOUND,
            message: format!("Method not found: {method}").into(),
        }),
    }
}

fn empty<'a>(_: &Shared, _: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    out.extend_from_slice(b"{}");
    Ok(Action::Done)
}

fn set_level<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    match call.params::<LevelOnly<'_>>()?.level {
        Some(level) if LOG_LEVELS.contains(&&*level) => empty(sh, call, out),
        _ => Err(Fail::params(format!(
            "params.level must be one of {}",
            LOG_LEVELS.join(", ")
        ))),
    }
}

fn subscription<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    call.uri()?;
    empty(sh, call, out)
}

fn tools_list<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    let tools = sh.catalog.tools.read().unwrap_or_else(|e| e.into_inner());
    tools.list.page(call.msg.params.cursor, out)?;
    Ok(Action::Done)
}

fn prompts_list<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    sh.catalog.prompts.page(call.msg.params.cursor, out)?;
    Ok(Action::Done)
}

fn resources_list<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    sh.catalog.resources.page(call.msg.params.cursor, out)?;
    Ok(Action::Done)
}

fn templates_list<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    sh.catalog.templates.page(call.msg.params.cursor, out)?;
    Ok(Action::Done)
}

fn tools_call<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    let name = call.name()?;
    if sh.cfg.conformance {
        fixtures::call_tool(&name, call, out)
    } else {
        tools::call_tool(sh, &name, call, out)
    }
}

fn prompts_get<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    let name = call.name()?;
    if sh.cfg.conformance {
        fixtures::get_prompt(&name, call, out)?;
    } else {
        tools::get_prompt(sh, &name, call, out)?;
    }
    Ok(Action::Done)
}

fn resources_read<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    let uri = call.uri()?;
    if sh.cfg.conformance {
        fixtures::read_resource(&uri, out)?;
    } else {
        tools::read_resource(sh, &uri, out)?;
    }
    Ok(Action::Done)
}

fn complete<'a>(sh: &Shared, call: &Call<'a>, out: &mut Vec<u8>) -> Result<Action<'a>, Fail> {
    if call.msg.params.reference.is_none() {
        return Err(Fail::params("params.ref must be an object"));
    }
    out.extend_from_slice(if sh.cfg.conformance {
        fixtures::COMPLETION
    } else {
        tools::COMPLETION
    });
    Ok(Action::Done)
}

#[cfg(test)]
mod tests;
