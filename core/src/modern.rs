//! What a 2026-07-28 request carries beyond what the hot-path parser ([`crate::jsonrpc`])
//! reads: `params._meta`'s protocol version, client capabilities, client info and log level,
//! and the era's `arguments`, `requestState`, `inputResponses` and `notifications`. Parsed
//! once per request, by its front.

use serde_json::value::RawValue;

use crate::jsonrpc::Raw;

#[derive(serde::Deserialize, Default)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    params: Option<EnvelopeParams<'a>>,
}

/// A request's `params`, as far as the era's own members go.
#[derive(serde::Deserialize, Default)]
pub struct EnvelopeParams<'a> {
    #[serde(rename = "_meta", borrow, default)]
    pub meta: Option<EnvelopeMeta<'a>>,
    #[serde(borrow, default)]
    pub arguments: Option<&'a RawValue>,
    #[serde(rename = "requestState", borrow, default)]
    pub request_state: Option<&'a RawValue>,
    #[serde(rename = "inputResponses", borrow, default)]
    pub input_responses: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub notifications: Option<&'a RawValue>,
}

/// `params._meta`'s era members.
#[derive(serde::Deserialize, Default)]
pub struct EnvelopeMeta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    pub protocol_version: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    pub client_capabilities: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    pub client_info: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/logLevel", borrow, default)]
    pub log_level: Option<&'a RawValue>,
}

impl<'a> EnvelopeParams<'a> {
    /// The era's members of `body` (a message [`crate::jsonrpc::parse`] accepted); empty when
    /// `params` is not an object of the expected shape.
    pub fn of(body: &'a [u8]) -> EnvelopeParams<'a> {
        serde_json::from_slice::<Envelope<'a>>(body)
            .ok()
            .and_then(|e| e.params)
            .unwrap_or_default()
    }

    /// One of `_meta`'s era members.
    pub fn meta(
        &self,
        pick: impl Fn(&EnvelopeMeta<'a>) -> Option<&'a RawValue>,
    ) -> Option<Raw<'a>> {
        self.meta.as_ref().and_then(pick).map(Raw::from)
    }
}
