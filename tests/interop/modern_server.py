"""A dual-era MCP test backend built on the official Python SDK's `MCPServer`.

One Streamable HTTP endpoint serves both eras: stateful clients (initialize + Mcp-Session-Id,
protocol <= 2025-11-25) and sessionless 2026-07-28 clients (server/discover, per-request `_meta`).
The `Resolve(...)` tools ask the client for input; the SDK picks the transport per request:
a standalone server-to-client request (elicitation/create, sampling/createMessage, roots/list)
for stateful clients, an `input_required` result (inputRequests + requestState) for 2026-07-28.

    python modern_server.py PORT      # serves http://127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import itertools
import sys
from typing import Annotated, Any

from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import Context, Elicit, ListRoots, MCPServer, Resolve, Sample
from mcp.types import CreateMessageResult, ListRootsResult, SamplingMessage, TextContent
from pydantic import BaseModel

server = MCPServer("modern-py")

# --- list_changed plumbing -------------------------------------------------------------------
# `ctx.notify_tools_changed()` only publishes on the SDK's subscription bus, i.e. to 2026-07-28
# `subscriptions/listen` streams. Stateful sessions need `notifications/tools/list_changed` on
# their standalone (GET) stream. `ctx.session` is a per-message proxy over the connection, so a
# middleware keeps the one from each handshake's `notifications/initialized`, keyed by session id.
_stateful_sessions: dict[str, Any] = {}


async def _remember_sessions(ctx, call_next):
    if ctx.method == "notifications/initialized" and ctx.request is not None:
        session_id = ctx.request.headers.get("mcp-session-id")
        if session_id:
            _stateful_sessions[session_id] = ctx.session
    return await call_next(ctx)


server.middleware.append(_remember_sessions)

# MCPServer has no knob for the handshake-era `tools.listChanged` flag (the 2026-07-28 discover
# result derives it from `subscriptions/listen` being served), so advertise it explicitly.
_lowlevel = server._lowlevel_server
_default_init_options = _lowlevel.create_initialization_options
_lowlevel.create_initialization_options = lambda *a, **kw: _default_init_options(  # type: ignore[method-assign]
    NotificationOptions(tools_changed=True)
)


# --- tools -----------------------------------------------------------------------------------
@server.tool()
def echo(message: str) -> str:
    """Echo the message back."""
    return f"Echo: {message}"


class Name(BaseModel):
    name: str


def _ask_for_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@server.tool()
def ask_name(who: Annotated[Name, Resolve(_ask_for_name)]) -> str:
    """Elicit the user's name and greet them."""
    return f"Hello, {who.name}"


def _sample_prompt(prompt: str) -> Sample:  # receives the tool argument `prompt` by name
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100)


@server.tool()
def sample(prompt: str, result: Annotated[CreateMessageResult, Resolve(_sample_prompt)]) -> str:
    """Sample the client's LLM with the prompt."""
    content = result.content
    text = content.text if isinstance(content, TextContent) else str(content)
    return f"sampled: {text}"


def _list_roots() -> ListRoots:
    return ListRoots()


@server.tool()
def roots(listed: Annotated[ListRootsResult, Resolve(_list_roots)]) -> str:
    """List the client's root URIs, comma-separated."""
    return ",".join(str(root.uri) for root in listed.roots)


_extra_ids = itertools.count(1)


@server.tool()
async def touch(ctx: Context) -> str:
    """Register a new tool `extra_<n>` and announce the tools list change."""
    n = next(_extra_ids)
    server.add_tool(lambda: f"extra {n}", name=f"extra_{n}", description=f"Added by touch #{n}")
    await ctx.notify_tools_changed()  # 2026-07-28: every open subscriptions/listen stream
    # Stateful sessions: on each one's standalone GET stream. The SDK drops a closed session's
    # notification silently, so entries are only pruned if sending actually fails.
    for session_id, session in list(_stateful_sessions.items()):
        try:
            await session.send_tool_list_changed()
        except Exception:
            _stateful_sessions.pop(session_id, None)
    return "touched"


if __name__ == "__main__":
    server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]), streamable_http_path="/mcp")
