// New Connection: an HTTP API defined by hand. The API checks everything on save; its
// field errors are shown next to the field they concern.

import { api, ws } from "./api.js";
import { h, clear, notice, fieldErrors, closestField, showFieldErrors } from "./dom.js";
import { openapiForm } from "./openapi.js";
import { mcpForm } from "./mcp.js";

const AUTH_TYPES = {
  none: { label: "None", public: [], secret: [] },
  bearer: { label: "Bearer token", public: [], secret: ["token"] },
  api_key_header: { label: "API key in a header", public: ["header"], secret: ["key"] },
  api_key_query: { label: "API key in the query", public: ["param"], secret: ["key"] },
  basic: { label: "Basic (user name and password)", public: [], secret: ["username", "password"] },
  service_account: { label: "Google service account", public: ["subject"], secret: ["service_account_json"] },
  oauth: { label: "Personal account (OAuth, per run)", public: [], secret: [] },
  bot_token: { label: "Bot token", public: [], secret: ["token"] },
};

const HTTP_AUTH = ["none", "bearer", "api_key_header", "api_key_query", "basic"];
const GMAIL_TIERS = [["send", "Send email"], ["read", "Read email"], ["full", "Full access to the mailbox"]];

/// A Google service account: its JSON key file (uploaded or pasted), the user it acts as
/// and the Gmail tiers it asks for (sent as `"tiers": "send read"`).
function serviceAccountFields(current, inputs) {
  const sa = current && current.type === "service_account" ? current : null;
  const isSet = sa && sa.service_account_json_set;
  const json = h("textarea", { id: "auth-service_account_json", name: "service_account_json", rows: 4, class: "json secret", autocomplete: "off",
    placeholder: isSet ? "a value is set; leave blank to keep it" : "paste the JSON key file, or choose it above" });
  const file = h("input", { type: "file", id: "sa-file", accept: ".json,application/json" });
  const read = h("p", { class: "hint", "aria-live": "polite" });
  file.addEventListener("change", () => {
    const f = file.files && file.files[0];
    if (!f) return;
    if (f.size > 65536) {
      read.textContent = `${f.name} is too large to be a key file.`;
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      json.value = String(reader.result);
      read.textContent = `Read ${f.name}.`;
      json.dispatchEvent(new Event("input", { bubbles: true }));
    };
    reader.onerror = () => (read.textContent = `Could not read ${f.name}.`);
    reader.readAsText(f);
  });
  const subject = h("input", { id: "auth-subject", name: "subject", type: "email", autocomplete: "off", placeholder: "user@your-domain.com", value: sa ? sa.subject : null });
  const had = sa && sa.tiers ? sa.tiers.split(/[ ,]+/) : ["send", "read"];
  const boxes = GMAIL_TIERS.map(([t, label]) => h("label", { class: "inline", for: `sa-tier-${t}` },
    h("input", { type: "checkbox", name: "sa-tier", id: `sa-tier-${t}`, value: t, checked: had.includes(t) }), ` ${label} (${t})`));
  inputs.set("service_account_json", json);
  inputs.set("subject", subject);
  inputs.set("tiers", {
    read: () => {
      const on = boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
      if (!on.length) throw Object.assign(new Error("Choose at least one Gmail permission."), { errors: [{ pointer: "/auth/tiers", detail: "choose at least one of send, read, full" }] });
      return on.join(" ");
    },
  });
  return [
    h("div", { class: "field", "data-pointer": "/auth/service_account_json" },
      h("label", { for: "sa-file" }, "JSON key file (write-only)"), file, read,
      h("label", { for: "auth-service_account_json" }, "or paste it"), json,
      isSet ? h("p", { class: "hint set" }, "A value is set.") : null),
    h("div", { class: "field", "data-pointer": "/auth/subject" }, h("label", { for: "auth-subject" }, "Act as (a user in your Google Workspace domain)"), subject),
    h("fieldset", { class: "sa-tiers field", "data-pointer": "/auth/tiers" }, h("legend", {}, "Gmail permissions (domain-wide delegation must allow them)"), boxes),
  ];
}

/// The auth fields for `type` among `allowed`; with `current` (an existing connection's
/// auth view) the secret fields show whether a value is set and blank keeps it.
export function authFields(type, current, allowed) {
  const kinds = allowed || (AUTH_TYPES[type] && !HTTP_AUTH.includes(type) ? [type] : HTTP_AUTH);
  const select = h("select", { id: "auth-type", "aria-label": "Auth type" }, kinds.map((k) => h("option", { value: k, selected: k === type }, AUTH_TYPES[k].label)));
  const fields = h("div", { class: "auth-fields" });
  const inputs = new Map();
  const render = () => {
    inputs.clear();
    const spec = AUTH_TYPES[select.value] || AUTH_TYPES.none;
    if (select.value === "service_account") return clear(fields, serviceAccountFields(current, inputs));
    if (select.value === "oauth") {
      return clear(fields, h("p", { class: "hint", id: "oauth-explain" }, "Each person who uses this connection connects their own Google account under ",
        h("a", { href: "/settings/accounts" }, "My Accounts"), " and chooses what it may do; each call acts as the person making it."));
    }
    clear(
      fields,
      [...spec.public, ...spec.secret].map((name) => {
        const secret = spec.secret.includes(name);
        const isSet = current && current.type === select.value && current[`${name}_set`];
        const big = name === "service_account_json";
        const input = h(big ? "textarea" : "input", {
          id: `auth-${name}`,
          name,
          type: big ? null : secret ? "password" : "text",
          rows: big ? 4 : null,
          class: big ? "json secret" : null,
          autocomplete: "off",
          value: !secret && current && current.type === select.value ? current[name] : null,
          placeholder: secret && isSet ? "a value is set; leave blank to keep it" : big ? "the service account's JSON key file" : null,
        });
        inputs.set(name, input);
        return h("div", { class: "field", "data-pointer": `/auth/${name}` }, h("label", { for: `auth-${name}` }, name, secret ? " (write-only)" : ""), input, secret && isSet ? h("p", { class: "hint set" }, "A value is set.") : null);
      }),
    );
  };
  select.addEventListener("change", render);
  render();
  return { element: h("fieldset", {}, h("legend", {}, "Auth"), h("div", { class: "field" }, h("label", { for: "auth-type" }, "Type"), select), fields), select, inputs };
}

export function readAuth(auth) {
  const out = { type: auth.select.value };
  for (const [name, input] of auth.inputs) {
    const v = input.read ? input.read() : input.value;
    if (v !== "") out[name] = v;
  }
  return out;
}

const TOKEN_FROM = [["", "Passed with each call or saved under My Accounts"], ["github", "Each person's GitHub account"], ["gmail", "Each person's Google account"]];

/// Where a bearer token of a `caller`/`participant` connection comes from: passed with each
/// call (or a saved key), or each person's account under My Accounts (`oauth_provider`).
/// Shown only when it applies (`sync` with the fulfillment and auth type).
export function tokenFromField(current) {
  const select = h("select", { id: "oauth-provider" }, TOKEN_FROM.map(([v, t]) => h("option", { value: v, selected: v === (current || "") }, t)));
  const element = h("div", { class: "field", "data-pointer": "/oauth_provider", hidden: true }, h("label", { for: "oauth-provider" }, "Token from"), select,
    h("p", { class: "hint" }, "With an account, each person connects it under ", h("a", { href: "/settings/accounts" }, "My Accounts"), "."));
  return {
    element,
    select,
    sync: (fulfillment, authType) => (element.hidden = !(["caller", "participant"].includes(fulfillment) && authType === "bearer")),
    // the value to send: left out when it does not apply or is empty
    read: () => (!element.hidden && select.value ? { oauth_provider: select.value } : {}),
  };
}

export function suggestSlug(name) {
  let s = name.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  if (!/^[a-z]/.test(s)) s = `c_${s}`;
  return s.slice(0, 63).replace(/_+$/, "") || "connection";
}

function operationRow(index, remove) {
  const field = (label, input, pointer) => h("div", { class: "field", "data-pointer": pointer }, h("label", {}, label, input));
  const name = h("input", { class: "op-name", required: true });
  const method = h("select", { class: "op-method" }, ["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => h("option", { value: m }, m)));
  const path = h("input", { class: "op-path", placeholder: "/items/{{id}}" });
  const description = h("input", { class: "op-description" });
  const input = h("textarea", { class: "op-input json", rows: 4, placeholder: '{"type": "object", "properties": {"id": {"type": "string"}}}' });
  const output = h("textarea", { class: "op-output json", rows: 2, placeholder: "optional" });
  const at = `/operations/${index}`;
  const element = h(
    "fieldset",
    { class: "operation" },
    h("legend", {}, `Operation ${index + 1}`),
    field("Name ", name, `${at}/name`),
    field("Method ", method, `${at}/method`),
    field("Path ", path, `${at}/path`),
    field("Description ", description, `${at}/description`),
    field("Input schema (JSON) ", input, `${at}/input_schema`),
    field("Output schema (JSON) ", output, `${at}/output_schema`),
    h("button", { type: "button", class: "link", onclick: remove }, "Remove operation"),
  );
  const json = (area, label) => {
    if (!area.value.trim()) return undefined;
    try {
      return JSON.parse(area.value);
    } catch (e) {
      throw new Error(`${label} of operation ${index + 1} is not valid JSON: ${e.message}`);
    }
  };
  return {
    element,
    read: () => ({
      name: name.value,
      method: method.value,
      path: path.value,
      description: description.value || undefined,
      input_schema: json(input, "The input schema"),
      output_schema: json(output, "The output schema"),
    }),
  };
}

const KINDS = [
  ["http", "HTTP API"],
  ["openapi", "OpenAPI"],
  ["mcp", "MCP Server"],
  ["gmail", "Gmail"],
  ["telegram", "Telegram"],
];

const BUILT_IN = {
  gmail: { title: "Gmail", auth: ["service_account", "oauth"], hint: "Sends and reads mail as a Google Workspace user through a service account with domain-wide delegation, or as each run's own account (OAuth, connected under My Accounts)." },
  telegram: { title: "Telegram", auth: ["bot_token"], hint: "A bot made with @BotFather; its token stays encrypted." },
};

/// Where a call's credentials come from, and the participant role when participants
/// bring them (one of the workspace's roles, managed on the Participants page).
export function fulfillmentFields(ctx) {
  const select = h("select", { id: "fulfillment" },
    [["static", "Stored here (static)"], ["caller", "Each caller brings them (per run)"], ["participant", "Each participant brings them"]].map(([v, t]) => h("option", { value: v }, t)));
  const role = h("select", { id: "participant-role" }, h("option", { value: "" }, "Loading roles…"));
  const roleHint = h("p", { class: "hint" }, "Participants of this role give their credentials through their onboarding link. Roles are managed under ", h("a", { href: "/participants" }, "Participants"), ".");
  const roleField = h("div", { class: "field", "data-pointer": "/participant_role", hidden: true }, h("label", { for: "participant-role" }, "Participant role"), role, roleHint);
  let loaded = false;
  const loadRoles = async () => {
    if (loaded || !ctx) return;
    loaded = true;
    try {
      const roles = await api("GET", `${ws(ctx.workspace.slug)}/participant-roles`);
      clear(role, roles.length ? roles.map((r) => h("option", { value: r.name }, r.name)) : h("option", { value: "" }, "No roles yet: add one under Participants"));
    } catch (e) {
      clear(role, h("option", { value: "" }, "Roles could not be loaded"));
    }
  };
  const sync = () => {
    roleField.hidden = select.value !== "participant";
    if (!roleField.hidden) loadRoles();
  };
  select.addEventListener("change", sync);
  return {
    element: h("div", {}, h("div", { class: "field", "data-pointer": "/fulfillment" }, h("label", { for: "fulfillment" }, "Credentials"), select), roleField),
    select,
    read: () => (select.value === "participant" ? { fulfillment: "participant", participant_role: role.value } : { fulfillment: select.value }),
    /// Only `allowed` may be chosen; `preferred` is chosen when the current one is not.
    limit: (allowed, preferred) => {
      for (const o of select.options) o.disabled = !allowed.includes(o.value);
      if (!allowed.includes(select.value)) select.value = preferred;
      sync();
    },
  };
}

/// Telegram: the bot's name from `getMe`, checked before the connection is saved.
function botCheck(ctx, auth, baseUrl) {
  const out = h("div", { id: "bot-check", "aria-live": "polite" });
  let checkedFor = null;
  const run = async () => {
    const input = auth.inputs.get("token");
    const token = input ? input.value.trim() : "";
    const key = `${baseUrl.value}\n${token}`;
    if (checkedFor === key) return true;
    clear(out, h("p", { role: "status" }, "Asking Telegram about the bot…"));
    try {
      const r = await api("POST", `${ws(ctx.workspace.slug)}/connections/telegram-check`, { token, base_url: baseUrl.value || undefined });
      const bot = r.bot || {};
      clear(out, h("p", { class: "notice ok", id: "bot-name", "data-username": bot.username || "" }, "Bot: ", h("strong", {}, bot.first_name || "(no name)"), bot.username ? ` (@${bot.username})` : ""));
      checkedFor = key;
      return true;
    } catch (err) {
      const field = (err.errors || []).find((e) => e.pointer === "/auth/token" || e.pointer === "/token");
      clear(out, notice("error", field ? field.detail : err.message));
      checkedFor = null;
      return false;
    }
  };
  const button = h("button", { type: "button", id: "check-bot", onclick: run }, "Check bot");
  return { element: h("div", { class: "field" }, button, out), run };
}

function builtInForm(ctx, kind) {
  const spec = BUILT_IN[kind];
  const name = h("input", { id: "name", required: true, value: spec.title });
  const slug = h("input", { id: "slug", required: true, value: kind });
  const auth = authFields(spec.auth[0], null, spec.auth);
  const fulfillment = fulfillmentFields(ctx);
  const baseUrl = kind === "telegram" ? h("input", { id: "base-url", type: "url", placeholder: "https://api.telegram.org" }) : null;
  const check = kind === "telegram" ? botCheck(ctx, auth, baseUrl) : null;
  // a service account is stored here; a personal account is each caller's own
  const fit = () => {
    if (auth.select.value === "oauth") fulfillment.limit(["caller", "participant"], "caller");
    else if (auth.select.value === "service_account") fulfillment.limit(["static"], "static");
  };
  auth.select.addEventListener("change", fit);
  fit();
  const message = h("div", { id: "wizard-message", "aria-live": "polite" });
  const form = h("form", {
    id: `${kind}-form`,
    onsubmit: async (e) => {
      e.preventDefault();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      message.replaceChildren();
      try {
        // a bot token is checked with Telegram before anything is saved
        if (check && fulfillment.select.value === "static" && !(await check.run())) return;
        const body = { name: name.value, slug: slug.value, service_type: kind, auth: readAuth(auth), ...fulfillment.read() };
        if (baseUrl && baseUrl.value) body.base_url = baseUrl.value;
        const created = await api("POST", `${ws(ctx.workspace.slug)}/connections`, body);
        location.assign(`/connections/${created.slug}`);
      } catch (err) {
        message.append(notice("error", err.message));
        showFieldErrors(form, message, err);
      }
    },
  },
  h("p", { class: "hint" }, spec.hint),
  h("div", { class: "field", "data-pointer": "/name" }, h("label", { for: "name" }, "Name"), name),
  h("div", { class: "field", "data-pointer": "/slug" }, h("label", { for: "slug" }, "Slug"), slug),
  baseUrl ? h("div", { class: "field", "data-pointer": "/base_url" }, h("label", { for: "base-url" }, "Bot API server (leave blank for Telegram's)"), baseUrl) : null,
  h("div", { "data-pointer": "/auth" }, auth.element),
  check ? check.element : null,
  fulfillment.element,
  h("div", { class: "actions" }, h("button", { type: "submit", id: "save" }, "Save connection")),
  message);
  return form;
}

export async function wizardPage(main, ctx) {
  if (!ctx.isAdmin) {
    clear(main, h("h1", {}, "New Connection"), notice("error", "Only workspace admins create connections."));
    return;
  }
  const kind = new URLSearchParams(location.search).get("type") || "http";
  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "Kind of connection" },
    KINDS.map(([k, label]) => h("a", { href: `/connections/new?type=${k}`, id: `kind-${k}`, class: k === kind ? "current" : null, "aria-current": k === kind ? "page" : null }, label)),
  );
  const back = h("p", {}, h("a", { href: "/connections" }, "← Connections"));
  if (kind === "openapi") {
    clear(main, back, h("h1", {}, "New Connection: OpenAPI"), tabs, openapiForm(main, ctx));
    return;
  }
  if (kind === "mcp") {
    clear(main, back, h("h1", {}, "New Connection: MCP Server"), tabs, mcpForm(main, ctx));
    return;
  }
  if (BUILT_IN[kind]) {
    clear(main, back, h("h1", {}, `New Connection: ${BUILT_IN[kind].title}`), tabs, builtInForm(ctx, kind));
    return;
  }
  const name = h("input", { id: "name", required: true, autocomplete: "off" });
  const slug = h("input", { id: "slug", required: true, autocomplete: "off", pattern: "[a-z][a-z0-9_]{0,62}" });
  let slugEdited = false;
  name.addEventListener("input", () => {
    if (!slugEdited) slug.value = suggestSlug(name.value);
  });
  slug.addEventListener("input", () => (slugEdited = true));
  const baseUrl = h("input", { id: "base-url", type: "url", required: true, placeholder: "https://api.example.com" });
  const auth = authFields("none");
  const fulfillment = fulfillmentFields(ctx);
  const tokenFrom = tokenFromField();
  const syncTokenFrom = () => tokenFrom.sync(fulfillment.select.value, auth.select.value);
  auth.select.addEventListener("change", syncTokenFrom);
  fulfillment.select.addEventListener("change", syncTokenFrom);
  const ops = [];
  const opsArea = h("div", { id: "operations" });
  const renumber = () => {
    const kept = ops.map((o) => o.read);
    clear(opsArea, ops.map((o) => o.element));
    return kept;
  };
  const addOp = () => {
    const row = operationRow(ops.length, () => {
      ops.splice(ops.indexOf(row), 1);
      renumber();
    });
    ops.push(row);
    renumber();
  };
  const message = h("div", { id: "wizard-message", "aria-live": "polite" });
  const readBody = () => ({ name: name.value, slug: slug.value, service_type: "http", base_url: baseUrl.value, auth: readAuth(auth), ...fulfillment.read(), ...tokenFrom.read(), operations: ops.map((o) => o.read()) });
  const showErrors = (err, cls) => {
    showFieldErrors(form, message, err, cls);
    if (!fieldErrors(err).size && err.code === "slug_taken") closestField(form, "/slug").append(h("p", { class: `field-error ${cls}`, role: "alert" }, err.message));
  };
  // checked as you type, by the API's own rules (nothing is saved)
  let seq = 0;
  let timer;
  const check = async () => {
    const mine = ++seq;
    let body;
    try {
      body = readBody();
    } catch (err) {
      for (const el of form.querySelectorAll(".field-error.live")) el.remove();
      message.replaceChildren(notice("error", err.message));
      return;
    }
    try {
      await api("POST", `${ws(ctx.workspace.slug)}/connections/validate`, body);
      if (mine !== seq) return;
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      message.replaceChildren(h("p", { class: "hint", id: "looks-good" }, "Looks good."));
    } catch (err) {
      if (mine !== seq) return;
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      message.replaceChildren();
      if (err.status === 422 || err.status === 409) showErrors(err, "live");
      else message.append(notice("error", err.message));
    }
  };
  const form = h(
    "form",
    {
      id: "http-form",
      onsubmit: async (e) => {
        e.preventDefault();
        for (const el of form.querySelectorAll(".field-error")) el.remove();
        message.replaceChildren();
        let body;
        clearTimeout(timer);
        seq++;
        try {
          body = readBody();
        } catch (err) {
          message.append(notice("error", err.message));
          return;
        }
        try {
          const created = await api("POST", `${ws(ctx.workspace.slug)}/connections`, body);
          location.assign(`/connections/${created.slug}`);
        } catch (err) {
          message.append(notice("error", err.message));
          showErrors(err, "");
        }
      },
    },
    h("div", { class: "field", "data-pointer": "/name" }, h("label", { for: "name" }, "Name"), name),
    h("div", { class: "field", "data-pointer": "/slug" }, h("label", { for: "slug" }, "Slug"), slug, h("p", { class: "hint" }, "Tools are named slug.operation.")),
    h("div", { class: "field", "data-pointer": "/base_url" }, h("label", { for: "base-url" }, "Base URL"), baseUrl),
    h("div", { "data-pointer": "/auth" }, auth.element),
    fulfillment.element,
    tokenFrom.element,
    h("h2", {}, "Operations"),
    opsArea,
    h("button", { type: "button", id: "add-operation", onclick: addOp }, "Add operation"),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "save" }, "Save connection")),
    message,
  );
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
  addOp();
  clear(main, back, h("h1", {}, "New Connection: HTTP API"), tabs, form);
  name.focus();
}
