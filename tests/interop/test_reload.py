"""Hot reload seen by the official Python SDK: a gateway in front of one
`@modelcontextprotocol/server-everything` gets a second by SIGHUP, then loses it again, while
SDK clients of both eras stay connected on their sessions: each hears the list change (a
stateful client as notifications/tools/list_changed on its GET stream, a 2026-07-28 client on
its listen stream), lists the new catalog and calls the new backend's tools.

Run by tests/run.sh (which installs server-everything and the SDK).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import tempfile
import time
import urllib.request

import anyio
import pytest
from mcp import Client, types

from test_python_sdk import EVERYTHING, _all_tools, _everything, run, start_gateway


def _metric(admin: str, name: str) -> float:
    """Sum of a metric's samples (every label set) on the admin listener's /metrics."""
    body = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _until(what: str, cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reloadable():
    assert EVERYTHING.exists(), f"{EVERYTHING} missing: run tests/run.sh, which installs it"
    procs: list[subprocess.Popen] = []
    work = tempfile.TemporaryDirectory()
    try:
        ports = [_everything(procs, name) for name in ("ev1", "ev2")]
        cfg = pathlib.Path(work.name) / "ringmux.yaml"

        def config(names: list[str]) -> str:
            backends = "".join(
                f"  - name: {n}\n    url: http://127.0.0.1:{ports[int(n[-1]) - 1]}/mcp\n" for n in names
            )
            return (
                "listen: 127.0.0.1:0\nshards: 2\nadmin:\n  listen: 127.0.0.1:0\n"
                "names:\n  prefix: always\nreload:\n  watch_interval_ms: 0\nbackends:\n" + backends
            )

        cfg.write_text(config(["ev1"]))
        gw, url, admin = start_gateway(cfg, pathlib.Path(work.name) / "gw.log")
        procs.append(gw)

        def reload(names: list[str]) -> None:
            generation = _metric(admin, "ringmux_config_generation")
            cfg.write_text(config(names))
            gw.send_signal(signal.SIGHUP)
            _until("the reload", lambda: _metric(admin, "ringmux_config_generation") == generation + 1)

        yield url, admin, reload
    finally:
        for p in procs:
            p.kill()
            p.wait()
        work.cleanup()


def test_sdk_clients_of_both_eras_follow_backends_a_reload_adds_and_removes(reloadable):
    url, admin, reload = reloadable

    async def scenario():
        changed = anyio.Event()

        async def on_message(message):
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async with Client(url, mode="legacy", cache=None, message_handler=on_message) as old, Client(
            url, mode="2026-07-28", cache=None
        ) as new:
            names = {t.name for t in await _all_tools(old)}
            assert "ev1__echo" in names and not any(n.startswith("ev2__") for n in names), names
            # The SDK opens its GET stream after initializing: wait until ringmux holds it.
            await anyio.to_thread.run_sync(
                _until, "the SDK's GET stream", lambda: _metric(admin, "ringmux_client_streams") >= 1
            )
            async with new.listen(tools_list_changed=True) as sub:
                await anyio.to_thread.run_sync(reload, ["ev1", "ev2"])
                with anyio.fail_after(20):
                    await changed.wait()
                    async for _event in sub:
                        break
            # ev2 joins both sessions in the background: its tools show up, and answer.
            with anyio.fail_after(20):
                while not any(t.name == "ev2__echo" for t in await _all_tools(old)):
                    await anyio.sleep(0.1)
            for client, who in ((old, "stateful"), (new, "2026-07-28")):
                names = {t.name for t in await _all_tools(client)}
                assert "ev2__echo" in names and "ev1__echo" in names, (who, names)
                echo = await client.call_tool("ev2__echo", {"message": f"{who} after the reload"})
                assert echo.content[0].text == f"Echo: {who} after the reload", (who, echo)

            # Removed again: both hear it, and the backend's tools are gone from the lists.
            changed = anyio.Event()
            async with new.listen(tools_list_changed=True) as sub:
                await anyio.to_thread.run_sync(reload, ["ev1"])
                with anyio.fail_after(20):
                    await changed.wait()
                    async for _event in sub:
                        break
            for client, who in ((old, "stateful"), (new, "2026-07-28")):
                names = {t.name for t in await _all_tools(client)}
                assert not any(n.startswith("ev2__") for n in names), (who, names)
                echo = await client.call_tool("ev1__echo", {"message": who})
                assert echo.content[0].text == f"Echo: {who}", (who, echo)

    run(scenario)
