// Settings → Workspace → AI & Services: which key each service uses here (the
// workspace's own, the platform's, or none), and the workspace's own keys.

import { api, ws } from "./api.js";
import { h, clear, notice } from "./dom.js";

const SOURCE = { workspace: "Workspace key", platform: "Platform key" };

export async function servicesPage(main, ctx) {
  const base = `${ws(ctx.workspace.slug)}/services`;
  const message = h("div", { id: "services-message", "aria-live": "polite" });
  const body = h("tbody");
  const load = async () => {
    const list = await api("GET", base);
    clear(
      body,
      list.map((s) => {
        const key = h("input", { type: "password", autocomplete: "off", id: `key-${s.service}`, "aria-label": `${s.service} API key`, placeholder: s.workspace_key_set ? "a key is set; enter a new one to replace it" : "API key" });
        const act = async (method, payload, done) => {
          message.replaceChildren();
          try {
            await api(method, `${base}/${s.service}`, payload);
            message.append(notice("ok", done));
            await load();
          } catch (err) {
            message.append(notice("error", err.message));
          }
        };
        const controls = ctx.isAdmin && s.overridable
          ? h("form", { class: "inline-form", onsubmit: (e) => { e.preventDefault(); act("PUT", { api_key: key.value }, `Saved the workspace key for ${s.service}.`); } },
            key,
            h("button", { type: "submit", id: `save-${s.service}` }, "Save"),
            s.workspace_key_set ? h("button", { type: "button", class: "link", id: `remove-${s.service}`, onclick: () => act("DELETE", undefined, `Removed the workspace key for ${s.service}.`) }, "Remove") : null)
          : h("span", { class: "hint" }, s.overridable ? "" : "platform only");
        return h(
          "tr",
          { "data-service": s.service },
          h("td", {}, s.service),
          h("td", {}, s.kind),
          h("td", { class: "in-effect" }, SOURCE[s.in_effect] || "Not configured"),
          h("td", {}, s.workspace_key_set ? "set" : "not set"),
          h("td", {}, controls),
        );
      }),
    );
  };
  clear(
    main,
    h("h1", {}, "AI & Services"),
    h("p", {}, "Each service uses this workspace's own key when it has one, else the platform's. Keys are write-only."),
    message,
    h("div", { class: "table-wrap" }, h("table", { id: "services" }, h("thead", {}, h("tr", {}, ["Service", "Kind", "In effect", "Workspace key", ""].map((t) => h("th", { scope: "col" }, t)))), body)),
  );
  await load();
}
