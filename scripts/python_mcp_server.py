"""An MCP server built with the official Python SDK (PyPI `mcp`, MCPServer), for the tests.

usage: python_mcp_server.py streamable-http|sse PORT [SESSION_IDLE_SECONDS]

Tools: echo(text), add(a, b), fail(message) -> a tool error, big(n) -> n numbered lines,
grow(name) -> adds a tool called `name` and sends notifications/tools/list_changed,
auth_seen() -> the SHA-256 (hex) of the Authorization header of the HTTP request that
carried the call ("none" without one), so a test can check it without the server echoing
a credential; peer_port() -> the client's TCP port of the HTTP request that carried the
call, so a test can tell whether calls share a kept-alive connection.
"""
import hashlib
import sys

from mcp.server.mcpserver import Context, MCPServer

mode, port = sys.argv[1], int(sys.argv[2])
idle = float(sys.argv[3]) if len(sys.argv) > 3 else None
server = MCPServer("peer-python-sdk")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(message: str) -> str:
    """Always fails with the given message."""
    raise ValueError(message)


@server.tool()
def big(n: int) -> str:
    """Return n numbered lines."""
    return "\n".join(f"line {i}" for i in range(n))


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called `name` and tell the client that the tool list changed."""

    def added(text: str) -> str:
        return text

    server.add_tool(added, name=name, description="Added by grow.")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


@server.tool()
def auth_seen(ctx: Context) -> str:
    """The SHA-256 of the Authorization header this call arrived with."""
    request = ctx.request_context.request
    value = request.headers.get("authorization") if request is not None else None
    return hashlib.sha256(value.encode()).hexdigest() if value else "none"


@server.tool()
def peer_port(ctx: Context) -> str:
    """The client's TCP port of the HTTP request this call arrived on."""
    request = ctx.request_context.request
    client = request.client if request is not None else None
    return str(client.port) if client is not None else "none"


if mode == "streamable-http" and idle is not None:
    server.run(transport=mode, host="127.0.0.1", port=port, session_idle_timeout=idle)
else:
    server.run(transport=mode, host="127.0.0.1", port=port)
