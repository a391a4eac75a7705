// Agents: the list, the editor with the tool picker (Standard tools, then Connections,
// searchable), the Run button, and the run view that follows a run's events live.
// Members read and run agents; workspace admins create, edit and delete them.

import { api, ws } from "./api.js";
import { h, clear, notice, when, pretty, showFieldErrors } from "./dom.js";
import { takesPersonalKeys } from "./accounts.js";

const PROVIDERS = [
  ["openai", "OpenAI", ["gpt-4.1", "gpt-4.1-mini", "gpt-4o", "o4-mini"]],
  ["anthropic", "Anthropic", ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"]],
  ["gemini", "Gemini", ["gemini-2.5-flash", "gemini-2.5-pro"]],
];
const providerLabel = (id) => (PROVIDERS.find((p) => p[0] === id) || [id, id])[1];

const base = (ctx) => `${ws(ctx.workspace.slug)}/agents`;
const STATUS = {
  running: ["Running", "none"],
  succeeded: ["Succeeded", "good"],
  failed: ["Failed", "bad"],
  max_steps: ["Stopped at max steps", "bad"],
  cancelled: ["Cancelled", "none"],
};
export const statusBadge = (status) => {
  const [text, cls] = STATUS[status] || [status, "none"];
  return h("span", { class: `badge ${cls} run-status`, "data-status": status }, text);
};

export async function agentsPage(main, ctx) {
  clear(main, h("h1", {}, "Agents"), h("p", { role: "status" }, "Loading…"));
  const list = await api("GET", base(ctx));
  const search = h("input", { type: "search", id: "agent-search", placeholder: "Search by name, provider, model or tool", "aria-label": "Search agents" });
  const body = h("tbody");
  const count = h("p", { class: "count", role: "status" });
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = list.filter((a) => !q || [a.name, a.provider, a.model, ...a.tools].some((v) => String(v).toLowerCase().includes(q)));
    clear(body, shown.map((a) => h("tr", { "data-agent": a.name, "data-id": a.id },
      h("td", {}, h("a", { href: `/agents/${a.id}` }, a.name)),
      h("td", {}, providerLabel(a.provider)),
      h("td", {}, h("code", {}, a.model)),
      h("td", { class: "num" }, String(a.tools.length)),
      h("td", {}, a.warnings.length ? h("span", { class: "warning" }, `${a.warnings.length} warning${a.warnings.length === 1 ? "" : "s"}`) : ""),
      h("td", {}, when(a.updated_at)))));
    count.textContent = list.length === 0 ? "No agents yet." : `${shown.length} of ${list.length} agent${list.length === 1 ? "" : "s"}`;
  };
  search.addEventListener("input", render);
  render();
  clear(
    main,
    h("div", { class: "title-row" }, h("h1", {}, "Agents"), ctx.isAdmin ? h("a", { class: "button", href: "/agents/new", id: "new-agent" }, "New agent") : null),
    h("p", { class: "hint" }, "An agent is a model with instructions and the tools it may call: standard tools and this workspace's connections."),
    search,
    count,
    h("div", { class: "table-wrap" }, h("table", { id: "agents" },
      h("thead", {}, h("tr", {}, ["Name", "Provider", "Model", "Tools", "", "Changed"].map((t) => h("th", { scope: "col" }, t)))),
      body)),
  );
}

/// The tool picker: every tool of the workspace with its description, searchable, with
/// the agent's choices ticked (and those the workspace no longer has, to untick). With
/// `single`, one tool is chosen (a workflow node's) and `onPick` hears of it.
export function toolPicker(all, chosen, { single = false, onPick = null } = {}) {
  const picked = new Set(chosen);
  const known = new Set([...(all.standard || []), ...(all.connections || [])].map((t) => t.name));
  const summary = h("p", { id: "picked-count", role: "status" });
  const boxes = [];
  const option = (t) => {
    const box = h("input", { type: single ? "radio" : "checkbox", name: single ? "tool-choice" : null, value: t.name, checked: picked.has(t.name) });
    box.addEventListener("change", () => {
      if (single) picked.clear();
      if (box.checked) picked.add(t.name);
      else picked.delete(t.name);
      update();
      if (onPick && box.checked) onPick(t.name);
    });
    const row = h("label", { class: "pick", "data-tool": t.name },
      box, h("span", {}, h("code", {}, t.name), t.description ? h("span", { class: "desc" }, ` ${t.description}`) : null));
    boxes.push({ row, box, text: `${t.name} ${t.description || ""}`.toLowerCase() });
    return row;
  };
  const groups = new Map();
  for (const t of all.connections || []) {
    const slug = t.name.split(".")[0];
    if (!groups.has(slug)) groups.set(slug, []);
    groups.get(slug).push(t);
  }
  const missing = chosen.filter((t) => !known.has(t));
  const groupEls = [];
  const group = (slug, list) => {
    const el = h("details", { class: "pick-group", "data-connection": slug, open: list.length <= 12 || list.some((t) => picked.has(t.name)) },
      h("summary", {}, h("strong", {}, slug), h("span", { class: "hint group-count" }, ` ${list.length} tool${list.length === 1 ? "" : "s"}`)),
      single ? null : h("div", { class: "group-actions" },
        h("button", { type: "button", class: "link pick-all", onclick: () => setAll(el, true) }, "Select all shown"), " ",
        h("button", { type: "button", class: "link pick-none", onclick: () => setAll(el, false) }, "Clear")),
      list.map(option));
    groupEls.push(el);
    return el;
  };
  const setAll = (el, on) => {
    for (const b of boxes) {
      if (el.contains(b.row) && !b.row.hidden && b.box.checked !== on) {
        b.box.checked = on;
        if (on) picked.add(b.box.value);
        else picked.delete(b.box.value);
      }
    }
    update();
  };
  const search = h("input", { type: "search", id: "tool-search", placeholder: "Search tools by name or description", "aria-label": "Search tools" });
  const update = () => {
    summary.textContent = single
      ? (picked.size ? `Chosen: ${[...picked][0]}` : "No tool chosen yet.")
      : picked.size === 0 ? "No tools chosen: the agent can only answer from what it knows." : `${picked.size} tool${picked.size === 1 ? "" : "s"} chosen`;
  };
  const filter = () => {
    const q = search.value.trim().toLowerCase();
    for (const b of boxes) b.row.hidden = !!q && !b.text.includes(q);
    for (const g of groupEls) {
      const any = [...g.querySelectorAll("label.pick")].some((r) => !r.hidden);
      g.hidden = !any;
      if (q && any) g.open = true;
    }
  };
  search.addEventListener("input", filter);
  search.addEventListener("change", filter);
  update();
  return {
    chosen: () => {
      // in the order they were listed, then those the workspace lacks
      const order = [...boxes.map((b) => b.box.value)];
      return order.filter((n) => picked.has(n)).filter((n, i, a) => a.indexOf(n) === i);
    },
    el: h("fieldset", { id: "tool-picker", "data-pointer": single ? null : "/tools" },
      h("legend", {}, single ? "Tool" : "Tools"),
      search,
      summary,
      h("section", { id: "picker-standard" }, h("h3", {}, "Standard tools"), (all.standard || []).map(option)),
      h("section", { id: "picker-connections" }, h("h3", {}, "Connections"),
        groups.size ? [...groups].map(([slug, list]) => group(slug, list)) : h("p", { class: "hint" }, "No connection tools yet: add a connection first.")),
      missing.length
        ? h("section", { id: "picker-missing" }, h("h3", {}, "Not in this workspace"),
          h("p", { class: "warning" }, single ? "This tool does not exist here: a run fails at this node until it exists again or another is chosen."
            : "These tools do not exist here: a run fails until they exist again or are unticked."),
          missing.map((n) => option({ name: n, description: "" })))
        : null),
  };
}

function warningsList(warnings) {
  if (!warnings || !warnings.length) return null;
  return h("section", { id: "agent-warnings", class: "card" }, h("h3", {}, "Warnings"),
    h("ul", {}, warnings.map((w) => h("li", { class: "warning", "data-tool": w.tool }, h("code", {}, w.tool), `: ${w.message}`))));
}

function editor(ctx, all, agent) {
  const message = h("div", { "aria-live": "polite" });
  const field = (pointer, id, label, input, hint) =>
    h("div", { class: "field", "data-pointer": pointer }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint" }, hint) : null);
  const name = h("input", { id: "agent-name", required: true, maxlength: 100, value: agent ? agent.name : "" });
  const instructions = h("textarea", { id: "agent-instructions", rows: 5, placeholder: "What the agent is for and how it should answer." });
  instructions.value = agent ? agent.instructions : "";
  const provider = h("select", { id: "agent-provider" }, PROVIDERS.map(([id, label]) => h("option", { value: id, selected: agent && agent.provider === id }, label)));
  const models = h("datalist", { id: "model-suggestions" });
  const model = h("input", { id: "agent-model", required: true, list: "model-suggestions", value: agent ? agent.model : "" });
  const suggest = () => clear(models, (PROVIDERS.find((p) => p[0] === provider.value) || [0, 0, []])[2].map((m) => h("option", { value: m })));
  provider.addEventListener("change", suggest);
  suggest();
  const maxSteps = h("input", { id: "agent-max-steps", type: "number", min: 1, max: 100, value: agent ? agent.max_steps : 10 });
  const picker = toolPicker(all, agent ? agent.tools : []);
  const form = h("form", {
    id: "agent-form",
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      message.replaceChildren();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      const steps = maxSteps.value.trim() === "" ? undefined : Number(maxSteps.value);
      const body = {
        name: name.value,
        instructions: instructions.value,
        provider: provider.value,
        model: model.value,
        tools: picker.chosen(),
        max_steps: steps,
      };
      const save = form.querySelector("#save-agent");
      save.disabled = true;
      try {
        const saved = agent ? await api("PATCH", `${base(ctx)}/${agent.id}`, body) : await api("POST", base(ctx), body);
        if (!agent) {
          location.assign(`/agents/${saved.id}?saved=1`);
          return;
        }
        Object.assign(agent, saved);
        message.append(notice("ok", saved.warnings.length ? `Saved, with ${saved.warnings.length} warning${saved.warnings.length === 1 ? "" : "s"}.` : "Saved."));
        const w = warningsList(saved.warnings);
        if (w) message.append(w);
      } catch (err) {
        message.append(notice("error", err.message));
        showFieldErrors(form, message, err);
      } finally {
        save.disabled = false;
      }
    },
  },
  field("/name", "agent-name", "Name", name),
  field("/instructions", "agent-instructions", "Instructions", instructions),
  h("div", { class: "two-col" },
    field("/provider", "agent-provider", "Provider", provider, "Its key comes from AI & Services (this workspace's, else the platform's)."),
    field("/model", "agent-model", "Model", h("span", {}, model, models))),
  field("/max_steps", "agent-max-steps", "Max steps", maxSteps, "The most model turns a run takes (1 to 100)."),
  picker.el,
  h("div", { class: "actions" }, h("button", { type: "submit", id: "save-agent" }, agent ? "Save" : "Create agent")),
  message);
  return form;
}

export async function newAgentPage(main, ctx) {
  if (!ctx.isAdmin) {
    clear(main, h("h1", {}, "New agent"), notice("error", "Only workspace admins create agents."));
    return;
  }
  const all = await api("GET", `${ws(ctx.workspace.slug)}/tools`);
  clear(main, h("p", {}, h("a", { href: "/agents" }, "← Agents")), h("h1", {}, "New agent"), editor(ctx, all, null));
}

/// A run's own credentials (for the caller connections among `slugs`) and, for admins,
/// the participant on whose behalf it runs: the fields, and what they add to a run start.
export async function runChoices(ctx, slugs) {
  let personal = [];
  try {
    personal = (await api("GET", `${ws(ctx.workspace.slug)}/connections`)).filter((c) => slugs.has(c.slug) && takesPersonalKeys(c));
  } catch (e) {
    personal = [];
  }
  const views = await Promise.all(personal.map((c) =>
    api("GET", `${ws(ctx.workspace.slug)}/connections/${encodeURIComponent(c.slug)}/my-credentials`).catch(() => null)));
  const credInputs = [];
  const creds = personal.length
    ? h("details", { id: "run-credentials" }, h("summary", {}, "Credentials for this run"),
      h("p", { class: "hint" }, "Used for this run only and never stored. Left empty, your own key or account from My Accounts is used."),
      personal.map((c, i) => {
        const fields = (views[i] && views[i].fields) || [];
        return h("div", { class: "card", "data-slug": c.slug }, h("strong", {}, c.name), " ", h("code", {}, c.slug),
          views[i] && views[i].set ? h("span", { class: "hint" }, " (your saved key is used if left empty)") : null,
          fields.map((f) => {
            const id = `run-cred-${c.slug}-${f}`;
            const el = h("input", { id, type: f === "username" ? "text" : "password", autocomplete: "off" });
            credInputs.push({ slug: c.slug, f, el });
            return h("div", { class: "field", "data-pointer": `/credentials/${c.slug}/${f}` }, h("label", { for: id }, f), el);
          }));
      }))
    : null;
  let participants = [];
  if (ctx.isAdmin) {
    try {
      participants = await api("GET", `${ws(ctx.workspace.slug)}/participants`);
    } catch (e) {
      participants = [];
    }
  }
  const participant = participants.length
    ? h("select", { id: "run-participant" }, h("option", { value: "" }, "Nobody: my own credentials"),
      participants.map((p) => h("option", { value: p.id }, `${p.name} (${p.role})`)))
    : null;
  return {
    els: [
      participant ? h("div", { class: "field", "data-pointer": "/participant" }, h("label", { for: "run-participant" }, "On behalf of"), participant) : null,
      creds,
    ],
    fill(body) {
      const given = {};
      for (const { slug, f, el } of credInputs) {
        if (el.value === "") continue;
        given[slug] = given[slug] || {};
        given[slug][f] = el.value;
      }
      if (Object.keys(given).length) body.credentials = given;
      if (participant && participant.value) body.participant = participant.value;
      return body;
    },
    forget() {
      for (const { el } of credInputs) el.value = "";
    },
  };
}

async function runPanel(ctx, agent) {
  const input = h("textarea", { id: "run-input", rows: 3, placeholder: "What should the agent do?" });
  const message = h("div", { "aria-live": "polite" });
  // caller connections among the agent's tools may take this run's own key
  const choices = await runChoices(ctx, new Set(agent.tools.filter((t) => t.includes(".")).map((t) => t.split(".")[0])));
  const form = h("form", {
    id: "run-form",
    onsubmit: async (e) => {
      e.preventDefault();
      message.replaceChildren();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      const body = choices.fill({ input: input.value });
      const button = form.querySelector("#run-agent");
      button.disabled = true;
      try {
        const run = await api("POST", `${base(ctx)}/${agent.id}/runs`, body);
        choices.forget();
        location.assign(`/agents/${agent.id}/runs/${run.id}`);
      } catch (err) {
        message.append(notice("error", err.message));
        showFieldErrors(form, message, err);
        button.disabled = false;
      }
    },
  },
  h("div", { class: "field", "data-pointer": "/input" }, h("label", { for: "run-input" }, "Input"), input),
  choices.els,
  h("div", { class: "actions" }, h("button", { type: "submit", id: "run-agent" }, "Run")),
  message);
  return h("section", { id: "run-panel" }, h("h2", {}, "Run"), form);
}

function runsTable(agent, runs) {
  if (!runs.length) return h("p", { class: "hint", id: "no-runs" }, "No runs yet.");
  return h("div", { class: "table-wrap" }, h("table", { id: "runs" },
    h("thead", {}, h("tr", {}, ["Started", "Status", "Steps", "Tokens in / out", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, runs.map((r) => h("tr", { "data-run": r.id },
      h("td", {}, h("a", { href: `/agents/${agent.id}/runs/${r.id}` }, when(r.created_at))),
      h("td", {}, statusBadge(r.status)),
      h("td", { class: "num" }, String(r.step_count)),
      h("td", { class: "num" }, `${r.usage.input_tokens} / ${r.usage.output_tokens}`),
      h("td", { class: "hint" }, r.output ? r.output.slice(0, 120) : r.error ? r.error.slice(0, 120) : ""))))));
}

function declarationsPanel(ctx, agent) {
  const out = h("div", {});
  const provider = h("select", { id: "declarations-provider", "aria-label": "Provider" }, PROVIDERS.map(([id, label]) => h("option", { value: id, selected: id === agent.provider }, label)));
  const load = async () => {
    clear(out, h("p", { role: "status" }, "Loading…"));
    try {
      const d = await api("GET", `${base(ctx)}/${agent.id}/declarations?provider=${encodeURIComponent(provider.value)}`);
      clear(out,
        h("p", { class: "hint" }, `${d.tools.length} tool declaration${d.tools.length === 1 ? "" : "s"} for ${providerLabel(d.provider)}`,
          d.left_out.length ? `, ${d.left_out.length} left out` : "", d.unknown.length ? `, ${d.unknown.length} unknown` : ""),
        d.declared.length
          ? h("table", { id: "declared-names" }, h("thead", {}, h("tr", {}, h("th", {}, "Tool"), h("th", {}, "Declared as"), h("th", {}, "Adapted"))),
            h("tbody", {}, d.declared.map((x) => h("tr", { "data-tool": x.tool }, h("td", {}, h("code", {}, x.tool)), h("td", {}, h("code", {}, x.name)), h("td", { class: "hint" }, x.notes.join("; "))))))
          : null,
        h("pre", { id: "declarations-json", class: "schema" }, pretty(d.tools)));
    } catch (err) {
      clear(out, notice("error", err.message));
    }
  };
  provider.addEventListener("change", load);
  const details = h("details", { id: "declarations" }, h("summary", {}, "What the model receives"), provider, out);
  details.addEventListener("toggle", () => { if (details.open && !out.childNodes.length) load(); });
  return details;
}

export async function agentPage(main, ctx, id) {
  clear(main, h("h1", {}, "Agent"), h("p", { role: "status" }, "Loading…"));
  const [agent, runs, all] = await Promise.all([
    api("GET", `${base(ctx)}/${id}`),
    api("GET", `${base(ctx)}/${id}/runs?limit=20`),
    ctx.isAdmin ? api("GET", `${ws(ctx.workspace.slug)}/tools`) : Promise.resolve(null),
  ]);
  const saved = new URLSearchParams(location.search).get("saved");
  if (saved) history.replaceState(null, "", location.pathname);
  const summary = ctx.isAdmin
    ? editor(ctx, all, agent)
    : h("section", { id: "agent-summary", class: "card" },
      h("p", {}, `${providerLabel(agent.provider)}, model `, h("code", {}, agent.model), `, at most ${agent.max_steps} steps`),
      agent.instructions ? h("pre", { class: "instructions" }, agent.instructions) : null,
      h("h3", {}, "Tools"),
      agent.tools.length ? h("ul", { id: "agent-tools" }, agent.tools.map((t) => h("li", {}, h("code", {}, t)))) : h("p", { class: "hint" }, "No tools."));
  const remove = ctx.isAdmin
    ? h("section", { class: "danger-zone" }, h("button", {
      type: "button",
      id: "delete-agent",
      class: "danger",
      onclick: async () => {
        if (!confirm(`Delete the agent ${agent.name} and its runs?`)) return;
        try {
          await api("DELETE", `${base(ctx)}/${agent.id}`);
          location.assign("/agents");
        } catch (err) {
          remove.append(notice("error", err.message));
        }
      },
    }, "Delete agent"))
    : null;
  clear(
    main,
    h("p", {}, h("a", { href: "/agents" }, "← Agents")),
    h("h1", {}, agent.name),
    saved ? notice("ok", agent.warnings.length ? `Created, with ${agent.warnings.length} warning${agent.warnings.length === 1 ? "" : "s"}.` : "Created.") : null,
    warningsList(agent.warnings),
    await runPanel(ctx, agent),
    h("section", { id: "recent-runs" }, h("h2", {}, "Runs"), runsTable(agent, runs)),
    h("h2", {}, ctx.isAdmin ? "Edit" : "Definition"),
    summary,
    declarationsPanel(ctx, agent),
    remove,
  );
}

export function block(label, value, cls) {
  const text = typeof value === "string" ? value : pretty(value);
  const pre = h("pre", { class: cls }, text);
  // long outputs folded: the page stays readable with a multi-kilobyte result
  return text.length > 600
    ? h("details", { class: cls ? `${cls}-box` : null }, h("summary", {}, `${label} (${text.length.toLocaleString()} characters)`), pre)
    : h("div", {}, h("span", { class: "meta" }, `${label}: `), pre);
}

function stepItem(s) {
  const took = h("span", { class: "meta duration" }, ` ${s.duration_ms} ms`);
  if (s.kind === "model") {
    const calls = s.calls || [];
    return h("li", { class: `step model${s.error ? " failed" : ""}`, "data-seq": s.seq, "data-kind": "model" },
      h("h3", {}, `Model turn ${(s.turn ?? 0) + 1}`, took,
        s.usage ? h("span", { class: "meta usage" }, `, ${s.usage.input_tokens} tokens in, ${s.usage.output_tokens} out`) : null,
        s.retries ? h("span", { class: "meta retries" }, `, asked again ${s.retries} time${s.retries === 1 ? "" : "s"} after a refusal`) : null),
      s.error ? notice("error", s.error) : null,
      s.text ? h("p", { class: "model-text" }, s.text) : null,
      calls.length
        ? h("ul", { class: "calls" }, calls.map((c) => h("li", { "data-call": c.id },
          "Calls ", h("code", {}, c.tool || c.name), c.tool && c.tool !== c.name ? h("span", { class: "hint" }, ` (declared as ${c.name})`) : null,
          c.malformed ? h("span", { class: "warning" }, ` arguments were not JSON: ${c.malformed}`) : null)))
        : null);
  }
  return h("li", { class: `step tool${s.is_error ? " failed" : ""}`, "data-seq": s.seq, "data-kind": "tool", "data-tool": s.tool || s.name },
    h("h3", {}, "Tool ", h("code", {}, s.tool || s.name), took, " ",
      s.is_error ? h("span", { class: "badge bad" }, "error") : h("span", { class: "badge good" }, "ok")),
    block("Arguments", s.arguments ?? {}, "arguments"),
    s.is_error ? block("Error", s.error, "tool-error") : block("Output", s.output, "tool-output"));
}

export async function runPage(main, ctx, agentId, runId) {
  clear(main, h("h1", {}, "Run"), h("p", { role: "status" }, "Loading…"));
  const path = `${base(ctx)}/${agentId}/runs/${runId}`;
  const [agent, run] = await Promise.all([api("GET", `${base(ctx)}/${agentId}`), api("GET", path)]);
  const status = h("span", { id: "run-status" }, statusBadge(run.status));
  const steps = h("ol", { id: "steps", class: "steps" });
  const seen = new Set();
  const add = (s) => {
    if (seen.has(s.seq)) return;
    seen.add(s.seq);
    steps.append(stepItem(s));
  };
  (run.steps || []).forEach(add);
  const end = h("section", { id: "run-end", "aria-live": "polite" });
  const meta = h("p", { class: "meta", id: "run-meta" });
  const message = h("div", { "aria-live": "polite" });
  const cancel = h("button", {
    type: "button",
    id: "cancel-run",
    class: "danger",
    hidden: run.status !== "running",
    onclick: async () => {
      cancel.disabled = true;
      try {
        await api("POST", `${path}/cancel`);
        message.replaceChildren(notice("ok", "Cancelling…"));
      } catch (err) {
        message.replaceChildren(notice("error", err.message));
        cancel.disabled = false;
      }
    },
  }, "Cancel run");
  const showEnd = (r) => {
    clear(status, statusBadge(r.status));
    cancel.hidden = r.status !== "running";
    meta.textContent = `Started ${when(r.created_at)}${r.finished_at ? `, ended ${when(r.finished_at)}` : ""}; ${r.step_count} step${r.step_count === 1 ? "" : "s"}; ${r.usage.input_tokens} tokens in, ${r.usage.output_tokens} out.`;
    if (r.status === "running") {
      clear(end, h("p", { class: "hint live" }, "Following the run live…"));
      return;
    }
    message.replaceChildren();
    clear(end,
      r.output != null ? [h("h2", {}, "Answer"), h("div", { id: "run-output", class: "answer" }, r.output)] : null,
      r.error ? notice(r.status === "cancelled" ? "status" : "error", r.error) : null);
  };
  showEnd(run);
  // one message from the user is shown as its text; a conversation as its messages
  const only = Array.isArray(run.input) && run.input.length === 1 && run.input[0].role === "user" ? run.input[0] : null;
  const input = typeof run.input === "string" ? run.input
    : only && typeof only.text === "string" ? only.text
      : Array.isArray(run.input) ? run.input.map((m) => `${m.role}: ${m.text ?? m.content ?? pretty(m)}`).join("\n\n")
        : pretty(run.input);
  clear(
    main,
    h("p", {}, h("a", { href: `/agents/${agentId}` }, `← ${agent.name}`)),
    h("div", { class: "title-row" }, h("h1", {}, "Run ", status), cancel),
    meta,
    message,
    h("h2", {}, "Input"),
    h("pre", { id: "run-input-shown" }, input),
    h("h2", {}, "Steps"),
    steps,
    end,
  );
  if (run.status !== "running") return;
  // the steps as they are taken; reconnecting starts again from the first, so steps
  // already shown are skipped
  const events = new EventSource(`${path}/events`);
  events.addEventListener("step", (e) => {
    try {
      add(JSON.parse(e.data));
    } catch (err) {
      // a step that is not JSON is not shown
    }
  });
  events.addEventListener("end", async (e) => {
    events.close();
    try {
      showEnd(JSON.parse(e.data));
    } catch (err) {
      // the record has the same
    }
    // the whole record: every step, in order
    try {
      const full = await api("GET", path);
      for (const s of full.steps || []) add(s);
      showEnd(full);
    } catch (err) {
      message.replaceChildren(notice("error", err.message));
    }
  });
  addEventListener("pagehide", () => events.close(), { once: true });
}
