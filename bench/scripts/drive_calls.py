"""Drives one MCP session over one keep-alive connection: initialize, tools/list, then N
tools/call of `echo` through ringmux, checking every answer. Used by callgrind-call.sh.

usage: drive_calls.py PORT N   (AUTHORIZATION=... sends that header with every request;
                               TLS_CA=FILE speaks https, trusting that CA; MCP_PATH=/p posts
                               there instead of /mcp; TOOL=name calls that tool)
"""
import http.client
import json
import os
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
if os.environ.get("TLS_CA"):
    import ssl
    ctx = ssl.create_default_context(cafile=os.environ["TLS_CA"])
    conn = http.client.HTTPSConnection("localhost", port, timeout=30, context=ctx)
else:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
if os.environ.get("AUTHORIZATION"):
    HEADERS["authorization"] = os.environ["AUTHORIZATION"]


def post(body, session=None):
    headers = dict(HEADERS)
    if session:
        headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = "2025-11-25"
    conn.request("POST", os.environ.get("MCP_PATH", "/mcp"), json.dumps(body), headers)
    resp = conn.getresponse()
    return resp, resp.read()


resp, _ = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "drive_calls", "version": "1"}}})
session = resp.getheader("mcp-session-id")
assert session, "no session id"
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, session)
for i in range(n):
    _, data = post({"jsonrpc": "2.0", "id": i + 2, "method": "tools/call",
                    "params": {"name": os.environ.get("TOOL", "a__echo"), "arguments": {"message": "hello"}}}, session)
    assert b'"hello"' in data, data
