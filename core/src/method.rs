//! The method table: one entry per MCP method ringmux serves, with every property the gateway
//! decides by (which eras have it, how it routes, whether its result is cacheable or may ask
//! the client for input, which param the `Mcp-Name` header repeats, whether its result carries
//! resource URIs). Every part of the gateway that branches on a method name reads it from here.

use crate::catalog::ListKind;

/// What names a routed request's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteBy {
    /// `params.name`, a tool's merged name.
    Tool,
    /// `params.name`, a prompt's merged name.
    Prompt,
    /// `params.uri`, a resource's URI as the client knows it.
    Resource,
    /// `params.ref` (a prompt name or a resource template URI).
    CompletionRef,
}

/// Where a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Answered by ringmux itself.
    Local(Local),
    /// Every backend's list, merged and paginated by ringmux.
    List(ListKind),
    /// Sent to the one backend that owns the named item.
    Routed(RouteBy),
}

/// The methods ringmux answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    Initialize,
    Discover,
    Ping,
    SetLevel,
    Listen,
}

/// Which param the 2026-07-28 `Mcp-Name` header repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameParam {
    Name,
    Uri,
}

/// One MCP request method.
#[derive(Debug)]
pub struct Method {
    pub name: &'static str,
    /// Exists in the stateful era (2024-11-05 … 2025-11-25).
    pub stateful: bool,
    /// Exists in the sessionless era (2026-07-28).
    pub sessionless: bool,
    pub handler: Handler,
    /// Its 2026-07-28 result carries `ttlMs` and `cacheScope`.
    pub cacheable: bool,
    /// Its 2026-07-28 result may be `input_required` (the server asks the client first).
    pub may_need_input: bool,
    /// The param the `Mcp-Name` header repeats (2026-07-28).
    pub name_header: Option<NameParam>,
    /// Its result may hold resource URIs (resource links, embedded resources, read contents),
    /// which a prefixed backend's answer must carry as the client knows them.
    pub uris_in_result: bool,
}

const fn method(name: &'static str, handler: Handler) -> Method {
    Method {
        name,
        stateful: true,
        sessionless: true,
        handler,
        cacheable: false,
        may_need_input: false,
        name_header: None,
        uris_in_result: false,
    }
}

const fn stateful_only(m: Method) -> Method {
    Method {
        sessionless: false,
        ..m
    }
}

const fn sessionless_only(m: Method) -> Method {
    Method {
        stateful: false,
        ..m
    }
}

const fn cacheable(m: Method) -> Method {
    Method {
        cacheable: true,
        ..m
    }
}

/// A routed call: it may ask the client for input, its result may carry URIs, and the
/// `Mcp-Name` header repeats `param`.
const fn call(m: Method, param: NameParam) -> Method {
    Method {
        may_need_input: true,
        uris_in_result: true,
        name_header: Some(param),
        ..m
    }
}

use Handler::{List, Local as L, Routed};

/// Every request method, the hottest first (lookup is a scan).
pub static METHODS: &[Method] = &[
    call(method("tools/call", Routed(RouteBy::Tool)), NameParam::Name),
    cacheable(method("tools/list", List(ListKind::Tools))),
    cacheable(call(
        method("resources/read", Routed(RouteBy::Resource)),
        NameParam::Uri,
    )),
    call(
        method("prompts/get", Routed(RouteBy::Prompt)),
        NameParam::Name,
    ),
    cacheable(method("prompts/list", List(ListKind::Prompts))),
    cacheable(method("resources/list", List(ListKind::Resources))),
    cacheable(method(
        "resources/templates/list",
        List(ListKind::ResourceTemplates),
    )),
    method("completion/complete", Routed(RouteBy::CompletionRef)),
    stateful_only(method("ping", L(Local::Ping))),
    stateful_only(method("initialize", L(Local::Initialize))),
    method("server/discover", L(Local::Discover)),
    stateful_only(method("logging/setLevel", L(Local::SetLevel))),
    stateful_only(method("resources/subscribe", Routed(RouteBy::Resource))),
    stateful_only(method("resources/unsubscribe", Routed(RouteBy::Resource))),
    sessionless_only(method("subscriptions/listen", L(Local::Listen))),
];

/// The entry for `name`, if ringmux serves it in some era.
pub fn lookup(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// The list a `notifications/*/list_changed` is about.
pub fn changed_list(notification: &str) -> Option<ListKind> {
    Some(match notification {
        "notifications/tools/list_changed" => ListKind::Tools,
        "notifications/prompts/list_changed" => ListKind::Prompts,
        "notifications/resources/list_changed" => ListKind::Resources,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_once_and_every_list_routed_to_its_kind() {
        for (i, m) in METHODS.iter().enumerate() {
            assert!(
                METHODS[..i].iter().all(|o| o.name != m.name),
                "{} twice",
                m.name
            );
            assert!(m.stateful || m.sessionless, "{} in no era", m.name);
            assert!(std::ptr::eq(lookup(m.name).unwrap(), m));
        }
        for kind in ListKind::ALL {
            assert_eq!(lookup(kind.method()).unwrap().handler, Handler::List(kind));
        }
        assert!(lookup("tools/cal").is_none());
    }

    #[test]
    fn the_eras_differ_where_the_spec_says() {
        let removed: Vec<&str> = METHODS
            .iter()
            .filter(|m| !m.sessionless)
            .map(|m| m.name)
            .collect();
        assert_eq!(
            removed,
            [
                "ping",
                "initialize",
                "logging/setLevel",
                "resources/subscribe",
                "resources/unsubscribe"
            ]
        );
        assert!(!lookup("subscriptions/listen").unwrap().stateful);
        let named: Vec<_> = METHODS
            .iter()
            .filter_map(|m| Some((m.name, m.name_header?)))
            .collect();
        assert_eq!(
            named,
            [
                ("tools/call", NameParam::Name),
                ("resources/read", NameParam::Uri),
                ("prompts/get", NameParam::Name)
            ]
        );
        assert_eq!(
            changed_list("notifications/resources/list_changed"),
            Some(ListKind::Resources)
        );
    }
}
