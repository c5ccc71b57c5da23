"""The admin page in headless Chromium (Debian's `chromium`, driven by Playwright from PyPI):
a real gateway in front of two `@modelcontextprotocol/server-everything` backends, called by
the official Python SDK; the page, served by the admin listener, renders the backends, the
federated catalog and live numbers from the admin API. Assertions are on the DOM; the
screenshot is kept as target/test-artifacts/admin-page.png.

Run by tests/run.sh (which installs Chromium, Playwright and server-everything).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile
import threading
import time
import urllib.request

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from playwright.sync_api import sync_playwright

from test_python_sdk import EVERYTHING, ROOT, free_port, start_gateway, wait_listening

CHROMIUM = "/usr/bin/chromium"
ARTIFACT = ROOT / "target" / "test-artifacts" / "admin-page.png"
# Chromium on a machine with no internet: no background connections, no sandbox (root).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def gateway():
    assert EVERYTHING.exists(), f"{EVERYTHING} missing: run tests/run.sh, which installs it"
    assert pathlib.Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run tests/run.sh, which installs it"
    procs: list[subprocess.Popen] = []
    work = tempfile.TemporaryDirectory()
    try:
        backends = ""
        for name in ("ev1", "ev2"):
            port = free_port()
            log = open(pathlib.Path(work.name) / f"{name}.log", "w")
            p = subprocess.Popen(
                ["node", str(EVERYTHING), "streamableHttp"],
                env=dict(os.environ, PORT=str(port)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs.append(p)
            wait_listening(port, p, f"server-everything {name}")
            backends += f"  - name: {name}\n    url: http://127.0.0.1:{port}/mcp\n"
        cfg = pathlib.Path(work.name) / "ringmux.yaml"
        cfg.write_text(
            "listen: 127.0.0.1:0\nshards: 2\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n" + backends
        )
        gw, url, admin = start_gateway(cfg, pathlib.Path(work.name) / "gw.log")
        procs.append(gw)
        yield url, admin
    finally:
        for p in procs:
            p.kill()
            p.wait()
        work.cleanup()


def api(admin: str, path: str) -> dict:
    with urllib.request.urlopen(admin + path, timeout=5) as r:
        return json.load(r)


async def calls(url: str, n: int) -> None:
    async with Client(url, mode="legacy", cache=None) as c:
        for i in range(n):
            out = await c.call_tool("ev1__echo", {"message": f"m{i}"})
            assert out.content[0].text == f"Echo: m{i}"
        with pytest.raises(MCPError) as unknown:
            await c.call_tool("ev2__no-such-tool", {})
        assert unknown.value.error.code == -32602


def test_the_admin_page_renders_the_catalog_and_live_numbers(gateway):
    url, admin = gateway
    anyio.run(calls, url, 12)
    # The same figures the page must show, from the API it reads (the shards publish them
    # once a second).
    deadline = time.monotonic() + 15
    expected = []
    while not any(t["name"] == "ev1__echo" for t in expected):
        assert time.monotonic() < deadline, expected
        expected = api(admin, "/api/catalog")
        time.sleep(0.1)
    stop = threading.Event()

    def load():
        # More calls while the page is open: its request rate must move off zero.
        while not stop.is_set():
            anyio.run(calls, url, 5)

    driver = threading.Thread(target=load, daemon=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            seen_errors = []
            page.on("pageerror", lambda e: seen_errors.append(str(e)))
            page.goto(admin + "/")
            page.wait_for_selector("#status[data-state=ready]", timeout=15_000)
            # The backends, with their era found out and their calls counted.
            page.wait_for_function(
                """() => [...document.querySelectorAll('#backends tbody tr')]
                    .some(r => r.cells[0].textContent === 'ev1' && Number(r.cells[5].textContent) >= 12)""",
                timeout=15_000,
            )
            rows = page.eval_on_selector_all(
                "#backends tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
            )
            by_name = {r[0]: r for r in rows}
            assert set(by_name) == {"ev1", "ev2"}, rows
            assert by_name["ev1"][1] == "streamable-http", rows
            assert by_name["ev1"][2] == "stateful", rows
            assert by_name["ev1"][3] == "up", rows
            assert int(by_name["ev1"][4]) > 5, rows
            assert float(by_name["ev1"][6]) > 0, rows
            # The federated catalog, every tool the API lists.
            page.wait_for_function(
                f"() => document.querySelectorAll('#catalog tbody tr').length === {len(expected)}",
                timeout=15_000,
            )
            names = page.eval_on_selector_all("#catalog tbody tr td:first-child", "cs => cs.map(c => c.textContent)")
            assert set(names) == {t["name"] for t in expected}
            assert "ev1__echo" in names and "ev2__echo" in names
            assert page.text_content("#catalog-count") == str(len(expected))
            # Live numbers: the rate moves while calls go on; methods and shards are listed.
            driver.start()
            page.wait_for_function("() => Number(document.getElementById('rate').textContent) > 0", timeout=15_000)
            methods = page.eval_on_selector_all("#methods tbody tr td:first-child", "cs => cs.map(c => c.textContent)")
            assert "tools/call" in methods and "initialize" in methods, methods
            assert page.eval_on_selector_all("#shards tbody tr", "rs => rs.length") == 2
            # The unknown tool is among the recent errors, the client's fault.
            page.wait_for_function(
                """() => [...document.querySelectorAll('#errors tbody tr')]
                    .some(r => r.cells[2].textContent === 'ev2__no-such-tool' && r.cells[5].textContent === 'client')""",
                timeout=15_000,
            )
            assert seen_errors == [], seen_errors
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            stop.set()
            browser.close()
    if driver.is_alive():
        driver.join(timeout=30)
    assert ARTIFACT.stat().st_size > 10_000
