-- MCP connections: the transport (auto, streamable_http, sse) and the server as last
-- discovered (JSON: name, version, protocol version, instructions); NULL for other types.
ALTER TABLE connections ADD COLUMN transport TEXT;
ALTER TABLE connections ADD COLUMN mcp_server TEXT;

-- MCP tools: the server's exact tool name, sent with tools/call.
ALTER TABLE connection_operations ADD COLUMN mcp_tool TEXT;
