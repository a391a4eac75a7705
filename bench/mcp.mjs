// tools/call latency: the official TypeScript SDK client calling an MCP server directly,
// against the same call made through Chatterfly's invoke endpoint, in one process, in
// alternating blocks (the machines are noisy). Driven by bench/mcp.sh.
//
//   node bench/mcp.mjs MCP_URL CHATTERFLY_URL TOKEN TOOL ARGS_JSON [CALLS] [BLOCK]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mcpUrl, cfUrl, token, tool, argsJson, callsArg, blockArg] = process.argv.slice(2);
const args = JSON.parse(argsJson);
const calls = Number(callsArg ?? 2000);
const block = Number(blockArg ?? 100);

const client = new Client({ name: "bench", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
const slugTool = `bench.${tool}`;
const invokeUrl = `${cfUrl}/api/workspaces/default/tools/${slugTool}/invoke`;
const body = JSON.stringify({ arguments: args });

async function direct() {
  const r = await client.callTool({ name: tool, arguments: args });
  if (r.isError) throw new Error("direct call failed");
}
async function through() {
  const r = await fetch(invokeUrl, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body,
  });
  const v = await r.json();
  if (r.status !== 200 || v.output.is_error) throw new Error(`invoke failed: ${r.status} ${JSON.stringify(v)}`);
}

// warm up both paths (the Chatterfly session is opened by the first call)
for (let i = 0; i < 200; i++) { await direct(); await through(); }

const times = { direct: [], through: [] };
for (let done = 0; done < calls; done += block) {
  for (const [name, f] of [["direct", direct], ["through", through]]) {
    for (let i = 0; i < block; i++) {
      const t0 = process.hrtime.bigint();
      await f();
      times[name].push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
}
await client.close();

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const out = {};
for (const k of ["direct", "through"]) out[k] = { calls: times[k].length, p50_ms: pct(times[k], 50), p99_ms: pct(times[k], 99) };
out.ratio_p50 = out.through.p50_ms / out.direct.p50_ms;
out.ratio_p99 = out.through.p99_ms / out.direct.p99_ms;
out.added_p50_ms = out.through.p50_ms - out.direct.p50_ms;
console.log(JSON.stringify(out));
