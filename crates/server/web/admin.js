// Platform Admin: workspaces and users (platform admins only; the API refuses others).

import { api } from "./api.js";
import { h, clear, when } from "./dom.js";

function table(id, heads, rows) {
  return h("div", { class: "table-wrap" }, h("table", { id }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)));
}

export async function adminWorkspacesPage(main) {
  clear(main, h("h1", {}, "Workspaces"), h("p", { role: "status" }, "Loading…"));
  const list = await api("GET", "/api/workspaces");
  clear(main, h("h1", {}, "Workspaces"), table("workspaces", ["Name", "Slug", "Created"], list.map((w) => h("tr", {}, h("td", {}, w.name), h("td", {}, h("code", {}, w.slug)), h("td", {}, when(w.created_at))))));
}

export async function adminUsersPage(main) {
  clear(main, h("h1", {}, "Users"), h("p", { role: "status" }, "Loading…"));
  const list = await api("GET", "/api/users");
  clear(main, h("h1", {}, "Users"), table("users", ["Name", "E-mail", "Platform admin", "Created"], list.map((u) => h("tr", {}, h("td", {}, u.name), h("td", {}, u.email), h("td", {}, u.platform_admin ? "yes" : "no"), h("td", {}, when(u.created_at))))));
}
