// Platform Admin: workspaces and their members, users, platform service keys and OAuth
// providers (platform admins only; the API refuses others and the page says so).

import { api, ws } from "./api.js";
import { h, clear, notice, when, showFieldErrors } from "./dom.js";

const SERVICES = ["openai", "anthropic", "gemini", "brave", "telegram"];
const PROVIDERS = ["gmail", "github"];

function table(id, heads, rows) {
  return h("div", { class: "table-wrap" }, h("table", { id }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)));
}

/// Runs `work`, then shows `done` or the API's message in `box`.
async function attempt(box, work, done) {
  box.replaceChildren();
  try {
    await work();
    if (done) box.append(notice("ok", done));
    return true;
  } catch (err) {
    box.append(notice("error", err.message));
    return false;
  }
}

function members(w, users) {
  const box = h("div", { class: "members", "data-workspace": w.slug });
  const message = h("div", { "aria-live": "polite" });
  const load = async () => {
    const list = await api("GET", `${ws(w.slug)}/members`);
    const role = (m) => h("select", { "aria-label": `Role of ${m.email}`, onchange: (e) => attempt(message, () => api("PUT", `${ws(w.slug)}/members/${m.user_id}`, { role: e.target.value }).then(load), `${m.email} is now ${e.target.value}.`) },
      ["admin", "member"].map((r) => h("option", { value: r, selected: r === m.role }, r)));
    const who = h("select", { "aria-label": "User to add" }, users.filter((u) => !list.some((m) => m.user_id === u.id)).map((u) => h("option", { value: u.id }, u.email)));
    const newRole = h("select", { "aria-label": "Role" }, h("option", { value: "member" }, "member"), h("option", { value: "admin" }, "admin"));
    clear(box,
      table(`members-${w.slug}`, ["E-mail", "Name", "Role", ""], list.map((m) => h("tr", { "data-user": m.email },
        h("td", {}, m.email), h("td", {}, m.name), h("td", {}, role(m)),
        h("td", {}, h("button", { type: "button", class: "link", onclick: () => attempt(message, () => api("DELETE", `${ws(w.slug)}/members/${m.user_id}`).then(load), `Removed ${m.email}.`) }, "Remove"))))),
      who.options.length
        ? h("form", { class: "inline-form", onsubmit: (e) => { e.preventDefault(); attempt(message, () => api("PUT", `${ws(w.slug)}/members/${who.value}`, { role: newRole.value }).then(load), "Added."); } }, who, newRole, h("button", { type: "submit" }, "Add member"))
        : null,
      message);
  };
  return { box, load };
}

export async function adminWorkspacesPage(main) {
  clear(main, h("h1", {}, "Workspaces"), h("p", { role: "status" }, "Loading…"));
  const [list, users] = await Promise.all([api("GET", "/api/workspaces"), api("GET", "/api/users")]);
  const name = h("input", { id: "new-ws-name", required: true });
  const slug = h("input", { id: "new-ws-slug", required: true, pattern: "[a-z][a-z0-9_-]{0,62}" });
  const message = h("div", { "aria-live": "polite" });
  const create = h("form", { id: "create-workspace", class: "inline-form", onsubmit: async (e) => {
    e.preventDefault();
    if (await attempt(message, () => api("POST", "/api/workspaces", { name: name.value, slug: slug.value }))) location.reload();
  } }, h("label", { for: "new-ws-name" }, "Name"), name, h("label", { for: "new-ws-slug" }, "Slug"), slug, h("button", { type: "submit" }, "Create workspace"));
  clear(main, h("h1", {}, "Workspaces"), create, message,
    list.map((w) => {
      const m = members(w, users);
      const d = h("details", { class: "workspace", "data-workspace": w.slug }, h("summary", {}, `${w.name} (${w.slug}), created ${when(w.created_at)}`), m.box);
      d.addEventListener("toggle", () => { if (d.open && !d.dataset.loaded) { d.dataset.loaded = "1"; m.load().catch((err) => m.box.append(notice("error", err.message))); } });
      return d;
    }));
}

export async function adminUsersPage(main) {
  clear(main, h("h1", {}, "Users"), h("p", { role: "status" }, "Loading…"));
  const list = await api("GET", "/api/users");
  const email = h("input", { id: "new-user-email", type: "email", required: true });
  const name = h("input", { id: "new-user-name", required: true });
  const password = h("input", { id: "new-user-password", type: "password", autocomplete: "new-password", placeholder: "optional, 12 characters or more" });
  const admin = h("input", { id: "new-user-admin", type: "checkbox" });
  const message = h("div", { "aria-live": "polite" });
  const form = h("form", { id: "create-user", onsubmit: async (e) => {
    e.preventDefault();
    const body = { email: email.value, name: name.value, platform_admin: admin.checked };
    if (password.value) body.password = password.value;
    if (await attempt(message, () => api("POST", "/api/users", body))) location.reload();
  } },
  h("label", { for: "new-user-email" }, "E-mail"), email, h("label", { for: "new-user-name" }, "Name"), name,
  h("label", { for: "new-user-password" }, "Password"), password, h("label", { class: "inline" }, admin, " Platform admin"),
  h("button", { type: "submit" }, "Create user"));
  clear(main, h("h1", {}, "Users"),
    table("users", ["Name", "E-mail", "Platform admin", "Created"], list.map((u) => h("tr", { "data-user": u.email }, h("td", {}, u.name), h("td", {}, u.email), h("td", {}, u.platform_admin ? "yes" : "no"), h("td", {}, when(u.created_at))))),
    h("h2", {}, "New user"), form, message);
}

export async function adminServicesPage(main) {
  clear(main, h("h1", {}, "Service Credentials"), h("p", { role: "status" }, "Loading…"));
  const views = await Promise.all(SERVICES.map((s) => api("GET", `/api/admin/service-credentials/${s}`)));
  const sections = views.map((v) => {
    const key = h("input", { type: "password", id: `platform-key-${v.service}`, autocomplete: "off", placeholder: v.api_key_set ? "a key is set; blank keeps it" : "API key" });
    const baseUrl = h("input", { type: "url", id: `platform-url-${v.service}`, value: v.base_url || "", placeholder: "default endpoint" });
    const message = h("div", { "aria-live": "polite" });
    return h("section", { class: "service", "data-service": v.service },
      h("h2", {}, `${v.service} (${v.kind})`),
      h("p", { class: "meta" }, v.api_key_set ? `A key is set${v.updated_at ? `, changed ${when(v.updated_at)}` : ""}.` : "No platform key.", v.overridable ? " Workspaces may bring their own." : " Platform only."),
      h("form", { onsubmit: async (e) => {
        e.preventDefault();
        if (await attempt(message, () => api("PUT", `/api/admin/service-credentials/${v.service}`, { api_key: key.value, base_url: baseUrl.value }), "Saved.")) setTimeout(() => location.reload(), 400);
      } },
      h("label", { for: key.id }, "API key (write-only)"), key, h("label", { for: baseUrl.id }, "Base URL"), baseUrl,
      h("button", { type: "submit" }, "Save"),
      v.api_key_set ? h("button", { type: "button", class: "link", onclick: async () => { if (await attempt(message, () => api("DELETE", `/api/admin/service-credentials/${v.service}`), "Removed.")) setTimeout(() => location.reload(), 400); } }, " Remove") : null),
      message);
  });
  clear(main, h("h1", {}, "Service Credentials"), h("p", {}, "The platform's keys, used by every workspace that has none of its own."), sections);
}

export async function adminProvidersPage(main) {
  clear(main, h("h1", {}, "OAuth Providers"), h("p", { role: "status" }, "Loading…"));
  const views = await Promise.all(PROVIDERS.map((p) => api("GET", `/api/admin/oauth-providers/${p}`)));
  const sections = views.map((v) => {
    const id = h("input", { id: `client-id-${v.id}`, value: v.client_id || "", required: true });
    const secret = h("input", { id: `client-secret-${v.id}`, type: "password", autocomplete: "off", placeholder: v.client_secret_set ? "a secret is set; blank keeps it" : "client secret" });
    const redirect = h("input", { id: `redirect-${v.id}`, value: v.redirect_uri, readonly: true });
    const d = v.defaults || {};
    // endpoint overrides (GitHub Enterprise, tests): blank is the provider's own
    const urls = [["authorize_url", "Authorize URL"], ["token_url", "Token URL"], ["revoke_url", "Revoke URL"], ["api_base_url", "API base URL"]].map(([k, label]) => {
      const input = h("input", { id: `${k.replace(/_/g, "-")}-${v.id}`, name: k, type: "url", value: v[k] || "", placeholder: d[k] || (k === "revoke_url" ? "none (revoked through the API)" : "default") });
      return { k, input, row: h("div", { class: "field", "data-pointer": `/${k}` }, h("label", { for: input.id }, label), input) };
    });
    const message = h("div", { "aria-live": "polite" });
    const copy = h("button", { type: "button", onclick: async () => {
      redirect.select();
      try { await navigator.clipboard.writeText(v.redirect_uri); clear(message, notice("ok", "Copied.")); } catch (e) { clear(message, notice("ok", "Selected: copy it with Ctrl+C.")); }
    } }, "Copy");
    return h("section", { class: "provider", "data-provider": v.id },
      h("h2", {}, v.id),
      h("p", { class: "meta" }, v.source === "registry" ? "Configured here." : v.source === "environment" ? "Configured from the environment (CONNECT_* variables); saving here takes precedence." : "Not configured."),
      h("label", { for: redirect.id }, "Redirect URI (register it with the provider)"), h("div", { class: "copy-row" }, redirect, copy),
      h("form", { onsubmit: async (e) => {
        e.preventDefault();
        const form = e.target;
        for (const el of form.querySelectorAll(".field-error")) el.remove();
        const body = { client_id: id.value };
        if (secret.value) body.client_secret = secret.value;
        for (const u of urls) body[u.k] = u.input.value.trim();
        const ok = await attempt(message, () => api("PUT", `/api/admin/oauth-providers/${v.id}`, body).catch((err) => { showFieldErrors(form, message, err); throw err; }), "Saved.");
        if (ok) setTimeout(() => location.reload(), 400);
      } },
      h("div", { class: "field", "data-pointer": "/client_id" }, h("label", { for: id.id }, "Client ID"), id),
      h("div", { class: "field", "data-pointer": "/client_secret" }, h("label", { for: secret.id }, "Client secret (write-only)"), secret),
      h("fieldset", { class: "endpoints" },
        h("legend", {}, "Endpoints"),
        h("p", { class: "hint" }, "Leave blank for the provider's own endpoint (shown greyed); fill in only for a compatible server such as GitHub Enterprise."),
        urls.map((u) => u.row)),
      h("button", { type: "submit" }, "Save"),
      v.source === "registry" ? h("button", { type: "button", class: "link", onclick: async () => { if (await attempt(message, () => api("DELETE", `/api/admin/oauth-providers/${v.id}`), "Removed.")) setTimeout(() => location.reload(), 400); } }, " Remove") : null),
      message);
  });
  clear(main, h("h1", {}, "OAuth Providers"), sections);
}
