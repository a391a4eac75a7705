// The Connections hub: the workspace's connections, with search.

import { api, ws } from "./api.js";
import { h, clear, when } from "./dom.js";

export async function hubPage(main, ctx) {
  const slug = ctx.workspace.slug;
  clear(main, h("h1", {}, "Connections"), h("p", { class: "status", role: "status" }, "Loading…"));
  const list = await api("GET", `${ws(slug)}/connections`);
  const search = h("input", { type: "search", id: "search", placeholder: "Search by name, slug or type", "aria-label": "Search connections" });
  const body = h("tbody");
  const count = h("p", { class: "count", role: "status" });
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = list.filter((c) =>
      !q || [c.name, c.slug, c.service_type, c.fulfillment, c.auth && c.auth.type].some((v) => String(v || "").toLowerCase().includes(q)),
    );
    clear(
      body,
      shown.map((c) =>
        h(
          "tr",
          { "data-slug": c.slug },
          h("td", {}, h("a", { href: `/connections/${c.slug}` }, c.name)),
          h("td", {}, h("code", {}, c.slug)),
          h("td", {}, c.service_type),
          h("td", {}, c.fulfillment),
          h("td", { class: "num" }, String(c.operation_count)),
          h("td", {}, (c.auth && c.auth.type) || ""),
          h("td", {}, when(c.updated_at)),
        ),
      ),
    );
    count.textContent = list.length === 0
      ? "No connections yet."
      : `${shown.length} of ${list.length} connection${list.length === 1 ? "" : "s"}`;
  };
  search.addEventListener("input", render);
  search.addEventListener("change", render);
  render();
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
        h("thead", {}, h("tr", {}, ["Name", "Slug", "Service", "Fulfillment", "Tools", "Auth", "Changed"].map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
  );
  search.focus();
}
