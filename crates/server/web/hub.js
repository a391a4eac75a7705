// The Connections hub: the workspace's connections, with search.

import { ws } from "./api.js";
import { h, clear, when } from "./dom.js";

export async function hubPage(main, ctx) {
  const slug = ctx.workspace.slug;
  clear(main, h("h1", {}, "Connections"), h("p", { class: "status", role: "status" }, "Loading…"));
  const list = await ctx.get(`${ws(slug)}/connections`);
  const search = h("input", { type: "search", id: "search", placeholder: "Search by name, slug or type", "aria-label": "Search connections" });
  const body = h("tbody");
  const count = h("p", { class: "count", role: "status" });
  // a page of rows at a time: a table of thousands takes long to lay out, and search
  // finds any of them
  const PAGE = 100;
  let limit = PAGE;
  const more = h("button", { type: "button", id: "show-more", hidden: true, onclick: () => { limit += PAGE; render(true); } }, "Show more");
  const render = (keepLimit) => {
    if (!keepLimit) limit = PAGE;
    const q = search.value.trim().toLowerCase();
    const shown = list.filter((c) =>
      !q || [c.name, c.slug, c.service_type, c.fulfillment, c.auth && c.auth.type].some((v) => String(v || "").toLowerCase().includes(q)),
    );
    more.hidden = shown.length <= limit;
    clear(
      body,
      shown.slice(0, limit).map((c) =>
        h(
          "tr",
          { "data-slug": c.slug },
          h("td", {}, h("a", { href: `/connections/${c.slug}` }, c.name)),
          h("td", {}, h("code", {}, c.slug)),
          h("td", {}, c.service_type),
          h("td", {}, c.fulfillment),
          h("td", { class: "num" }, String(c.operation_count)),
          h("td", {}, (c.auth && c.auth.type) || ""),
          h("td", { class: "used-by" }, (c.used_by || []).length
            ? h("span", { title: c.used_by.map((u) => `${u.kind} ${u.name}: ${u.tools.join(", ")}`).join("\n") },
              c.used_by.map((u) => `${u.kind === "agent" ? "Agent" : "Workflow"} ${u.name}`).join(", "))
            : h("span", { class: "hint" }, "unused")),
          h("td", {}, when(c.updated_at)),
        ),
      ),
    );
    count.textContent = list.length === 0
      ? "No connections yet."
      : `${shown.length} of ${list.length} connection${list.length === 1 ? "" : "s"}${shown.length > limit ? `, the first ${limit} listed` : ""}`;
  };
  search.addEventListener("input", () => render(false));
  search.addEventListener("change", () => render(false));
  render(false);
  clear(
    main,
    h("div", { class: "title-row" }, h("h1", {}, "Connections"), ctx.isAdmin ? h("a", { class: "button", href: "/connections/new", id: "new-connection" }, "New Connection") : null),
    search,
    count,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "connections" },
        h("thead", {}, h("tr", {}, ["Name", "Slug", "Service", "Fulfillment", "Tools", "Auth", "Used by", "Changed"].map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
    more,
  );
  search.focus();
}
