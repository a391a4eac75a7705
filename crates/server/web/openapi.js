// New Connection from an OpenAPI document: paste or upload (JSON or YAML), review every
// operation with its warnings, choose and edit them, fill in the base URL and the secret,
// save. Large descriptions (GitHub's 1,223 operations) stay usable: rows are light, the
// schemas are drawn only when opened, and search narrows what "select all" touches.

import { api, ws } from "./api.js";
import { h, clear, notice, pretty, showFieldErrors } from "./dom.js";
import { authFields, readAuth } from "./wizard.js";

const escapePointer = (s) => s.replace(/~/g, "~0").replace(/\//g, "~1");

/// The document pointer prefix of a draft operation (`/paths/~1pets~1{id}/get`).
function pointerOf(op) {
  return `/paths/${escapePointer((op.path || "").replace(/\{\{([^}]+)\}\}/g, "{$1}"))}/${(op.method || "").toLowerCase()}`;
}

export function openapiForm(main, ctx) {
  const text = h("textarea", { id: "spec-text", class: "json", rows: 10, placeholder: "Paste an OpenAPI 3.x or Swagger 2.0 document, JSON or YAML" });
  const file = h("input", { id: "spec-file", type: "file", accept: ".json,.yaml,.yml,application/json,application/yaml,text/yaml" });
  const status = h("div", { id: "import-status", "aria-live": "polite" });
  const review = h("div", { id: "review" });
  const go = async (e) => {
    e.preventDefault();
    clear(status, h("p", { role: "status", class: "progress" }, "Reading the document…"));
    review.replaceChildren();
    let body;
    if (file.files && file.files[0]) {
      body = new FormData();
      body.append("file", file.files[0]);
    } else if (text.value.trim()) {
      body = text.value;
    } else {
      clear(status, notice("error", "Paste a document or choose a file."));
      return;
    }
    const started = performance.now();
    try {
      const result = await api("POST", `${ws(ctx.workspace.slug)}/connections/import/openapi`, body, { contentType: "text/plain" });
      clear(status, h("p", { class: "meta" }, `Read in ${Math.round(performance.now() - started)} ms.`));
      renderReview(review, ctx, result);
    } catch (err) {
      clear(status, notice("error", err.message));
    }
  };
  return h(
    "section",
    { id: "openapi-wizard" },
    h("form", { id: "import-form", onsubmit: go },
      h("label", { for: "spec-text" }, "Paste the document"), text,
      h("label", { for: "spec-file" }, "or upload it"), file,
      h("button", { type: "submit", id: "import" }, "Import")),
    status,
    review,
  );
}

function renderReview(root, ctx, result) {
  const draft = result.draft;
  const ops = draft.operations.map((op) => ({ op, keep: true, warnings: [] }));
  const general = [];
  for (const w of result.warnings || []) {
    const owner = ops.find((o) => w.pointer === pointerOf(o.op) || w.pointer.startsWith(`${pointerOf(o.op)}/`));
    (owner ? owner.warnings : general).push(w);
  }
  const name = h("input", { id: "review-name", value: draft.name });
  const slug = h("input", { id: "review-slug", value: draft.slug });
  const baseUrl = h("input", { id: "review-base-url", type: "url", value: draft.base_url || "" });
  const auth = authFields((draft.auth && draft.auth.type) || "none");
  const search = h("input", { id: "op-search", type: "search", placeholder: "Search operations", "aria-label": "Search operations" });
  const list = h("div", { id: "op-list" });
  const count = h("p", { id: "op-count", role: "status" });
  const visible = () => {
    const q = search.value.trim().toLowerCase();
    return ops.filter((o) => !q || [o.op.name, o.op.path, o.op.method, o.op.description].some((v) => String(v || "").toLowerCase().includes(q)));
  };
  const updateCount = () => {
    const kept = ops.filter((o) => o.keep).length;
    count.textContent = `${kept} of ${ops.length} operations selected`;
  };
  const row = (o) => {
    const box = h("input", { type: "checkbox", checked: o.keep, "aria-label": `Keep ${o.op.name}`, onchange: (e) => { o.keep = e.target.checked; updateCount(); } });
    const edit = h("details", { class: "op-edit" }, h("summary", {}, "Edit"));
    edit.addEventListener("toggle", () => {
      if (!edit.open || edit.dataset.drawn) return;
      edit.dataset.drawn = "1";
      const n = h("input", { value: o.op.name, "aria-label": "Operation name", oninput: (e) => { o.op.name = e.target.value; } });
      const d = h("textarea", { rows: 2, "aria-label": "Description", oninput: (e) => { o.op.description = e.target.value; } }, o.op.description || "");
      edit.append(h("label", {}, "Name", n), h("label", {}, "Description", d), h("h4", {}, "Input schema"), h("pre", { class: "schema" }, pretty(o.op.input_schema || {})));
    });
    return h(
      "div",
      { class: "op-row", "data-op": o.op.name },
      h("label", { class: "inline" }, box, " ", h("code", {}, o.op.name), ` ${o.op.method || ""} ${o.op.path || ""}`),
      o.op.description ? h("p", { class: "desc" }, o.op.description.slice(0, 300)) : null,
      o.warnings.map((w) => h("p", { class: "warning" }, `⚠ ${w.reason}`)),
      edit,
    );
  };
  const render = () => clear(list, visible().map(row));
  let timer;
  for (const ev of ["input", "change"]) search.addEventListener(ev, () => { clearTimeout(timer); timer = setTimeout(render, 120); });
  const setAll = (keep) => {
    for (const o of visible()) o.keep = keep;
    render();
    updateCount();
  };
  const message = h("div", { id: "review-message", "aria-live": "polite" });
  const form = h(
    "form",
    {
      id: "review-form",
      onsubmit: async (e) => {
        e.preventDefault();
        for (const el of form.querySelectorAll(".field-error")) el.remove();
        message.replaceChildren();
        const kept = ops.filter((o) => o.keep).map((o) => o.op);
        const body = { ...draft, name: name.value, slug: slug.value, base_url: baseUrl.value, auth: readAuth(auth), operations: kept };
        clear(message, h("p", { role: "status", class: "progress" }, `Saving ${kept.length} operations…`));
        try {
          const created = await api("POST", `${ws(ctx.workspace.slug)}/connections`, body);
          location.assign(`/connections/${created.slug}`);
        } catch (err) {
          clear(message, notice("error", err.message));
          showFieldErrors(form, message, err);
        }
      },
    },
    h("h2", {}, `${result.summary.title} (${result.summary.version}, ${result.summary.format})`),
    general.length ? h("details", { id: "general-warnings" }, h("summary", {}, `${general.length} warnings about the document`), general.map((w) => h("p", { class: "warning" }, `${w.pointer}: ${w.reason}`))) : null,
    h("div", { class: "field", "data-pointer": "/name" }, h("label", { for: "review-name" }, "Name"), name),
    h("div", { class: "field", "data-pointer": "/slug" }, h("label", { for: "review-slug" }, "Slug"), slug),
    h("div", { class: "field", "data-pointer": "/base_url" }, h("label", { for: "review-base-url" }, "Base URL"), baseUrl),
    h("div", { "data-pointer": "/auth" }, auth.element),
    h("h2", {}, "Operations"),
    search,
    h("div", { class: "bulk" }, h("button", { type: "button", id: "select-all", onclick: () => setAll(true) }, "Select all shown"), " ", h("button", { type: "button", id: "select-none", onclick: () => setAll(false) }, "Deselect all shown")),
    count,
    list,
    h("div", { class: "actions", "data-pointer": "/operations" }, h("button", { type: "submit", id: "save-import" }, "Save connection")),
    message,
  );
  render();
  updateCount();
  clear(root, form);
  document.documentElement.dataset.reviewed = String(Math.round(performance.now()));
}
