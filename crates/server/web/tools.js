// The tool picker, as agents see it: Standard tools, then Connections grouped by connection.

import { api, ws } from "./api.js";
import { h, clear, pretty } from "./dom.js";

function tool(t) {
  return h(
    "details",
    { class: "tool", "data-tool": t.name },
    h("summary", {}, h("code", {}, t.name), " ", h("span", { class: "desc" }, t.description || "")),
    h("pre", { class: "schema" }, pretty(t.input_schema || {})),
  );
}

export async function toolsPage(main, ctx) {
  clear(main, h("h1", {}, "Tools"), h("p", { role: "status" }, "Loading…"));
  const all = await api("GET", `${ws(ctx.workspace.slug)}/tools`);
  const groups = new Map();
  for (const t of all.connections || []) {
    const slug = t.name.split(".")[0];
    if (!groups.has(slug)) groups.set(slug, []);
    groups.get(slug).push(t);
  }
  clear(
    main,
    h("h1", {}, "Tools"),
    h("p", {}, "Exactly what agents and workflow Tool nodes can call in this workspace."),
    h("section", { id: "standard-tools" }, h("h2", {}, "Standard tools"), (all.standard || []).map(tool)),
    h(
      "section",
      { id: "connection-tools" },
      h("h2", {}, "Connections"),
      groups.size === 0 ? h("p", {}, "No connection tools yet.") : null,
      [...groups].map(([slug, list]) => h("section", { class: "group", "data-connection": slug }, h("h3", {}, h("a", { href: `/connections/${slug}` }, slug)), list.map(tool))),
    ),
  );
}
