// New Connection to an MCP server: URL and optional bearer token, the tools the server
// lists previewed with their schemas, then saved (all of them, or the ones kept).

import { api, ws } from "./api.js";
import { h, clear, notice, pretty } from "./dom.js";
import { suggestSlug } from "./wizard.js";

export function mcpForm(main, ctx) {
  const url = h("input", { id: "mcp-url", type: "url", required: true, placeholder: "https://example.com/mcp" });
  const token = h("input", { id: "mcp-token", type: "password", autocomplete: "off", placeholder: "optional" });
  const transport = h("select", { id: "mcp-transport" }, ["auto", "streamable_http", "sse"].map((t) => h("option", { value: t }, t)));
  const status = h("div", { id: "mcp-status", "aria-live": "polite" });
  const preview = h("div", { id: "mcp-preview" });
  const auth = () => (token.value ? { type: "bearer", token: token.value } : { type: "none" });
  const discover = async (e) => {
    e.preventDefault();
    preview.replaceChildren();
    clear(status, h("p", { role: "status", class: "progress" }, "Connecting to the server and listing its tools…"));
    try {
      const found = await api("POST", `${ws(ctx.workspace.slug)}/connections/discover/mcp`, { url: url.value, auth: auth(), transport: transport.value });
      status.replaceChildren();
      renderPreview(preview, ctx, found, { url: url.value, auth, transport: found.transport });
    } catch (err) {
      clear(status, notice("error", err.message));
    }
  };
  return h(
    "section",
    { id: "mcp-wizard" },
    h("form", { id: "discover-form", onsubmit: discover },
      h("label", { for: "mcp-url" }, "Server URL"), url,
      h("label", { for: "mcp-token" }, "Bearer token (write-only)"), token,
      h("label", { for: "mcp-transport" }, "Transport"), transport,
      h("button", { type: "submit", id: "discover" }, "Discover tools")),
    status,
    preview,
  );
}

function renderPreview(root, ctx, found, target) {
  const title = found.server.title || found.server.name;
  const name = h("input", { id: "mcp-name", value: title });
  const slug = h("input", { id: "mcp-slug", value: suggestSlug(found.server.name) });
  const keep = new Map(found.operations.map((op) => [op.name, true]));
  const message = h("div", { id: "mcp-message", "aria-live": "polite" });
  const tools = found.operations.map((op) => {
    const box = h("input", { type: "checkbox", checked: true, "aria-label": `Keep ${op.name}`, onchange: (e) => keep.set(op.name, e.target.checked) });
    return h(
      "details",
      { class: "tool", "data-tool": op.name },
      h("summary", {}, h("label", { class: "inline" }, box, " ", h("code", {}, op.name)), " ", h("span", { class: "desc" }, op.description || "")),
      h("pre", { class: "schema" }, pretty(op.input_schema || {})),
    );
  });
  clear(
    root,
    h("h2", {}, `${title} ${found.server.version}`),
    h("p", { class: "meta" }, `MCP ${found.server.protocol_version} over ${found.transport}; ${found.operations.length} tools.`),
    found.server.instructions ? h("p", { class: "desc" }, found.server.instructions) : null,
    (found.warnings || []).map((w) => h("p", { class: "warning" }, `⚠ ${w}`)),
    h("form", {
      id: "mcp-save-form",
      onsubmit: async (e) => {
        e.preventDefault();
        const operations = found.operations.filter((op) => keep.get(op.name));
        clear(message, h("p", { role: "status", class: "progress" }, "Saving…"));
        try {
          const created = await api("POST", `${ws(ctx.workspace.slug)}/connections`, {
            name: name.value, slug: slug.value, service_type: "mcp", base_url: target.url, auth: target.auth(), transport: target.transport, operations,
          });
          location.assign(`/connections/${created.slug}`);
        } catch (err) {
          clear(message, notice("error", err.message));
        }
      },
    },
    h("label", { for: "mcp-name" }, "Name"), name,
    h("label", { for: "mcp-slug" }, "Slug"), slug,
    h("h3", {}, "Tools"),
    tools,
    h("button", { type: "submit", id: "save-mcp" }, "Save connection"),
    message),
  );
}
