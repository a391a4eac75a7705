// A connection's page: its settings (secrets write-only), its tools with a try-it panel,
// refresh for MCP connections, delete with a confirmation naming the slug.

import { api, ws } from "./api.js";
import { h, clear, notice, pretty, when, fieldErrors } from "./dom.js";
import { authFields, readAuth, tokenFromField } from "./wizard.js";
import { takesPersonalKeys } from "./accounts.js";

const ACCOUNT = { github: "Token from each person's GitHub account", gmail: "Token from each person's Google account" };

function formFor(schema, prefix) {
  // a form for the top-level properties of simple types; anything else goes as raw JSON
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const simple = Object.entries(props).every(([, p]) => ["string", "integer", "number", "boolean"].includes(p && p.type));
  if (!simple || Object.keys(props).length === 0) return null;
  const inputs = Object.entries(props).map(([name, p]) => {
    const id = `${prefix}-arg-${name}`;
    const input = p.type === "boolean"
      ? h("input", { type: "checkbox", id, name })
      : h("input", { type: p.type === "string" ? "text" : "number", step: p.type === "integer" ? "1" : "any", id, name, required: required.has(name) });
    return { name, p, input, row: h("div", { class: "field" }, h("label", { for: id }, name, required.has(name) ? " *" : ""), input, p.description ? h("p", { class: "hint" }, p.description) : null) };
  });
  return {
    rows: inputs.map((i) => i.row),
    read: () => {
      const out = {};
      for (const { name, p, input } of inputs) {
        if (p.type === "boolean") {
          if (input.checked) out[name] = true;
        } else if (input.value !== "") {
          out[name] = p.type === "string" ? input.value : Number(input.value);
        }
      }
      return out;
    },
  };
}

function tryIt(ctx, connection, op, index, people) {
  const toolName = `${connection.slug}.${op.name}`;
  // a participant connection is called on behalf of one of its participants
  const participant = connection.fulfillment !== "participant"
    ? null
    : people
      ? h("select", { id: `t${index}-participant`, class: "participant-select", "aria-label": "On behalf of" }, people.map((p) => h("option", { value: p.id }, `${p.name}${p.set ? "" : " (nothing given yet)"}`)))
      : h("input", { id: `t${index}-participant`, class: "participant-select", placeholder: "participant id", "aria-label": "On behalf of (participant id)" });
  // ids unique on the page: every tool has its own form
  const form = formFor(op.input_schema, `t${index}`);
  const raw = h("textarea", { class: "json", rows: 6, "aria-label": `Arguments of ${toolName} as JSON` }, "{}");
  const useRaw = h("input", { type: "checkbox", id: `t${index}-raw`, checked: !form });
  const result = h("div", { class: "result", "aria-live": "polite" });
  const send = h("button", { type: "submit" }, "Send");
  const formArea = h("div", { class: "form-area" }, form ? form.rows : null);
  const rawArea = h("div", { class: "raw-area" }, raw);
  const sync = () => {
    formArea.hidden = useRaw.checked || !form;
    rawArea.hidden = !useRaw.checked && !!form;
  };
  useRaw.addEventListener("change", sync);
  sync();
  return h(
    "form",
    {
      class: "try-it",
      "data-tool": toolName,
      onsubmit: async (e) => {
        e.preventDefault();
        let args;
        if (useRaw.checked || !form) {
          try {
            args = JSON.parse(raw.value || "{}");
          } catch (err) {
            clear(result, notice("error", `The arguments are not valid JSON: ${err.message}`));
            return;
          }
        } else {
          args = form.read();
        }
        send.disabled = true;
        clear(result, h("p", { role: "status" }, "Calling…"));
        const started = performance.now();
        try {
          const body = { arguments: args };
          if (participant && participant.value) body.participant = participant.value;
          const out = await api("POST", `${ws(ctx.workspace.slug)}/tools/${encodeURIComponent(toolName)}/invoke`, body);
          const status = out.output && typeof out.output.status === "number" ? `HTTP ${out.output.status}, ` : "";
          clear(result, h("p", { class: "meta" }, `${status}${out.duration_ms} ms`), h("pre", { class: "output" }, pretty(out.output)));
        } catch (err) {
          clear(result, notice("error", err.message), h("p", { class: "meta" }, `${err.status || "no answer"} after ${Math.round(performance.now() - started)} ms`));
        } finally {
          send.disabled = false;
        }
      },
    },
    participant ? h("div", { class: "field" }, h("label", { for: participant.id }, "On behalf of"), participant) : null,
    form ? h("label", { class: "inline" }, useRaw, " Raw JSON") : null,
    formArea,
    rawArea,
    send,
    result,
  );
}

function settings(ctx, c, reload) {
  const rows = [
    ["Slug", h("code", {}, c.slug)],
    ["Service", c.service_type],
    ["Base URL", c.base_url],
    ["Auth", c.auth.type],
    ["Fulfillment", c.fulfillment],
    ["Changed", when(c.updated_at)],
  ];
  for (const [k, v] of Object.entries(c.auth)) {
    if (k.endsWith("_set")) rows.push([k.slice(0, -4), v ? "a value is set" : "not set"]);
    else if (k !== "type") rows.push([k, String(v)]);
  }
  const myAccounts = h("a", { href: "/settings/accounts" }, "My Accounts");
  const provider = c.oauth_provider || (c.service_type === "gmail" && c.auth.type === "oauth" ? "gmail" : null);
  if (provider) rows.push(["Token from", h("span", { id: "token-from", "data-provider": provider }, `${ACCOUNT[provider] || provider} (`, myAccounts, ")")]);
  const view = h("dl", { class: "settings" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const personal = takesPersonalKeys(c)
    ? h("p", { class: "hint", id: "personal-key-hint" }, "Each caller brings the key. ", h("a", { href: "/settings/accounts" }, "Save your own key under My Accounts"), " to call it without passing one.")
    : null;
  if (!ctx.isAdmin) return h("section", {}, h("h2", {}, "Settings"), view, personal);
  const name = h("input", { id: "edit-name", value: c.name });
  const baseUrl = h("input", { id: "edit-base-url", value: c.base_url, type: "url" });
  const allowed = { gmail: ["service_account", "oauth"], telegram: ["bot_token"] }[c.service_type];
  const auth = authFields(c.auth.type, c.auth, allowed);
  const tokenFrom = ["http", "openapi"].includes(c.service_type) ? tokenFromField(c.oauth_provider) : null;
  if (tokenFrom) {
    const sync = () => tokenFrom.sync(c.fulfillment, auth.select.value);
    auth.select.addEventListener("change", sync);
    sync();
  }
  const message = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    {
      id: "edit-form",
      onsubmit: async (e) => {
        e.preventDefault();
        message.replaceChildren();
        try {
          const patch = { name: name.value, base_url: baseUrl.value, auth: readAuth(auth) };
          // shown: what it says (empty clears); hidden: a stored one no longer applies
          if (tokenFrom && !tokenFrom.element.hidden) patch.oauth_provider = tokenFrom.select.value || null;
          else if (c.oauth_provider) patch.oauth_provider = null;
          await api("PATCH", `${ws(ctx.workspace.slug)}/connections/${c.slug}`, patch);
          message.append(notice("ok", "Saved."));
          await reload();
        } catch (err) {
          message.append(notice("error", err.message));
          for (const [pointer, list] of fieldErrors(err)) message.append(notice("error", `${pointer}: ${list.join("; ")}`));
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: "edit-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { for: "edit-base-url" }, "Base URL"), baseUrl),
    auth.element,
    tokenFrom ? tokenFrom.element : null,
    h("button", { type: "submit" }, "Save"),
    message,
  );
  return h("section", {}, h("h2", {}, "Settings"), view, personal, h("details", {}, h("summary", {}, "Edit"), form));
}

/// What calls the connection's tools: agents, and deployed workflows.
function usedBy(list) {
  return h("section", { id: "used-by" }, h("h2", {}, "Used by"),
    list && list.length
      ? h("ul", {}, list.map((u) => h("li", { "data-kind": u.kind, "data-id": u.id },
        u.kind === "agent" ? "Agent " : "Workflow ",
        h("a", { href: `/${u.kind === "agent" ? "agents" : "workflows"}/${u.id}` }, u.name), ": ",
        u.tools.map((t) => h("code", { class: "chip" }, t)))))
      : h("p", { class: "hint" }, "No agent or deployed workflow calls its tools."));
}

function dangerZone(ctx, c) {
  const confirm = h("input", { id: "confirm-slug", autocomplete: "off", "aria-label": `Type ${c.slug} to confirm` });
  const message = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "danger", id: "delete-connection", disabled: true }, `Delete ${c.slug}`);
  confirm.addEventListener("input", () => (button.disabled = confirm.value !== c.slug));
  return h(
    "section",
    { class: "danger-zone" },
    h("h2", {}, "Delete"),
    h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          if (confirm.value !== c.slug) return;
          const remove = async (force) => {
            try {
              await api("DELETE", `${ws(ctx.workspace.slug)}/connections/${c.slug}${force ? "?force=true" : ""}`);
              location.assign("/connections");
            } catch (err) {
              clear(message, notice("error", err.message));
              // in use: what uses it, and the choice to delete it anyway
              if (err.code === "in_use") {
                message.append(h("button", { type: "button", class: "danger", id: "delete-anyway", onclick: () => remove(true) },
                  "Delete anyway (they fail at these tools until updated)"));
              }
            }
          };
          await remove(false);
        },
      },
      h("p", {}, "Agents and workflows that call its tools will fail. Type ", h("code", {}, c.slug), " to confirm."),
      confirm,
      button,
      message,
    ),
  );
}

function refresher(ctx, c, reload) {
  const out = h("div", { "aria-live": "polite" });
  return h(
    "section",
    {},
    h("h2", {}, "MCP server"),
    c.mcp_server ? h("p", {}, `${c.mcp_server.name} ${c.mcp_server.version} (protocol ${c.mcp_server.protocol_version}), ${c.transport}`) : null,
    h("button", {
      type: "button",
      id: "refresh",
      onclick: async (e) => {
        e.target.disabled = true;
        clear(out, h("p", { role: "status" }, "Asking the server for its tools…"));
        try {
          const r = await api("POST", `${ws(ctx.workspace.slug)}/connections/${c.slug}/refresh`);
          const line = (label, list) => h("p", {}, `${label}: `, list.length ? list.join(", ") : "none");
          clear(out, line("Added", r.added || []), line("Changed", r.changed || []), line("Removed", r.removed || []));
          await reload(out);
        } catch (err) {
          clear(out, notice("error", err.message));
        } finally {
          e.target.disabled = false;
        }
      },
    }, "Refresh tools"),
    out,
  );
}

/// Which participants of the connection's role gave credentials, and when (never values).
function participantsOf(ctx, c, people, reload) {
  const message = h("div", { "aria-live": "polite" });
  return h("section", { id: "connection-participants" },
    h("h2", {}, `Participants (${c.participant_role})`),
    people.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Participant"), h("th", {}, "Credentials"), h("th", {}, "Given"), h("th", {}, ""))),
        h("tbody", {}, people.map((p) => h("tr", { "data-participant": p.id, "data-set": String(p.set) },
          h("td", {}, p.name, p.email ? h("span", { class: "hint" }, ` ${p.email}`) : null),
          h("td", {}, p.set ? h("span", { class: "chip ok" }, p.identity ? `connected as ${p.identity}` : "given") : h("span", { class: "chip" }, p.status === "needs_reconnect" ? "must reconnect" : "not given")),
          h("td", {}, p.updated_at ? when(p.updated_at) : ""),
          h("td", {}, p.set ? h("button", { type: "button", class: "link danger", onclick: async () => {
            if (!confirm(`Revoke what ${p.name} gave for ${c.slug}?`)) return;
            try {
              await api("DELETE", `${ws(ctx.workspace.slug)}/participants/${encodeURIComponent(p.id)}/credentials/${encodeURIComponent(c.slug)}`);
              await reload();
            } catch (err) {
              message.replaceChildren(notice("error", err.message));
            }
          } }, "Revoke") : "")))))
      : h("p", { class: "hint" }, "No participant has this role yet. ", h("a", { href: "/participants" }, "Add participants"), "."),
    message);
}

export async function connectionPage(main, ctx, slug) {
  clear(main, h("h1", {}, slug), h("p", { role: "status" }, "Loading…"));
  const load = async (keep) => {
    const c = await api("GET", `${ws(ctx.workspace.slug)}/connections/${slug}`);
    // who gave credentials for a participant connection (admins see it)
    const people = c.fulfillment === "participant" && ctx.isAdmin
      ? await api("GET", `${ws(ctx.workspace.slug)}/connections/${slug}/participants`).catch(() => null)
      : null;
    const tools = h(
      "section",
      { id: "tools" },
      h("h2", {}, `Tools (${c.operations.length})`),
      c.operations.map((op, i) =>
        h(
          "details",
          { class: "tool", "data-tool": `${c.slug}.${op.name}` },
          h("summary", {}, h("code", {}, `${c.slug}.${op.name}`), op.method ? ` ${op.method} ${op.path}` : "", " ", h("span", { class: "desc" }, op.description || "")),
          h("h3", {}, "Input schema"),
          h("pre", { class: "schema" }, pretty(op.input_schema || {})),
          op.output_schema ? [h("h3", {}, "Output schema"), h("pre", { class: "schema" }, pretty(op.output_schema))] : null,
          h("h3", {}, "Try it"),
          tryIt(ctx, c, op, i, people),
        ),
      ),
    );
    clear(
      main,
      h("p", {}, h("a", { href: "/connections" }, "← Connections")),
      h("h1", {}, c.name),
      settings(ctx, c, () => load()),
      c.service_type === "mcp" && ctx.isAdmin ? refresher(ctx, c, (keep) => load(keep)) : null,
      people ? participantsOf(ctx, c, people, () => load()) : null,
      usedBy(c.used_by),
      tools,
      ctx.isAdmin ? dangerZone(ctx, c) : null,
      keep || null,
    );
  };
  await load();
}
