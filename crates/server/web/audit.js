// The audit log: every tool call (who, tool, connection, outcome, status, duration), newest
// first, with filters; never arguments or credentials. Workspace admins.

import { api, ws } from "./api.js";
import { h, clear, when } from "./dom.js";

export async function auditPage(main, ctx) {
  const base = `${ws(ctx.workspace.slug)}`;
  const members = await api("GET", `${base}/members`).catch(() => []);
  const who = new Map(members.map((m) => [m.user_id, m.email]));
  const tool = h("input", { id: "filter-tool", placeholder: "slug.operation" });
  const connection = h("input", { id: "filter-connection", placeholder: "slug" });
  const outcome = h("select", { id: "filter-outcome" }, [["", "Any"], ["ok", "ok"], ["error", "error"]].map(([v, t]) => h("option", { value: v }, t)));
  const user = h("select", { id: "filter-user" }, h("option", { value: "" }, "Anyone"), members.map((m) => h("option", { value: m.user_id }, m.email)));
  const body = h("tbody");
  const more = h("button", { type: "button", id: "older", hidden: true }, "Older calls");
  const status = h("p", { role: "status", class: "count" });
  let next = null;
  const query = (before) => {
    const p = new URLSearchParams();
    for (const [k, el] of [["tool", tool], ["connection", connection], ["outcome", outcome], ["user_id", user]]) if (el.value) p.set(k, el.value);
    if (before) p.set("before", before);
    return `${base}/audit?${p}`;
  };
  const load = async (append) => {
    const page = await api("GET", query(append ? next : null));
    const rows = page.events.map((e) =>
      h("tr", {},
        h("td", {}, when(e.created_at)),
        h("td", {}, e.user_id ? who.get(e.user_id) || e.user_id : ""),
        h("td", {}, h("code", {}, e.tool)),
        h("td", {}, e.connection || ""),
        h("td", { class: `outcome ${e.outcome}` }, e.outcome, e.error_code ? ` (${e.error_code})` : ""),
        h("td", { class: "num" }, e.http_status == null ? "" : String(e.http_status)),
        h("td", { class: "num" }, `${e.duration_ms} ms`)));
    if (append) body.append(...rows);
    else clear(body, rows);
    next = page.next_before || null;
    more.hidden = !next;
    status.textContent = body.children.length ? `${body.children.length} calls shown` : "No calls match.";
  };
  more.addEventListener("click", () => load(true));
  const form = h("form", { id: "audit-filters", class: "filters", onsubmit: (e) => { e.preventDefault(); load(false); } },
    h("label", {}, "Tool ", tool), h("label", {}, "Connection ", connection), h("label", {}, "Outcome ", outcome), h("label", {}, "User ", user),
    h("button", { type: "submit", id: "apply-filters" }, "Filter"));
  clear(main, h("h1", {}, "Audit log"), form, status,
    h("div", { class: "table-wrap" }, h("table", { id: "audit" }, h("thead", {}, h("tr", {}, ["When", "Who", "Tool", "Connection", "Outcome", "HTTP", "Duration"].map((t) => h("th", { scope: "col" }, t)))), body)),
    more);
  await load(false);
}
