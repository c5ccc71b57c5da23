//! The fixtures of the `@modelcontextprotocol/conformance` 0.1.13 server scenarios, as the
//! suite's reference "everything" server defines them: tools `test_*` and
//! `json_schema_2020_12_tool`, resources `test://…`, prompts `test_*`, and completion.

use std::borrow::Cow;

use ringmux_core::jsonrpc::write_str;
use serde::Deserialize;

use super::dispatch::{Action, Call, Fail};
use super::tasks::{Elicit, Task};
use super::tools::text_result;

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

const TOOLS: &[&str] = &[
    r#"{"name":"test_simple_text","description":"Tests simple text content response","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_image_content","description":"Tests image content response","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_audio_content","description":"Tests audio content response","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_embedded_resource","description":"Tests embedded resource content response","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_multiple_content_types","description":"Tests response with multiple content types (text, image, resource)","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_tool_with_logging","description":"Tests tool that emits log messages during execution","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_tool_with_progress","description":"Tests tool that reports progress notifications","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_error_handling","description":"Tests error response handling","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_reconnection","description":"Tests SSE stream disconnection and client reconnection (SEP-1699)","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_sampling","description":"Tests server-initiated sampling (LLM completion request)","inputSchema":{"type":"object","properties":{"prompt":{"type":"string","description":"The prompt to send to the LLM"}},"required":["prompt"]}}"#,
    r#"{"name":"test_elicitation","description":"Tests server-initiated elicitation (user input request)","inputSchema":{"type":"object","properties":{"message":{"type":"string","description":"The message to show the user"}},"required":["message"]}}"#,
    r#"{"name":"test_elicitation_sep1034_defaults","description":"Tests elicitation with default values per SEP-1034","inputSchema":{"type":"object","properties":{}}}"#,
    r#"{"name":"test_elicitation_sep1330_enums","description":"Tests elicitation with enum schema improvements per SEP-1330","inputSchema":{"type":"object","properties":{}}}"#,
    r##"{"name":"json_schema_2020_12_tool","description":"Tool with JSON Schema 2020-12 features","inputSchema":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","$defs":{"address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}}}},"properties":{"name":{"type":"string"},"address":{"$ref":"#/$defs/address"}},"additionalProperties":false}}"##,
];

const RESOURCES: &[&str] = &[
    r#"{"uri":"test://static-text","name":"static-text","title":"Static Text Resource","description":"A static text resource for testing","mimeType":"text/plain"}"#,
    r#"{"uri":"test://static-binary","name":"static-binary","title":"Static Binary Resource","description":"A static binary resource (image) for testing","mimeType":"image/png"}"#,
    r#"{"uri":"test://watched-resource","name":"watched-resource","title":"Watched Resource","description":"A resource that can be subscribed to","mimeType":"text/plain"}"#,
];

const TEMPLATES: &[&str] = &[
    r#"{"uriTemplate":"test://template/{id}/data","name":"template","title":"Resource Template","description":"A resource template with parameter substitution","mimeType":"application/json"}"#,
];

const PROMPTS: &[&str] = &[
    r#"{"name":"test_simple_prompt","title":"Simple Test Prompt","description":"A simple prompt without arguments"}"#,
    r#"{"name":"test_prompt_with_arguments","title":"Prompt With Arguments","description":"A prompt with required arguments","arguments":[{"name":"arg1","description":"First test argument","required":true},{"name":"arg2","description":"Second test argument","required":true}]}"#,
    r#"{"name":"test_prompt_with_embedded_resource","title":"Prompt With Embedded Resource","description":"A prompt that includes an embedded resource","arguments":[{"name":"resourceUri","description":"URI of the resource to embed","required":true}]}"#,
    r#"{"name":"test_prompt_with_image","title":"Prompt With Image","description":"A prompt that includes image content"}"#,
];

pub(crate) const COMPLETION: &[u8] = br#"{"completion":{"values":[],"total":0,"hasMore":false}}"#;

/// `elicitation/create` params of `test_elicitation` (the message is spliced in front).
pub(crate) const ELICIT_USER: &str = r#""requestedSchema":{"type":"object","properties":{"username":{"type":"string","description":"User's response"},"email":{"type":"string","description":"User's email address"}},"required":["username","email"]}"#;

pub(crate) const ELICIT_DEFAULTS: &str = r#""message":"Please review and update the form fields with defaults","requestedSchema":{"type":"object","properties":{"name":{"type":"string","description":"User name","default":"John Doe"},"age":{"type":"integer","description":"User age","default":30},"score":{"type":"number","description":"User score","default":95.5},"status":{"type":"string","description":"User status","enum":["active","inactive","pending"],"default":"active"},"verified":{"type":"boolean","description":"Verification status","default":true}},"required":[]}"#;

pub(crate) const ELICIT_ENUMS: &str = r#""message":"Please select options from the enum fields","requestedSchema":{"type":"object","required":[],"properties":{"untitledSingle":{"type":"string","description":"Select one option","enum":["option1","option2","option3"]},"titledSingle":{"type":"string","description":"Select one option with titles","oneOf":[{"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"},{"const":"value3","title":"Third Option"}]},"legacyEnum":{"type":"string","description":"Select one option (legacy)","enum":["opt1","opt2","opt3"],"enumNames":["Option One","Option Two","Option Three"]},"untitledMulti":{"type":"array","description":"Select multiple options","minItems":1,"maxItems":3,"items":{"type":"string","enum":["option1","option2","option3"]}},"titledMulti":{"type":"array","description":"Select multiple options with titles","minItems":1,"maxItems":3,"items":{"anyOf":[{"const":"value1","title":"First Choice"},{"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}}}"#;

fn items(list: &[&str]) -> Vec<Box<[u8]>> {
    list.iter().map(|i| i.as_bytes().into()).collect()
}

pub(crate) fn tools() -> Vec<Box<[u8]>> {
    items(TOOLS)
}

pub(crate) fn resources() -> Vec<Box<[u8]>> {
    items(RESOURCES)
}

pub(crate) fn templates() -> Vec<Box<[u8]>> {
    items(TEMPLATES)
}

pub(crate) fn prompts() -> Vec<Box<[u8]>> {
    items(PROMPTS)
}

#[derive(Deserialize)]
struct PromptArg<'a> {
    #[serde(borrow)]
    prompt: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MessageArg<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
}

pub(crate) fn call_tool<'a>(
    name: &str,
    call: &Call<'a>,
    out: &mut Vec<u8>,
) -> Result<Action<'a>, Fail> {
    let content: Cow<'static, str> = match name {
        "test_simple_text" => {
            text_result(out, "This is a simple text response for testing.", false);
            return Ok(Action::Done);
        }
        "test_image_content" => {
            format!(r#"[{{"type":"image","data":"{PNG}","mimeType":"image/png"}}]"#).into()
        }
        "test_audio_content" => {
            format!(r#"[{{"type":"audio","data":"{WAV}","mimeType":"audio/wav"}}]"#).into()
        }
        "test_embedded_resource" => {
            r#"[{"type":"resource","resource":{"uri":"test://embedded-resource","mimeType":"text/plain","text":"This is an embedded resource content."}}]"#.into()
        }
        "test_multiple_content_types" => format!(
            r#"[{{"type":"text","text":"Multiple content types test:"}},{{"type":"image","data":"{PNG}","mimeType":"image/png"}},{{"type":"resource","resource":{{"uri":"test://mixed-content-resource","mimeType":"application/json","text":"{{\"test\":\"data\",\"value\":123}}"}}}}]"#
        )
        .into(),
        "test_error_handling" => {
            text_result(out, "This tool intentionally returns an error for testing", true);
            return Ok(Action::Done);
        }
        "json_schema_2020_12_tool" => {
            let args = call.raw_args()?;
            let args: serde_json::Value = serde_json::from_str(args)
                .map_err(|e| Fail::params(format!("Invalid arguments: {e}")))?;
            let text = format!("JSON Schema 2020-12 tool called with: {args}");
            text_result(out, &text, false);
            return Ok(Action::Done);
        }
        "test_tool_with_logging" => return Ok(Action::Task(Task::Logging)),
        "test_tool_with_progress" => {
            let token = call.progress_token();
            return Ok(Action::Task(Task::Percent { token }));
        }
        "test_reconnection" => return Ok(Action::Task(Task::Reconnection)),
        "test_sampling" => {
            let prompt = call.args::<PromptArg>()?.prompt;
            return Ok(Action::Task(Task::Sampling { prompt }));
        }
        "test_elicitation" => {
            let message = call.args::<MessageArg>()?.message;
            return Ok(Action::Task(Task::Elicit(Elicit::User { message })));
        }
        "test_elicitation_sep1034_defaults" => {
            return Ok(Action::Task(Task::Elicit(Elicit::Defaults)))
        }
        "test_elicitation_sep1330_enums" => return Ok(Action::Task(Task::Elicit(Elicit::Enums))),
        _ => return Err(Fail::unknown_tool(name)),
    };
    out.extend_from_slice(b"{\"content\":");
    out.extend_from_slice(content.as_bytes());
    out.push(b'}');
    Ok(Action::Done)
}

#[derive(Deserialize, Default)]
struct PromptArgs<'a> {
    #[serde(borrow, default)]
    arg1: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arg2: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "resourceUri")]
    resource_uri: Option<Cow<'a, str>>,
}

fn user_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(br#"{"role":"user","content":{"type":"text","text":"#);
    write_str(out, text);
    out.extend_from_slice(b"}}");
}

pub(crate) fn get_prompt(name: &str, call: &Call<'_>, out: &mut Vec<u8>) -> Result<(), Fail> {
    out.extend_from_slice(br#"{"messages":["#);
    match name {
        "test_simple_prompt" => user_text(out, "This is a simple prompt for testing."),
        "test_prompt_with_arguments" => {
            let args = call.args::<PromptArgs>()?;
            let (Some(arg1), Some(arg2)) = (args.arg1, args.arg2) else {
                return Err(Fail::params("arguments arg1 and arg2 are required"));
            };
            user_text(
                out,
                &format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
            );
        }
        "test_prompt_with_embedded_resource" => {
            let Some(uri) = call.args::<PromptArgs>()?.resource_uri else {
                return Err(Fail::params("argument resourceUri is required"));
            };
            out.extend_from_slice(
                br#"{"role":"user","content":{"type":"resource","resource":{"uri":"#,
            );
            write_str(out, &uri);
            out.extend_from_slice(
                br#","mimeType":"text/plain","text":"Embedded resource content for testing."}}},"#,
            );
            user_text(out, "Please process the embedded resource above.");
        }
        "test_prompt_with_image" => {
            out.extend_from_slice(
                format!(r#"{{"role":"user","content":{{"type":"image","data":"{PNG}","mimeType":"image/png"}}}},"#)
                    .as_bytes(),
            );
            user_text(out, "Please analyze the image above.");
        }
        _ => return Err(Fail::unknown_prompt(name)),
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

pub(crate) fn read_resource(uri: &str, out: &mut Vec<u8>) -> Result<(), Fail> {
    let (mime, member, value): (&str, &str, Cow<'_, str>) = match uri {
        "test://static-text" => (
            "text/plain",
            "text",
            "This is the content of the static text resource.".into(),
        ),
        "test://static-binary" => ("image/png", "blob", PNG.into()),
        "test://watched-resource" => ("text/plain", "text", "Watched resource content".into()),
        _ => {
            let id = uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .ok_or_else(|| Fail::unknown_resource(uri))?;
            let data = serde_json::json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            ("application/json", "text", data.to_string().into())
        }
    };
    out.extend_from_slice(br#"{"contents":[{"uri":"#);
    write_str(out, uri);
    out.extend_from_slice(br#","mimeType":""#);
    out.extend_from_slice(mime.as_bytes());
    out.extend_from_slice(b"\",\"");
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(b"\":");
    write_str(out, &value);
    out.extend_from_slice(b"}]}");
    Ok(())
}
