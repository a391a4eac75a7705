// Workflows: the list, the editor (the nodes in order on one side, the Tool Inspector for
// the chosen node on the other: its tool from the same picker as agents, or its agent,
// and its input as JSON with template hints and the tool's input schema), deploy, the run
// form, the runs, and the run view following each step live.
// Members read and run workflows; workspace admins create, edit, deploy and delete them.

import { api, ws } from "./api.js";
import { h, clear, notice, when, pretty, showFieldErrors } from "./dom.js";
import { toolPicker, runChoices, block } from "./agents.js";

const base = (ctx) => `${ws(ctx.workspace.slug)}/workflows`;
const STATUS = {
  queued: ["Queued", "none"],
  running: ["Running", "none"],
  pending: ["Waiting", "none"],
  succeeded: ["Succeeded", "good"],
  failed: ["Failed", "bad"],
  skipped: ["Skipped", "none"],
  cancelled: ["Cancelled", "none"],
};
const badge = (status, cls = "run-status") => {
  const [text, tone] = STATUS[status] || [status, "none"];
  return h("span", { class: `badge ${tone} ${cls}`, "data-status": status }, text);
};
const ended = (s) => ["succeeded", "failed", "cancelled"].includes(s);

export async function workflowsPage(main, ctx) {
  clear(main, h("h1", {}, "Workflows"), h("p", { role: "status" }, "Loading…"));
  const list = await api("GET", base(ctx));
  const search = h("input", { type: "search", id: "workflow-search", placeholder: "Search by name or tool", "aria-label": "Search workflows" });
  const body = h("tbody");
  const count = h("p", { class: "count", role: "status" });
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = list.filter((w) => !q || [w.name, ...w.nodes.map((n) => n.tool_name || n.agent || "")].some((v) => String(v).toLowerCase().includes(q)));
    clear(body, shown.map((w) => h("tr", { "data-workflow": w.name, "data-id": w.id },
      h("td", {}, h("a", { href: `/workflows/${w.id}` }, w.name)),
      h("td", { class: "num" }, String(w.nodes.length)),
      h("td", {}, w.deployed_version ? `v${w.deployed_version}` : h("span", { class: "hint" }, "not deployed"),
        w.deployed_version && w.undeployed_changes ? h("span", { class: "hint" }, " (draft changed)") : null),
      h("td", {}, w.warnings.length ? h("span", { class: "warning" }, `${w.warnings.length} warning${w.warnings.length === 1 ? "" : "s"}`) : ""),
      h("td", {}, when(w.updated_at)))));
    count.textContent = list.length === 0 ? "No workflows yet." : `${shown.length} of ${list.length} workflow${list.length === 1 ? "" : "s"}`;
  };
  search.addEventListener("input", render);
  render();
  clear(
    main,
    h("div", { class: "title-row" }, h("h1", {}, "Workflows"), ctx.isAdmin ? h("a", { class: "button", href: "/workflows/new", id: "new-workflow" }, "New workflow") : null),
    h("p", { class: "hint" }, "A workflow runs its nodes in order (or as a graph): tool nodes call a connection's or a standard tool, agent nodes run an agent. A node's input can use the run's input and earlier nodes' outputs: {{input.name}}, {{steps.fetch.output.body.items[0]}}."),
    search,
    count,
    h("div", { class: "table-wrap" }, h("table", { id: "workflows" },
      h("thead", {}, h("tr", {}, ["Name", "Nodes", "Deployed", "", "Changed"].map((t) => h("th", { scope: "col" }, t)))),
      body)),
  );
}

/// A skeleton of arguments from an input schema: each property with a placeholder of its type.
function skeleton(schema) {
  const out = {};
  for (const [k, p] of Object.entries((schema && schema.properties) || {})) {
    const t = Array.isArray(p.type) ? p.type[0] : p.type;
    out[k] = p.default !== undefined ? p.default
      : t === "integer" || t === "number" ? 0
        : t === "boolean" ? false
          : t === "array" ? []
            : t === "object" ? {}
              : "";
  }
  return out;
}

function editor(ctx, all, agents, workflow) {
  const tools = new Map([...(all.standard || []), ...(all.connections || [])].map((t) => [t.name, t]));
  const nodes = (workflow ? workflow.nodes : []).map((n) => ({
    id: n.id,
    type: n.type,
    tool_name: n.tool_name || "",
    agent: n.agent || "",
    input: n.type === "agent" && typeof n.input === "string" ? JSON.stringify(n.input) : pretty(n.input ?? {}),
    on_interrupt: n.on_interrupt || "retry",
  }));
  let selected = nodes.length ? 0 : -1;
  const message = h("div", { "aria-live": "polite" });
  const name = h("input", { id: "workflow-name", required: true, maxlength: 100, value: workflow ? workflow.name : "" });
  const edges = h("textarea", { id: "workflow-edges", rows: 3, placeholder: "fetch -> summarize\nfetch -> notify" });
  edges.value = workflow && workflow.edges ? workflow.edges.map((e) => `${e.from} -> ${e.to}`).join("\n") : "";
  const list = h("ol", { id: "node-list", class: "node-list" });
  const inspector = h("section", { id: "inspector", class: "inspector card", "aria-label": "Node inspector" });
  const freshId = (prefix) => {
    let i = nodes.length + 1;
    while (nodes.some((n) => n.id === `${prefix}${i}`)) i += 1;
    return `${prefix}${i}`;
  };
  const renderList = () => {
    clear(list, nodes.map((n, i) => h("li", { class: `node${i === selected ? " selected" : ""}`, "data-node": n.id, "data-pointer": `/nodes/${i}` },
      h("button", { type: "button", class: "node-pick link", onclick: () => { selected = i; render(); } },
        h("strong", {}, n.id || "(no id)"), " ", h("span", { class: "hint" }, n.type === "agent" ? `agent ${(agents.find((a) => a.id === n.agent) || { name: n.agent || "?" }).name}` : (n.tool_name || "no tool yet"))),
      h("span", { class: "node-actions" },
        h("button", { type: "button", class: "link", title: "Move up", "aria-label": `Move ${n.id} up`, disabled: i === 0, onclick: () => { nodes.splice(i - 1, 0, nodes.splice(i, 1)[0]); selected = i - 1; render(); } }, "↑"),
        h("button", { type: "button", class: "link", title: "Move down", "aria-label": `Move ${n.id} down`, disabled: i === nodes.length - 1, onclick: () => { nodes.splice(i + 1, 0, nodes.splice(i, 1)[0]); selected = i + 1; render(); } }, "↓"),
        h("button", { type: "button", class: "link danger remove-node", "aria-label": `Remove ${n.id}`, onclick: () => { nodes.splice(i, 1); selected = Math.min(selected, nodes.length - 1); render(); } }, "Remove")))));
  };
  const renderInspector = () => {
    const n = nodes[selected];
    if (!n) {
      clear(inspector, h("p", { class: "hint" }, "Add a node to start: a tool node calls a tool; an agent node runs an agent."));
      return;
    }
    const id = h("input", { id: "node-id", value: n.id, maxlength: 64, oninput: (e) => { n.id = e.target.value; renderList(); } });
    const type = h("select", { id: "node-type", onchange: (e) => { n.type = e.target.value; render(); } },
      h("option", { value: "tool", selected: n.type === "tool" }, "Tool"), h("option", { value: "agent", selected: n.type === "agent" }, "Agent"));
    const input = h("textarea", { id: "node-input", rows: 8, spellcheck: "false", oninput: (e) => { n.input = e.target.value; } });
    input.value = n.input;
    const insert = (text) => {
      const at = input.selectionStart ?? input.value.length;
      input.value = input.value.slice(0, at) + text + input.value.slice(input.selectionEnd ?? at);
      n.input = input.value;
      input.focus();
      input.selectionStart = input.selectionEnd = at + text.length;
    };
    // nodes before this one (without edges: earlier in the list; with edges the server checks the paths)
    const earlier = nodes.slice(0, selected).map((x) => x.id).filter(Boolean);
    const hints = h("div", { id: "template-hints", class: "hints" },
      h("span", { class: "hint" }, "Insert: "),
      h("button", { type: "button", class: "chip", "data-template": "{{input.}}", onclick: () => insert("{{input.}}") }, "{{input.…}}"),
      earlier.map((e) => h("button", { type: "button", class: "chip", "data-template": `{{steps.${e}.output}}`, onclick: () => insert(`{{steps.${e}.output}}`) }, `{{steps.${e}.output}}`)),
      h("p", { class: "hint" }, "A value that is exactly one {{…}} keeps its type (a number, an object); inside longer text it becomes text. Paths: dots for keys, [n] for list items (HTTP tools answer {status, headers, body})."));
    let target;
    if (n.type === "tool") {
      const schemaBox = h("div", { id: "tool-schema" });
      const showSchema = () => {
        const t = tools.get(n.tool_name);
        clear(schemaBox, t
          ? [h("p", {}, h("code", {}, t.name), t.description ? ` ${t.description}` : ""),
            h("details", { open: true }, h("summary", {}, "Input schema"), h("pre", { class: "schema" }, pretty(t.input_schema || {}))),
            h("button", { type: "button", id: "fill-from-schema", onclick: () => { input.value = pretty(skeleton(t.input_schema)); n.input = input.value; } }, "Fill input from schema")]
          : n.tool_name ? notice("error", `${n.tool_name} is not a tool of this workspace.`) : null);
      };
      const picker = toolPicker(all, n.tool_name ? [n.tool_name] : [], { single: true, onPick: (t) => { n.tool_name = t; showSchema(); renderList(); } });
      showSchema();
      target = [picker.el, schemaBox];
    } else {
      const agent = h("select", { id: "node-agent", onchange: (e) => { n.agent = e.target.value; renderList(); } },
        h("option", { value: "" }, "Choose an agent"),
        agents.map((a) => h("option", { value: a.id, selected: a.id === n.agent }, a.name)),
        n.agent && !agents.some((a) => a.id === n.agent) ? h("option", { value: n.agent, selected: true }, `${n.agent} (not in this workspace)`) : null);
      target = [h("div", { class: "field" }, h("label", { for: "node-agent" }, "Agent"), agent),
        h("p", { class: "hint" }, "The agent's input: text (\"Summarize {{steps.fetch.output.body}}\"), or messages. Its output is {text, run_id, status, usage}.")];
    }
    const onInterrupt = h("select", { id: "node-on-interrupt", onchange: (e) => { n.on_interrupt = e.target.value; } },
      h("option", { value: "retry", selected: n.on_interrupt !== "fail" }, "Call it again"),
      h("option", { value: "fail", selected: n.on_interrupt === "fail" }, "Fail the step (for calls that must not repeat)"));
    clear(inspector,
      h("h3", {}, "Node ", h("code", {}, n.id || "")),
      h("div", { class: "two-col" },
        h("div", { class: "field" }, h("label", { for: "node-id" }, "Id"), id, h("p", { class: "hint" }, "Letters, digits, _ and -; later nodes read its output as {{steps.<id>.output}}.")),
        h("div", { class: "field" }, h("label", { for: "node-type" }, "Type"), type)),
      target,
      h("div", { class: "field" }, h("label", { for: "node-input" }, n.type === "tool" ? "Input (the tool's arguments, JSON)" : "Input (JSON: a \"text\" or messages)"), input, hints),
      h("div", { class: "field" }, h("label", { for: "node-on-interrupt" }, "If a server stops during this step"), onInterrupt));
  };
  const render = () => {
    renderList();
    renderInspector();
  };
  const add = (type) => {
    nodes.push({ id: freshId(type === "tool" ? "step" : "agent"), type, tool_name: "", agent: "", input: type === "tool" ? "{}" : "\"{{input.text}}\"", on_interrupt: "retry" });
    selected = nodes.length - 1;
    render();
  };
  render();
  const form = h("form", {
    id: "workflow-form",
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      message.replaceChildren();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      for (const el of list.querySelectorAll(".node.invalid")) el.classList.remove("invalid");
      const out = [];
      for (const [i, n] of nodes.entries()) {
        let input;
        try {
          input = n.input.trim() === "" ? {} : JSON.parse(n.input);
        } catch (err) {
          selected = i;
          render();
          message.append(notice("error", `The input of node ${n.id} is not JSON: ${err.message}`));
          return;
        }
        const node = { id: n.id, type: n.type, input };
        if (n.type === "tool") node.tool_name = n.tool_name;
        else node.agent = n.agent;
        if (n.on_interrupt === "fail") node.on_interrupt = "fail";
        out.push(node);
      }
      const edgeList = [];
      for (const line of edges.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
        const m = line.match(/^(\S+)\s*->\s*(\S+)$/);
        if (!m) {
          message.append(notice("error", `An edge is written "from -> to": ${line}`));
          return;
        }
        edgeList.push({ from: m[1], to: m[2] });
      }
      const body = { name: name.value, nodes: out, edges: edgeList.length ? edgeList : null };
      const save = form.querySelector("#save-workflow");
      save.disabled = true;
      try {
        const saved = workflow ? await api("PATCH", `${base(ctx)}/${workflow.id}`, body) : await api("POST", base(ctx), body);
        if (!workflow) {
          location.assign(`/workflows/${saved.id}?saved=1`);
          return;
        }
        Object.assign(workflow, saved);
        message.append(notice("ok", saved.warnings.length ? `Saved, with ${saved.warnings.length} warning${saved.warnings.length === 1 ? "" : "s"}. Deploy to run this version.` : "Saved. Deploy to run this version."));
        const w = warnings(saved.warnings);
        if (w) message.append(w);
        document.dispatchEvent(new CustomEvent("workflow-saved", { detail: saved }));
      } catch (err) {
        message.append(notice("error", err.message));
        // errors in a node's fields: the node is marked, and the message names it
        for (const e2 of err.errors || []) {
          const m = e2.pointer.match(/^\/nodes\/(\d+)(\/.*)?$/);
          if (m && nodes[Number(m[1])]) {
            const li = list.children[Number(m[1])];
            if (li) li.classList.add("invalid");
            message.append(notice("error", `Node ${nodes[Number(m[1])].id}${m[2] ? ` (${m[2].slice(1)})` : ""}: ${e2.detail}`));
          }
        }
        showFieldErrors(form, h("div"), { errors: (err.errors || []).filter((x) => !x.pointer.startsWith("/nodes/")) });
      } finally {
        save.disabled = false;
      }
    },
  },
  h("div", { class: "field", "data-pointer": "/name" }, h("label", { for: "workflow-name" }, "Name"), name),
  h("div", { class: "flow-editor" },
    h("section", { class: "nodes" }, h("h3", {}, "Nodes"), list,
      h("div", { class: "actions" },
        h("button", { type: "button", id: "add-tool-node", onclick: () => add("tool") }, "Add tool node"),
        h("button", { type: "button", id: "add-agent-node", onclick: () => add("agent") }, "Add agent node"))),
    inspector),
  h("div", { class: "field", "data-pointer": "/edges" }, h("label", { for: "workflow-edges" }, "Edges (optional)"), edges,
    h("p", { class: "hint" }, "One \"from -> to\" per line: a node runs when every node with an edge to it has succeeded, and nodes with no path between them run at once. Left empty, the nodes run in the order listed.")),
  h("div", { class: "actions" }, h("button", { type: "submit", id: "save-workflow" }, workflow ? "Save draft" : "Create workflow")),
  message);
  return form;
}

function warnings(list) {
  if (!list || !list.length) return null;
  return h("section", { id: "workflow-warnings", class: "card" }, h("h3", {}, "Warnings"),
    h("ul", {}, list.map((w) => h("li", { class: "warning", "data-node": w.node }, h("code", {}, w.node), `: ${w.message}`))));
}

async function loadPickers(ctx) {
  const [all, agents] = await Promise.all([api("GET", `${ws(ctx.workspace.slug)}/tools`), api("GET", `${ws(ctx.workspace.slug)}/agents`)]);
  return { all, agents };
}

export async function newWorkflowPage(main, ctx) {
  if (!ctx.isAdmin) {
    clear(main, h("h1", {}, "New workflow"), notice("error", "Only workspace admins create workflows."));
    return;
  }
  const { all, agents } = await loadPickers(ctx);
  clear(main, h("p", {}, h("a", { href: "/workflows" }, "← Workflows")), h("h1", {}, "New workflow"), editor(ctx, all, agents, null));
}

function deployState(w) {
  return h("span", { id: "deploy-state" },
    w.deployed_version ? h("span", { class: "badge good" }, `Deployed: v${w.deployed_version}`) : h("span", { class: "badge none" }, "Not deployed"),
    w.deployed_version && w.undeployed_changes ? h("span", { class: "hint" }, " The draft has changes that are not deployed.") : null);
}

async function runPanel(ctx, w) {
  const input = h("textarea", { id: "workflow-run-input", rows: 4, spellcheck: "false" });
  // the input templates read, as a starting point
  const paths = new Set();
  for (const n of w.nodes) {
    for (const m of JSON.stringify(n.input ?? {}).matchAll(/\{\{\s*input\.([A-Za-z0-9_-]+)/g)) paths.add(m[1]);
  }
  input.value = pretty(Object.fromEntries([...paths].map((p) => [p, ""])));
  const message = h("div", { "aria-live": "polite" });
  const slugs = new Set(w.nodes.filter((n) => n.type === "tool" && (n.tool_name || "").includes(".")).map((n) => n.tool_name.split(".")[0]));
  const choices = await runChoices(ctx, slugs);
  const form = h("form", {
    id: "workflow-run-form",
    onsubmit: async (e) => {
      e.preventDefault();
      message.replaceChildren();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      let value;
      try {
        value = input.value.trim() === "" ? {} : JSON.parse(input.value);
      } catch (err) {
        message.append(notice("error", `The input is not JSON: ${err.message}`));
        return;
      }
      const button = form.querySelector("#run-workflow");
      button.disabled = true;
      try {
        const run = await api("POST", `${base(ctx)}/${w.id}/runs`, choices.fill({ input: value }));
        choices.forget();
        location.assign(`/workflows/${w.id}/runs/${run.id}`);
      } catch (err) {
        message.append(notice("error", err.message));
        showFieldErrors(form, message, err);
        button.disabled = false;
      }
    },
  },
  h("div", { class: "field", "data-pointer": "/input" }, h("label", { for: "workflow-run-input" }, "Input (JSON)"), input,
    paths.size ? h("p", { class: "hint" }, `The nodes read: ${[...paths].map((p) => `input.${p}`).join(", ")}.`) : null),
  choices.els,
  h("div", { class: "actions" }, h("button", { type: "submit", id: "run-workflow", disabled: !w.deployed_version }, w.deployed_version ? `Run v${w.deployed_version}` : "Deploy to run")),
  message);
  return h("section", { id: "run-panel" }, h("h2", {}, "Run"), form);
}

function runsTable(ctx, w) {
  const status = h("select", { id: "runs-status", "aria-label": "Show runs" },
    h("option", { value: "" }, "All runs"), ["queued", "running", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s }, STATUS[s][0])));
  const box = h("div", {});
  const load = async () => {
    try {
      const runs = await api("GET", `${base(ctx)}/${w.id}/runs?limit=20${status.value ? `&status=${status.value}` : ""}`);
      clear(box, runs.length
        ? h("div", { class: "table-wrap" }, h("table", { id: "runs" },
          h("thead", {}, h("tr", {}, ["Started", "Status", "Version", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, runs.map((r) => h("tr", { "data-run": r.id },
            h("td", {}, h("a", { href: `/workflows/${w.id}/runs/${r.id}` }, when(r.created_at))),
            h("td", {}, badge(r.status)),
            h("td", {}, `v${r.version}`),
            h("td", { class: "hint" }, r.error ? r.error.slice(0, 140) : r.claims > 1 ? "taken over by another server" : ""))))))
        : h("p", { class: "hint", id: "no-runs" }, status.value ? "No runs with this status." : "No runs yet."));
    } catch (err) {
      clear(box, notice("error", err.message));
    }
  };
  status.addEventListener("change", load);
  load();
  return h("section", { id: "recent-runs" }, h("div", { class: "title-row" }, h("h2", {}, "Runs"), status), box);
}

export async function workflowPage(main, ctx, id) {
  clear(main, h("h1", {}, "Workflow"), h("p", { role: "status" }, "Loading…"));
  const [w, pickers] = await Promise.all([api("GET", `${base(ctx)}/${id}`), ctx.isAdmin ? loadPickers(ctx) : Promise.resolve(null)]);
  const saved = new URLSearchParams(location.search).get("saved");
  if (saved) history.replaceState(null, "", location.pathname);
  const state = h("div", {}, deployState(w));
  const message = h("div", { "aria-live": "polite" });
  const run = h("div", {}, await runPanel(ctx, w));
  const deploy = ctx.isAdmin
    ? h("button", {
      type: "button",
      id: "deploy-workflow",
      onclick: async () => {
        deploy.disabled = true;
        message.replaceChildren();
        try {
          const d = await api("POST", `${base(ctx)}/${w.id}/deploy`);
          Object.assign(w, d);
          clear(state, deployState(w));
          clear(run, await runPanel(ctx, w));
          message.append(notice("ok", `Deployed as v${d.deployed_version}: new runs use it.`));
        } catch (err) {
          message.append(notice("error", err.message));
        } finally {
          deploy.disabled = false;
        }
      },
    }, "Deploy")
    : null;
  document.addEventListener("workflow-saved", (e) => {
    Object.assign(w, e.detail);
    clear(state, deployState(w));
  });
  const definition = ctx.isAdmin
    ? editor(ctx, pickers.all, pickers.agents, w)
    : h("section", { id: "workflow-summary", class: "card" },
      h("ol", { id: "node-list", class: "node-list" }, w.nodes.map((n) => h("li", { "data-node": n.id },
        h("strong", {}, n.id), " ", h("code", {}, n.type === "tool" ? n.tool_name : `agent ${n.agent}`), block("Input", n.input ?? {}, "node-input")))),
      w.edges ? h("p", {}, "Edges: ", w.edges.map((e) => `${e.from} → ${e.to}`).join(", ")) : null);
  const remove = ctx.isAdmin
    ? h("section", { class: "danger-zone" }, h("button", {
      type: "button",
      id: "delete-workflow",
      class: "danger",
      onclick: async () => {
        if (!confirm(`Delete the workflow ${w.name} with its versions and runs?`)) return;
        try {
          await api("DELETE", `${base(ctx)}/${w.id}`);
          location.assign("/workflows");
        } catch (err) {
          remove.append(notice("error", err.message));
        }
      },
    }, "Delete workflow"))
    : null;
  clear(
    main,
    h("p", {}, h("a", { href: "/workflows" }, "← Workflows")),
    h("div", { class: "title-row" }, h("h1", {}, w.name), deploy),
    state,
    message,
    saved ? notice("ok", "Created. Deploy it to run it.") : null,
    warnings(w.warnings),
    run,
    runsTable(ctx, w),
    h("h2", {}, ctx.isAdmin ? "Edit" : "Definition"),
    definition,
    remove,
  );
}

function stepItem(s) {
  const attempts = s.attempts || [];
  const again = attempts.filter((a) => a.outcome === "interrupted").length;
  return h("li", { class: `step ${s.type}${s.status === "failed" ? " failed" : ""}`, "data-node": s.id, "data-status": s.status },
    h("h3", {}, h("code", {}, s.id), " ", s.type === "agent" ? h("span", {}, "agent ", h("code", {}, s.agent)) : h("code", {}, s.tool_name), " ",
      badge(s.status, "step-status"),
      s.duration_ms != null ? h("span", { class: "meta duration" }, ` ${s.duration_ms} ms`) : null,
      attempts.length > 1 ? h("span", { class: "meta attempts" }, `, ${attempts.length} attempts`) : null),
    s.cut ? h("p", { class: "hint cut" }, "Large input or output: shown in full when the run ends.") : null,
    again ? h("p", { class: "warning interrupted" }, `A server stopped during ${again === 1 ? "an earlier attempt" : `${again} earlier attempts`}: the call may have been made more than once.`) : null,
    s.input != null && s.status !== "pending" ? block("Input", s.input, "step-input") : null,
    s.error ? block("Error", s.error.message ? `${s.error.code}: ${s.error.message}` : s.error, "step-error") : null,
    s.output != null ? block("Output", s.output, "step-output") : null);
}

export async function workflowRunPage(main, ctx, workflowId, runId) {
  clear(main, h("h1", {}, "Run"), h("p", { role: "status" }, "Loading…"));
  const path = `${base(ctx)}/${workflowId}/runs/${runId}`;
  const [w, run] = await Promise.all([api("GET", `${base(ctx)}/${workflowId}`), api("GET", path)]);
  const status = h("span", { id: "run-status" }, badge(run.status));
  const steps = h("ol", { id: "steps", class: "steps" });
  const items = new Map();
  const put = (s) => {
    const el = stepItem(s);
    const old = items.get(s.id);
    if (old) old.replaceWith(el);
    else steps.append(el);
    items.set(s.id, el);
  };
  (run.steps || []).forEach(put);
  const end = h("section", { id: "run-end", "aria-live": "polite" });
  const meta = h("p", { class: "meta", id: "run-meta" });
  const message = h("div", { "aria-live": "polite" });
  const cancel = h("button", {
    type: "button",
    id: "cancel-run",
    class: "danger",
    hidden: ended(run.status),
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
    clear(status, badge(r.status));
    cancel.hidden = ended(r.status);
    meta.textContent = `Version ${r.version}; started ${when(r.created_at)}${r.finished_at ? `, ended ${when(r.finished_at)}` : ""}${r.claims > 1 ? `; taken over by another server ${r.claims - 1} time${r.claims === 2 ? "" : "s"}` : ""}.`;
    if (!ended(r.status)) {
      clear(end, h("p", { class: "hint live" }, "Following the run live…"));
      return;
    }
    message.replaceChildren();
    clear(end,
      r.output != null ? [h("h2", {}, "Output"), h("p", { class: "hint" }, "The last node's output."), h("pre", { id: "run-output", class: "run-output" }, pretty(r.output))] : null,
      r.error ? notice(r.status === "cancelled" ? "status" : "error", r.error) : null);
  };
  showEnd(run);
  clear(
    main,
    h("p", {}, h("a", { href: `/workflows/${workflowId}` }, `← ${w.name}`)),
    h("div", { class: "title-row" }, h("h1", {}, "Run ", status), cancel),
    meta,
    message,
    h("h2", {}, "Input"),
    h("pre", { id: "run-input-shown" }, pretty(run.input)),
    h("h2", {}, "Steps"),
    steps,
    end,
  );
  if (ended(run.status)) return;
  const events = new EventSource(`${path}/events`);
  events.addEventListener("step", (e) => {
    try {
      put(JSON.parse(e.data));
    } catch (err) {
      // a step that is not JSON is not shown
    }
  });
  events.addEventListener("end", async () => {
    events.close();
    try {
      const full = await api("GET", path);
      (full.steps || []).forEach(put);
      showEnd(full);
    } catch (err) {
      message.replaceChildren(notice("error", err.message));
    }
  });
  addEventListener("pagehide", () => events.close(), { once: true });
}
