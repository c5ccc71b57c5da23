"""Interop: the official Python MCP SDK (`mcp` from PyPI) as the client,
`@modelcontextprotocol/server-everything` (npm) behind the real ringmux binary as two
Streamable HTTP backends (ev1, ev2), a legacy HTTP+SSE backend (evl), a per-session stdio
backend (evs) and a shared stdio backend (evsh); and the SDK's own dual-era `MCPServer`
(modern_server.py) as a 2026-07-28 backend (evm). Every URL backend is `transport: auto`:
ringmux finds out evm's era, ev1/ev2's, and that evl speaks the legacy HTTP+SSE transport.
A second gateway requires authentication: the SDK calls through it with an API key and with
a JWT (signed here by openssl with the test key), and is refused without either. A third
listens on https (certificates made here by openssl): the SDK calls through it trusting the
test CA, authenticated by a client certificate or an API key. A fourth takes tokens from
oidc-provider (npm; idp.mjs), and the SDK's OAuth client does the whole flow from the 401.
A fifth has authorization rules: two SDK principals (JWTs with different roles) walk every
list page by page and see different tools, prompts and resources; a denied call is an
unknown tool; an argument rule allows /public/ and denies /etc/.

Run by tests/run.sh (which installs both); RINGMUX_BIN names the binary under test.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import tempfile
import time

import re
import sys

import anyio
import pytest
from mcp import Client, types

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = os.environ.get("RINGMUX_BIN", str(ROOT / "target" / "debug" / "ringmux"))
EVERYTHING = HERE / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
MODERN_SERVER = HERE / "modern_server.py"
# The gateway's log, for tests that check what ringmux found out about its backends.
GW_LOG: list[pathlib.Path] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


@pytest.fixture(scope="module")
def gateway():
    assert EVERYTHING.exists(), f"{EVERYTHING} missing: run tests/run.sh, which installs it"
    procs: list[subprocess.Popen] = []
    logs = tempfile.TemporaryDirectory()
    try:
        urls = []
        for name, transport, path in (("ev1", "streamableHttp", "mcp"), ("ev2", "streamableHttp", "mcp"), ("evl", "sse", "sse")):
            port = free_port()
            env = dict(os.environ, PORT=str(port))
            log = open(pathlib.Path(logs.name) / f"{name}.log", "w")
            p = subprocess.Popen(["node", str(EVERYTHING), transport], env=env, stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            wait_listening(port, p, f"server-everything {name}")
            urls.append((name, f"http://127.0.0.1:{port}/{path}"))
        port = free_port()
        log = open(pathlib.Path(logs.name) / "evm.log", "w")
        p = subprocess.Popen([sys.executable, str(MODERN_SERVER), str(port)], stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        wait_listening(port, p, "modern_server.py evm")
        urls.append(("evm", f"http://127.0.0.1:{port}/mcp"))
        cfg = pathlib.Path(logs.name) / "ringmux.yaml"
        stdio = (
            f"  - name: evs\n    command: node\n    args: [{EVERYTHING}, stdio]\n"
            f"  - name: evsh\n    command: node\n    args: [{EVERYTHING}, stdio]\n    mode: shared\n"
        )
        cfg.write_text(
            "listen: 127.0.0.1:0\nshards: 2\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n"
            + "".join(f"  - name: {n}\n    url: {u}\n" for n, u in urls)
            + stdio
        )
        gw_log = pathlib.Path(logs.name) / "gw.log"
        GW_LOG.append(gw_log)
        gw = subprocess.Popen(
            [BIN, "run", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=open(gw_log, "w"),
            text=True,
            env=dict(os.environ, RINGMUX_LOG="info", NO_COLOR="1"),
        )
        procs.append(gw)
        line = gw.stdout.readline().strip()
        assert line.startswith("ringmux listening on "), line
        yield line.rsplit(" ", 1)[1]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        logs.cleanup()


def start_gateway(cfg: pathlib.Path, log: pathlib.Path) -> tuple[subprocess.Popen, str, str]:
    """Starts `ringmux run cfg` (its log to `log`); the process, its MCP URL and its admin URL."""
    gw = subprocess.Popen([BIN, "run", str(cfg)], stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
    mcp_line = gw.stdout.readline().strip()
    admin_line = gw.stdout.readline().strip()
    assert mcp_line.startswith("ringmux listening on "), mcp_line
    assert admin_line.startswith("ringmux admin on "), admin_line
    return gw, mcp_line.rsplit(" ", 1)[1], admin_line.rsplit(" ", 1)[1]


def run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


async def _all_tools(client) -> list:
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


def test_legacy_client_lists_and_calls_both_backends(gateway):
    async def go():
        async with Client(gateway, mode="legacy", cache=None) as c:
            assert c.server_info.name == "ringmux"
            names = {t.name for t in await _all_tools(c)}
            for expected in ("ev1__echo", "ev2__echo", "ev1__get-sum", "ev2__trigger-long-running-operation"):
                assert expected in names, sorted(names)
            echo = await c.call_tool("ev1__echo", {"message": "hello"})
            assert echo.content[0].text == "Echo: hello"
            total = await c.call_tool("ev2__get-sum", {"a": 2, "b": 3})
            assert total.content[0].text == "The sum of 2 and 3 is 5."
            hello = await c.call_tool("ev2__echo", {"message": "via ev2"})
            assert hello.content[0].text == "Echo: via ev2"

    run(go)


def test_resources_and_prompts_route_to_their_owner(gateway):
    async def go():
        async with Client(gateway, mode="legacy", cache=None) as c:
            listed = await c.list_resources()
            uris = [str(r.uri) for r in listed.resources]
            doc = "ringmux://ev1/demo://resource/static/document/features.md"
            assert doc in uris, uris
            read = await c.read_resource(doc)
            assert read.contents[0].text.strip(), read
            dynamic = await c.read_resource("ringmux://ev2/demo://resource/dynamic/text/1")
            assert dynamic.contents[0].text.startswith("Resource 1: This is a plaintext resource created at"), dynamic
            prompt = await c.get_prompt("ev2__simple-prompt")
            assert prompt.messages[0].content.text == "This is a simple prompt without arguments."
            args = await c.get_prompt("ev1__args-prompt", {"city": "Paris"})
            assert args.messages[0].content.text == "What's weather in Paris?"

    run(go)


def test_resource_links_from_a_prefixed_backend_read_back_through_the_gateway(gateway):
    async def go():
        async with Client(gateway, mode="legacy", cache=None) as c:
            links = await c.call_tool("ev1__get-resource-links", {"count": 2})
            uris = [str(b.uri) for b in links.content if b.type == "resource_link"]
            assert len(uris) == 2, links
            for uri in uris:
                assert uri.startswith("ringmux://ev1/demo://resource/"), uri
                read = await c.read_resource(uri)
                assert str(read.contents[0].uri) == uri, read

    run(go)


def test_progress_arrives_before_the_result(gateway):
    async def go():
        seen: list[tuple[str, float]] = []

        async def on_progress(progress, total, message):
            seen.append(("progress", time.monotonic()))

        async with Client(gateway, mode="legacy", cache=None) as c:
            result = await c.call_tool(
                "ev1__trigger-long-running-operation",
                {"duration": 1, "steps": 3},
                progress_callback=on_progress,
            )
            seen.append(("result", time.monotonic()))
            assert result.content[0].text == "Long running operation completed. Duration: 1 seconds, Steps: 3."
        kinds = [k for k, _ in seen]
        assert kinds == ["progress", "progress", "progress", "result"], kinds
        # Relayed as they happen, not buffered to the end: the first step lands well before the result.
        assert seen[-1][1] - seen[0][1] > 0.3, seen

    run(go)


def test_default_auto_mode_probes_and_goes_sessionless(gateway):
    """server/discover offers 2026-07-28, so the SDK's default mode speaks it: every request
    sessionless, through ringmux's principal sessions to stateful backends of each transport."""

    async def go():
        async with Client(gateway, cache=None) as c:
            assert c.protocol_version == "2026-07-28"
            assert c.server_info.name == "ringmux"
            names = {t.name for t in await _all_tools(c)}
            assert "ev2__echo" in names
            for backend in ("ev2", "evs", "evl"):
                echo = await c.call_tool(f"{backend}__echo", {"message": "auto"})
                assert echo.content[0].text == "Echo: auto", backend

    run(go)


def test_legacy_sse_client_reaches_the_federated_server(gateway):
    """The 2024-11-05 HTTP+SSE transport: GET /sse, then POSTs to the announced endpoint."""
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    base = gateway.rsplit("/mcp", 1)[0]

    async def go():
        async with sse_client(base + "/sse") as (read, write):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                assert init.server_info.name == "ringmux"
                names = {t.name for t in (await s.list_tools()).tools}
                assert {"ev1__echo", "ev2__echo"} <= names, sorted(names)
                echo = await s.call_tool("ev2__echo", {"message": "old transport"})
                assert echo.content[0].text == "Echo: old transport"
                seen = []

                async def on_progress(progress, total, message):
                    seen.append(progress)

                done = await s.call_tool(
                    "ev1__trigger-long-running-operation",
                    {"duration": 1, "steps": 2},
                    progress_callback=on_progress,
                )
                assert done.content[0].text.startswith("Long running operation completed"), done
                assert len(seen) == 2, seen

    run(go)


async def _sample(context, params):
    asked = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled for [{asked}]"),
        model="interop-model",
        stop_reason="endTurn",
    )


async def _elicit(context, params):
    return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True})


async def _roots(context):
    return types.ListRootsResult(roots=[types.Root(uri="file:///workspace/ringmux", name="workspace")])


def _answering_client(gateway: str, mode: str) -> Client:
    """A client whose callbacks answer sampling, elicitation and roots requests."""
    return Client(
        gateway,
        mode=mode,
        cache=None,
        sampling_callback=_sample,
        elicitation_callback=_elicit,
        list_roots_callback=_roots,
    )


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("backend", ["evs", "ev1", "evl"])
def test_sampling_elicitation_and_roots_reach_the_sdk_callbacks(gateway, backend, mode):
    """Server→client requests from a stdio (per-session child), a Streamable HTTP and a legacy
    SSE backend reach the SDK's callbacks through ringmux, and their answers get back to the
    server: as real requests on a stateful client's streams, and for a sessionless client as
    `input_required` results whose sealed requestState the SDK's retry brings back."""

    async def go():
        async with _answering_client(gateway, mode) as c:
            names = {t.name for t in await _all_tools(c)}
            for tool in ("trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"):
                assert f"{backend}__{tool}" in names, sorted(names)
            sampled = await c.call_tool(f"{backend}__trigger-sampling-request", {"prompt": "ping"})
            assert "sampled for [" in sampled.content[0].text and "ping" in sampled.content[0].text, sampled
            elicited = await c.call_tool(f"{backend}__trigger-elicitation-request", {})
            texts = " ".join(part.text for part in elicited.content)
            assert "Name: Ada Lovelace" in texts, texts
            roots = await c.call_tool(f"{backend}__get-roots-list", {})
            assert "file:///workspace/ringmux" in roots.content[0].text, roots

    run(go)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_stdio_and_legacy_sse_backends_stream_progress(gateway, mode):
    async def go():
        async with Client(gateway, mode=mode, cache=None) as c:
            for backend in ("evs", "evsh", "evl"):
                seen = []

                async def on_progress(progress, total, message):
                    seen.append(progress)

                done = await c.call_tool(
                    f"{backend}__trigger-long-running-operation",
                    {"duration": 1, "steps": 3},
                    progress_callback=on_progress,
                )
                assert done.content[0].text.startswith("Long running operation completed"), done
                assert len(seen) == 3, (backend, seen)
                echo = await c.call_tool(f"{backend}__echo", {"message": "through ringmux"})
                assert echo.content[0].text == "Echo: through ringmux"

    run(go)


def test_legacy_sse_client_through_a_stdio_backend(gateway):
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    base = gateway.rsplit("/mcp", 1)[0]

    async def go():
        async with sse_client(base + "/sse") as (read, write):
            async with ClientSession(read, write, sampling_callback=_sample) as s:
                await s.initialize()
                echo = await s.call_tool("evs__echo", {"message": "sse to stdio"})
                assert echo.content[0].text == "Echo: sse to stdio"
                sampled = await s.call_tool("evs__trigger-sampling-request", {"prompt": "legacy"})
                assert "sampled for [" in sampled.content[0].text, sampled

    run(go)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_a_sessionless_backend_serves_both_eras(gateway, mode):
    """The SDK's own MCPServer as a 2026-07-28 backend, found out by ringmux's probe. Its
    `input_required` results reach a stateful client as real elicitation, sampling and roots
    requests answered by the SDK's callbacks (ringmux retries with the answers and the
    server's requestState); a modern client gets them as they are and retries itself."""

    async def go():
        async with _answering_client(gateway, mode) as c:
            names = {t.name for t in await _all_tools(c)}
            for tool in ("echo", "ask_name", "sample", "roots"):
                assert f"evm__{tool}" in names, sorted(names)
            echo = await c.call_tool("evm__echo", {"message": "either era"})
            assert echo.content[0].text == "Echo: either era"
            named = await c.call_tool("evm__ask_name", {})
            assert named.content[0].text == "Hello, Ada Lovelace", named
            sampled = await c.call_tool("evm__sample", {"prompt": "tide"})
            assert sampled.content[0].text == "sampled: sampled for [tide]", sampled
            listed = await c.call_tool("evm__roots", {})
            assert listed.content[0].text == "file:///workspace/ringmux", listed

    run(go)
    log = GW_LOG[-1].read_text()
    assert re.search(r"backend era found out backend=evm era=Sessionless", log), log
    assert re.search(r"backend era found out backend=ev1 era=Stateful", log), log
    assert re.search(r"backend=evl backend speaks the legacy HTTP\+SSE transport|backend speaks the legacy HTTP\+SSE transport backend=evl", log), log


def test_a_sessionless_backends_list_change_reaches_clients_of_both_eras(gateway):
    """evm's list change travels on the subscriptions/listen ringmux holds for the session:
    to a stateful client's GET stream as notifications/tools/list_changed, and to a modern
    client's own listen stream."""

    async def legacy():
        changed = [anyio.Event()]

        async def on_message(message):
            if isinstance(message, types.ToolListChangedNotification):
                changed[0].set()

        async with Client(gateway, mode="legacy", cache=None, message_handler=on_message) as c:
            before = {t.name for t in await _all_tools(c)}
            # The SDK opens its GET stream after initializing, and ringmux the listen behind
            # it: a touch before then changes the backend unheard. ringmux tells a client of a
            # list change once until it lists again, so each round lists (which re-arms the
            # notice) and the test ends when a heard change shows evm's new tools.
            with anyio.fail_after(20):
                while True:
                    changed[0] = anyio.Event()
                    await c.call_tool("evm__touch", {})
                    with anyio.move_on_after(0.3):
                        await changed[0].wait()
                    heard = changed[0].is_set()
                    after = {t.name for t in await _all_tools(c)}
                    if heard and any(n.startswith("evm__extra_") for n in after - before):
                        break

    async def modern():
        async with Client(gateway, mode="2026-07-28", cache=None) as c:
            before = {t.name for t in await _all_tools(c)}
            async with c.listen(tools_list_changed=True) as sub:
                await c.call_tool("evm__touch", {})
                with anyio.fail_after(10):
                    async for _event in sub:
                        break
            after = {t.name for t in await _all_tools(c)}
            assert any(n.startswith("evm__extra_") for n in after - before), sorted(after - before)

    run(legacy)
    run(modern)


# --- Authentication: the SDK as a client of an authenticating gateway ---------------------

AUTH_FIXTURES = ROOT / "tests" / "fixtures" / "auth"
API_KEY = "rmx-python-sdk-key"


def _jwt(claims: dict) -> str:
    """An RS256 token signed with the test key (tests/fixtures/auth/rsa1.pem) by openssl."""
    import base64
    import json

    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(AUTH_FIXTURES / "rsa1.pem")],
        input=f"{head}.{body}".encode(), capture_output=True, check=True,
    ).stdout
    return f"{head}.{body}.{b64(sig)}"


def _everything(procs: list[subprocess.Popen], what: str) -> int:
    """Starts server-everything (Streamable HTTP) for one fixture; returns its port."""
    port = free_port()
    p = subprocess.Popen(["node", str(EVERYTHING), "streamableHttp"], env=dict(os.environ, PORT=str(port)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    wait_listening(port, p, f"server-everything ({what})")
    return port


def _ringmux(procs: list[subprocess.Popen], cfg: pathlib.Path, scheme: str = "http") -> str:
    """Starts the gateway on `cfg`; returns the URL it says it listens on."""
    gw = subprocess.Popen([BIN, "run", str(cfg)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    procs.append(gw)
    line = gw.stdout.readline().strip()
    assert line.startswith(f"ringmux listening on {scheme}://"), line
    return line.rsplit(" ", 1)[1]


@pytest.fixture(scope="module")
def auth_gateway():
    """server-everything behind a gateway that requires a JWT or an API key."""
    import hashlib

    procs: list[subprocess.Popen] = []
    logs = tempfile.TemporaryDirectory()
    try:
        port = _everything(procs, "auth")
        gw_port = free_port()
        resource = f"http://127.0.0.1:{gw_port}/mcp"
        cfg = pathlib.Path(logs.name) / "auth.yaml"
        cfg.write_text(
            f"listen: 127.0.0.1:{gw_port}\nshards: 2\nadmin:\n  listen: 127.0.0.1:0\n"
            f"auth:\n  resource: {resource}\n  authorization_servers: [https://idp.test]\n"
            f"  required_scopes: [mcp]\n"
            f"  jwt:\n    issuer: https://idp.test\n    jwks_file: {AUTH_FIXTURES / 'jwks.json'}\n"
            f"  api_keys:\n    - name: sdk\n      sha256: {hashlib.sha256(API_KEY.encode()).hexdigest()}\n"
            f"backends:\n  - name: ev\n    url: http://127.0.0.1:{port}/mcp\n"
        )
        _ringmux(procs, cfg)
        yield resource
    finally:
        for p in procs:
            p.kill()
            p.wait()
        logs.cleanup()


async def _list_and_echo(url: str, http, message: str):
    """Over `http` (an httpx2 client carrying whatever credentials the test gives it): an
    SDK session that lists the tools and calls ev__echo. Returns the names and the echo."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url, http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            names = {t.name for t in (await s.list_tools()).tools}
            echo = await s.call_tool("ev__echo", {"message": message})
            return names, echo.content[0].text


async def _session_with(url: str, authorization: str | None):
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": authorization} if authorization else None
    async with create_mcp_http_client(headers=headers) as http:
        return await _list_and_echo(url, http, "authenticated")


@pytest.mark.parametrize("how", ["api_key", "jwt"])
def test_the_sdk_calls_through_an_authenticating_gateway(auth_gateway, how):
    now = int(time.time())
    authorization = f"Bearer {API_KEY}" if how == "api_key" else "Bearer " + _jwt({
        "iss": "https://idp.test", "aud": auth_gateway, "sub": "sdk-user",
        "iat": now, "exp": now + 600, "scope": "mcp"})
    names, text = anyio.run(_session_with, auth_gateway, authorization)
    assert "ev__echo" in names, sorted(names)
    assert text == "Echo: authenticated"


def test_an_unauthenticated_sdk_client_is_refused_with_discoverable_metadata(auth_gateway):
    """Without a credential the SDK's first request fails; the 401 names the metadata, which
    is served where it says (what an OAuth client discovers the authorization server from)."""
    import json
    import urllib.error
    import urllib.request

    with pytest.raises(Exception):
        anyio.run(_session_with, auth_gateway, None)
    req = urllib.request.Request(auth_gateway, method="POST", data=b"{}",
                                 headers={"content-type": "application/json",
                                          "accept": "application/json, text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401
    challenge = refused.value.headers["www-authenticate"]
    metadata_url = re.search(r'resource_metadata="([^"]+)"', challenge).group(1)
    with urllib.request.urlopen(metadata_url, timeout=10) as r:
        doc = json.load(r)
    assert doc["resource"] == auth_gateway
    assert doc["authorization_servers"] == ["https://idp.test"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _make_pki(d: pathlib.Path) -> dict[str, str]:
    """A server CA with a localhost certificate, and a client CA with one client certificate
    (CN=sdk-client), made by openssl."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    out = {}
    for ca in ("server-ca", "client-ca"):
        _openssl("req", "-x509", *ec, "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.pem"),
                 "-days", "1", "-subj", f"/CN=ringmux {ca}")
        out[ca] = str(d / f"{ca}.pem")
    for leaf, ca, cn, ext in (
        ("server", "server-ca", "localhost",
         "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "client-ca", "sdk-client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{leaf}.ext").write_text("basicConstraints=CA:FALSE\n" + ext)
        _openssl("req", *ec, "-keyout", str(d / f"{leaf}.key"), "-out", str(d / f"{leaf}.csr"),
                 "-subj", f"/CN={cn}")
        _openssl("x509", "-req", "-in", str(d / f"{leaf}.csr"), "-CA", str(d / f"{ca}.pem"),
                 "-CAkey", str(d / f"{ca}.key"), "-CAcreateserial", "-out", str(d / f"{leaf}.pem"),
                 "-days", "1", "-extfile", str(d / f"{leaf}.ext"))
        out[leaf] = str(d / f"{leaf}.pem")
        out[f"{leaf}-key"] = str(d / f"{leaf}.key")
    return out


@pytest.fixture(scope="module")
def tls_gateway():
    """server-everything behind a gateway on https: authentication strict, accepting an API key
    or a client certificate of the client CA (optional at the handshake)."""
    import hashlib

    procs: list[subprocess.Popen] = []
    work = tempfile.TemporaryDirectory()
    d = pathlib.Path(work.name)
    try:
        pki = _make_pki(d)
        port = _everything(procs, "tls")
        cfg = d / "tls.yaml"
        cfg.write_text(
            "listen: 127.0.0.1:0\nshards: 2\nadmin:\n  listen: 127.0.0.1:0\n"
            f"tls:\n  cert: {pki['server']}\n  key: {pki['server-key']}\n"
            f"  client_ca: {pki['client-ca']}\n  client_auth: optional\n"
            "auth:\n  resource: https://localhost/mcp\n"
            f"  api_keys:\n    - name: sdk\n      sha256: {hashlib.sha256(API_KEY.encode()).hexdigest()}\n"
            f"backends:\n  - name: ev\n    url: http://127.0.0.1:{port}/mcp\n"
        )
        url = _ringmux(procs, cfg, "https").replace("127.0.0.1", "localhost")
        yield url, pki
    finally:
        for p in procs:
            p.kill()
            p.wait()
        work.cleanup()


async def _tls_session(url: str, ca: str, client: tuple[str, str] | None, authorization: str | None):
    import ssl

    import httpx2

    ctx = ssl.create_default_context(cafile=ca)
    if client:
        ctx.load_cert_chain(*client)
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx2.AsyncClient(verify=ctx, headers=headers, timeout=30) as http:
        return await _list_and_echo(url, http, "over TLS")


@pytest.mark.parametrize("how", ["client_certificate", "api_key"])
def test_the_sdk_calls_over_https(tls_gateway, how):
    """The SDK over TLS, trusting the test CA: authenticated by its client certificate (no
    token at all), or by an API key without a certificate."""
    url, pki = tls_gateway
    client = (pki["client"], pki["client-key"]) if how == "client_certificate" else None
    authorization = f"Bearer {API_KEY}" if how == "api_key" else None
    names, text = anyio.run(_tls_session, url, pki["server-ca"], client, authorization)
    assert "ev__echo" in names, sorted(names)
    assert text == "Echo: over TLS"


def test_the_sdk_over_https_is_refused_without_trust_or_credentials(tls_gateway):
    url, pki = tls_gateway
    # A client that does not trust the server's CA fails its handshake.
    with pytest.raises(Exception):
        anyio.run(_tls_session, url, pki["client-ca"], None, f"Bearer {API_KEY}")
    # Neither certificate nor token: 401 with a challenge, over TLS.
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=pki["server-ca"])
    req = urllib.request.Request(url, method="POST", data=b"{}",
                                 headers={"content-type": "application/json",
                                          "accept": "application/json, text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10, context=ctx)
    assert refused.value.code == 401
    assert refused.value.headers["www-authenticate"].startswith("Bearer ")


IDP = HERE / "idp.mjs"


@pytest.fixture(scope="module")
def oauth_gateway():
    """server-everything behind a gateway whose tokens come from oidc-provider (idp.mjs): a
    real authorization server, found by the client from ringmux's 401 alone."""
    procs: list[subprocess.Popen] = []
    work = tempfile.TemporaryDirectory()
    try:
        port = _everything(procs, "oauth")
        gw_port, idp_port = free_port(), free_port()
        resource = f"http://127.0.0.1:{gw_port}/mcp"
        idp_log = open(pathlib.Path(work.name) / "idp.log", "w")
        idp = subprocess.Popen(["node", str(IDP), str(idp_port), resource], stdout=subprocess.PIPE,
                               stderr=idp_log, text=True)
        procs.append(idp)
        line = idp.stdout.readline().strip()
        assert line.startswith("idp listening on "), line
        issuer = line.rsplit(" ", 1)[1]
        cfg = pathlib.Path(work.name) / "oauth.yaml"
        cfg.write_text(
            f"listen: 127.0.0.1:{gw_port}\nshards: 2\nadmin:\n  listen: 127.0.0.1:0\n"
            f"auth:\n  resource: {resource}\n  authorization_servers: [{issuer}]\n"
            f"  scopes_supported: [mcp]\n  required_scopes: [mcp]\n"
            # The keys are found from the issuer's metadata (its jwks_uri).
            f"  jwt:\n    issuer: {issuer}\n    discover: true\n"
            f"backends:\n  - name: ev\n    url: http://127.0.0.1:{port}/mcp\n"
        )
        _ringmux(procs, cfg)
        yield resource, issuer
    finally:
        for p in procs:
            p.kill()
            p.wait()
        work.cleanup()


class _MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client):
        self.client = client


def test_the_sdk_oauth_client_does_the_whole_flow_with_a_real_authorization_server(oauth_gateway):
    """The SDK's OAuth client starts with nothing but ringmux's URL: the 401 names the
    protected-resource metadata, which names oidc-provider; the client reads its metadata,
    registers itself, runs the authorization-code flow with PKCE and the resource indicator
    (the test's user agent follows the redirects; the provider approves at once), exchanges
    the code for a JWT access token, and calls through ringmux with it."""
    import base64
    import json
    import urllib.parse

    import httpx2
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    resource, issuer = oauth_gateway
    redirect = "http://127.0.0.1:9/callback"  # never reached: the user agent stops there
    landed: dict[str, str] = {}

    async def user_agent(url: str) -> None:
        """A browser that follows the provider's redirects until the one to the client."""
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as ua:
            for _ in range(10):
                r = await ua.get(url)
                assert r.status_code in (302, 303), (r.status_code, r.text[:300])
                url = urllib.parse.urljoin(url, r.headers["location"])
                if url.startswith(redirect):
                    landed.update(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
                    return
        raise AssertionError("the provider never redirected to the client")

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=landed["code"], state=landed.get("state"), iss=landed.get("iss"))

    storage = _MemoryStorage()
    auth = OAuthClientProvider(
        server_url=resource,
        client_metadata=OAuthClientMetadata(
            client_name="ringmux interop", redirect_uris=[redirect], grant_types=["authorization_code"],
            response_types=["code"], token_endpoint_auth_method="none"),
        storage=storage, redirect_handler=user_agent, callback_handler=callback)

    async def go():
        async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
            return await _list_and_echo(resource, http, "oauth")

    names, text = anyio.run(go)
    assert "ev__echo" in names, sorted(names)
    assert text == "Echo: oauth"
    assert landed.get("iss") == issuer  # RFC 9207
    # The token the provider issued is a JWT for ringmux's resource, with the scope it needs.
    payload = storage.tokens.access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == issuer
    assert claims["aud"] == resource
    assert claims["sub"] == "sdk-user"
    assert "mcp" in claims["scope"].split()


# --- Authorization: two principals, one gateway, different views -----------------------------


TEAM_KEY = "rmx-python-sdk-team-key"


@pytest.fixture(scope="module")
def authz_gateway():
    """server-everything (ev) and ringmux's mock with 30 tools (m) behind a gateway with JWT
    authentication and CEL rules: admins use everything; readers use m's items, and ev's echo
    only on /public/ paths; nobody echoes /etc/. Pages of 4 items. And a virtual server."""
    import hashlib

    procs: list[subprocess.Popen] = []
    logs = tempfile.TemporaryDirectory()
    try:
        ev = _everything(procs, "authz")
        m = free_port()
        mock = subprocess.Popen([BIN, "mock", "--listen", f"127.0.0.1:{m}", "--name", "m", "--tools", "30"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(mock)
        wait_listening(m, mock, "mock")
        gw_port = free_port()
        resource = f"http://127.0.0.1:{gw_port}/mcp"
        cfg = pathlib.Path(logs.name) / "authz.yaml"
        cfg.write_text(
            f"listen: 127.0.0.1:{gw_port}\nshards: 2\nadmin:\n  listen: 127.0.0.1:0\nlimits:\n  page_size: 4\n"
            f"auth:\n  resource: {resource}\n  authorization_servers: [https://idp.test]\n"
            f"  jwt:\n    issuer: https://idp.test\n    jwks_file: {AUTH_FIXTURES / 'jwks.json'}\n"
            "authz:\n  rules:\n"
            "    - name: admins\n      allow: 'principal.claims.role == \"admin\"'\n"
            "    - name: readers\n      allow: 'principal.claims.role == \"reader\" && mcp.backend == \"m\"'\n"
            "    - name: public-echo\n"
            "      allow: 'principal.claims.role == \"reader\" && mcp.tool == \"ev__echo\" && args.message.startsWith(\"/public/\")'\n"
            "    - name: no-etc\n      deny: 'mcp.tool == \"ev__echo\" && args.message.startsWith(\"/etc/\")'\n"
            f"backends:\n  - name: ev\n    url: http://127.0.0.1:{ev}/mcp\n"
            f"  - name: m\n    url: http://127.0.0.1:{m}/mcp\n"
            # A virtual server for one team: ev's echo and get-sum only, get-sum renamed with b
            # fixed, behind the team's own API key and with its own (open) rules.
            "routes:\n  - path: /teams/sums/mcp\n    backends: [ev]\n"
            "    tools:\n      include: ['ev__get-sum', 'ev__echo']\n"
            "      overrides:\n        ev__get-sum: {name: add_ten, description: Adds ten to a, arguments: {b: 10}}\n"
            f"    auth:\n      resource: http://127.0.0.1:{gw_port}/teams/sums/mcp\n"
            f"      api_keys:\n        - name: team\n          sha256: {hashlib.sha256(TEAM_KEY.encode()).hexdigest()}\n"
            "    authz:\n      default: allow\n"
        )
        _ringmux(procs, cfg)
        yield resource, ev, m
    finally:
        for p in procs:
            p.kill()
            p.wait()
        logs.cleanup()


async def _walk(list_fn, key: str) -> list:
    """Every item of a paginated list, page by page (the SDK's own cursor handling)."""
    items, cursor = [], None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await list_fn(params=params)
        items += getattr(page, key)
        cursor = page.next_cursor
        if not cursor:
            return items


async def _lists(s) -> dict:
    """The names of every tool and prompt and the URI of every resource a session sees."""
    return {
        "tools": [t.name for t in await _walk(s.list_tools, "tools")],
        "prompts": [p.name for p in await _walk(s.list_prompts, "prompts")],
        "resources": [str(r.uri) for r in await _walk(s.list_resources, "resources")],
    }


async def _views(url: str, authorization: str | None) -> dict:
    """One SDK session: every list walked, and the calls the test judges."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.exceptions import MCPError

    async def outcome(coro):
        try:
            r = await coro
            return ("ok", r.content[0].text if hasattr(r, "content") else None)
        except MCPError as e:
            return ("error", e.error.code, e.error.message)

    headers = {"Authorization": authorization} if authorization else None
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as s:
                await s.initialize()
                out = await _lists(s)
                if authorization is None:
                    return out
                out["sum"] = await outcome(s.call_tool("ev__get-sum", {"a": 1, "b": 2}))
                out["nope"] = await outcome(s.call_tool("ev__no-such-tool", {}))
                out["public"] = await outcome(s.call_tool("ev__echo", {"message": "/public/readme"}))
                out["etc"] = await outcome(s.call_tool("ev__echo", {"message": "/etc/passwd"}))
                out["home"] = await outcome(s.call_tool("ev__echo", {"message": "/home/me"}))
                out["mock"] = await outcome(s.call_tool("m__echo", {"message": "hi"}))
                return out


def _direct(port: int) -> dict:
    """A backend's own lists, straight from it (the ground truth a view is a subset of)."""
    async def go():
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams:
            async with ClientSession(streams[0], streams[1]) as s:
                await s.initialize()
                return await _lists(s)
    return anyio.run(go)


def test_two_sdk_principals_see_and_call_what_the_rules_allow(authz_gateway):
    url, ev_port, m_port = authz_gateway
    now = int(time.time())

    def token(sub: str, role: str) -> str:
        return "Bearer " + _jwt({"iss": "https://idp.test", "aud": url, "sub": sub, "role": role,
                                 "iat": now, "exp": now + 600})

    ev, m = _direct(ev_port), _direct(m_port)
    # Enough of each for several pages of 4, from both backends.
    assert len(ev["tools"]) > 4 and len(m["tools"]) > 12 and "get-sum" in ev["tools"]
    assert ev["prompts"] and m["prompts"] and ev["resources"] and m["resources"]
    admin = anyio.run(_views, url, token("alice", "admin"))
    reader = anyio.run(_views, url, token("bob", "reader"))

    # Pages of 4 over filtered merges: each view gets every item it may see exactly once, in
    # the backends' order, and nothing else.
    assert admin["tools"] == [f"ev__{t}" for t in ev["tools"]] + [f"m__{t}" for t in m["tools"]]
    assert reader["tools"] == ["ev__echo"] + [f"m__{t}" for t in m["tools"]]
    assert admin["prompts"] == [f"ev__{p}" for p in ev["prompts"]] + [f"m__{p}" for p in m["prompts"]]
    assert reader["prompts"] == [f"m__{p}" for p in m["prompts"]]
    assert len(admin["resources"]) == len(ev["resources"]) + len(m["resources"])
    assert reader["resources"] and all(u.startswith("ringmux://m/") for u in reader["resources"])
    assert len(reader["resources"]) == len(m["resources"])

    # A tool the reader may not use is an unknown tool: the same error as one that does not exist.
    assert admin["sum"][0] == "ok"
    assert reader["sum"][0] == "error" and reader["nope"][0] == "error"
    assert reader["sum"][1] == reader["nope"][1] == -32602
    assert reader["sum"][2].replace("ev__get-sum", "X") == reader["nope"][2].replace("ev__no-such-tool", "X")

    # The argument rules: /public/ allowed for the reader, /etc/ denied to everyone (deny wins).
    assert reader["public"] == ("ok", "Echo: /public/readme")
    assert reader["etc"][:2] == ("error", -32602)
    assert reader["home"][:2] == ("error", -32602)
    assert admin["etc"][:2] == ("error", -32602)
    assert admin["home"] == ("ok", "Echo: /home/me")
    assert reader["mock"] == ("ok", "hi") and admin["mock"] == ("ok", "hi")


def test_a_virtual_server_serves_the_sdk_its_subset_renamed_and_fixed(authz_gateway):
    """The SDK on a route's own path, with the route's own API key: ev's two tools only (in
    ev's order), get-sum known as add_ten with b gone from its schema and fixed to 10."""
    url, ev_port, _ = authz_gateway
    route = url.replace("/mcp", "/teams/sums/mcp")

    async def go(authorization: str):
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client
        from mcp.shared.exceptions import MCPError

        async with create_mcp_http_client(headers={"Authorization": authorization}) as http:
            async with streamable_http_client(route, http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as s:
                    await s.initialize()
                    lists = await _lists(s)
                    tools = await _walk(s.list_tools, "tools")
                    added = await s.call_tool("add_ten", {"a": 5})
                    overridden = await s.call_tool("add_ten", {"a": 5, "b": 1000})
                    try:
                        await s.call_tool("ev__get-sum", {"a": 1, "b": 2})
                        old = None
                    except MCPError as e:
                        old = e.error.code
                    return lists, tools, added.content[0].text, overridden.content[0].text, old

    lists, tools, added, overridden, old = anyio.run(go, f"Bearer {TEAM_KEY}")
    ev = _direct(ev_port)["tools"]
    want = [("ev__echo" if t == "echo" else "add_ten") for t in ev if t in ("echo", "get-sum")]
    assert lists["tools"] == want
    add = next(t for t in tools if t.name == "add_ten")
    assert add.description == "Adds ten to a"
    assert "b" not in add.input_schema["properties"] and "a" in add.input_schema["properties"]
    assert "b" not in add.input_schema.get("required", [])
    assert "15" in added and "15" in overridden, (added, overridden)
    assert old == -32602
    assert lists["prompts"] and all(p.startswith("ev__") for p in lists["prompts"])
    assert all(not u.startswith("ringmux://m/") for u in lists["resources"])
    # The main endpoint's JWT is not the route's credential.
    with pytest.raises(Exception):
        anyio.run(go, "Bearer " + _jwt({"iss": "https://idp.test", "aud": url, "sub": "x",
                                         "role": "admin", "iat": int(time.time()),
                                         "exp": int(time.time()) + 600}))
