//! Virtual servers (`routes:`): MCP endpoints at paths of their own, each exposing some
//! backends and some of their tools, renamed, described anew or with arguments fixed, behind
//! its own authentication and authorization. A request carries its route (0: the main
//! endpoint) from the front door; its session keeps it, so a session id presented on another
//! path is unknown there. The route's backends are the only ones its sessions join; its tool
//! shape ([`ringmux_core::shape`]) is applied where the merged tool list is built
//! ([`crate::federation`]), once per catalog change, and where a call's name is resolved and
//! its body written ([`crate::handlers::dispatch`]).

pub use ringmux_core::shape::{Edit, Shape, Shaped};

/// A route as a shard serves it.
pub struct Served {
    pub path: Box<str>,
    /// Per backend: whether the route exposes it.
    pub backends: Box<[bool]>,
    pub shape: Option<std::rc::Rc<Shape>>,
    /// Its own authentication (`None`: the main endpoint's).
    pub auth: Option<std::rc::Rc<crate::auth::Authenticator>>,
    /// Its own authorization (`None`: the main endpoint's).
    pub authz: Option<crate::authz::Authz>,
    /// Its calls' time bound (`routes[].call_timeout_ms`).
    pub call_timeout: Option<std::time::Duration>,
}
