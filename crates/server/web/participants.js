// Participants (workspace admins): roles, participants with their onboarding links (shown
// once when issued: only a hash is kept), and what each gave per connection.

import { api, ws } from "./api.js";
import { h, clear, notice, when, showFieldErrors } from "./dom.js";

function linkBox(url) {
  const input = h("input", { class: "onboarding-url", readonly: true, value: url, "aria-label": "Onboarding link" });
  const copied = h("span", { class: "hint", "aria-live": "polite" });
  const copy = h("button", {
    type: "button",
    class: "copy-link",
    onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(url);
        copied.textContent = " Copied.";
      } catch (e) {
        copied.textContent = " Press Ctrl+C to copy.";
      }
    },
  }, "Copy link");
  return h("div", { class: "link-box" }, input, copy, copied,
    h("p", { class: "hint" }, "Send this link to the participant. It is shown only now; issue a new one if it is lost."));
}

function linkState(link) {
  if (link.status === "active") return `Link active until ${when(new Date(link.expires_at * 1000).toISOString())}`;
  if (link.status === "expired") return "Link expired";
  if (link.status === "revoked") return "Link revoked";
  return "No link";
}

function participantRow(ctx, p, reload, shownUrl) {
  const base = `${ws(ctx.workspace.slug)}/participants/${encodeURIComponent(p.id)}`;
  const out = h("div", { class: "row-message", "aria-live": "polite" });
  const act = (label, cls, fn) => h("button", { type: "button", class: `link ${cls}`, onclick: async () => {
    out.replaceChildren();
    try {
      await fn();
    } catch (err) {
      out.append(notice("error", err.message));
    }
  } }, label);
  const creds = p.credentials.length
    ? h("ul", { class: "given" }, p.credentials.map((c) => h("li", { "data-connection": c.connection, "data-set": String(c.set) },
      h("code", {}, c.connection), " ",
      c.set ? h("span", { class: "chip ok" }, c.kind === "account" ? `connected${c.identity ? ` as ${c.identity}` : ""}` : "key given") : h("span", { class: "chip" }, c.kind === "none" ? "nothing needed" : "not given"),
      c.updated_at ? ` ${when(c.updated_at)} ` : " ",
      c.set && c.kind !== "none"
        ? act("Revoke", "danger revoke-credentials", async () => {
          if (!confirm(`Revoke what ${p.name} gave for ${c.connection}?`)) return;
          await api("DELETE", `${base}/credentials/${encodeURIComponent(c.connection)}`);
          await reload();
        })
        : null)))
    : h("p", { class: "hint" }, "No connection asks this role for credentials yet.");
  return h(
    "section",
    { class: "card participant", "data-id": p.id, "data-name": p.name },
    h("h3", {}, p.name, " ", h("span", { class: "chip" }, p.role), p.email ? h("span", { class: "hint" }, ` ${p.email}`) : null),
    h("p", { class: `link-state ${p.link.status}` }, linkState(p.link)),
    shownUrl ? linkBox(shownUrl) : null,
    creds,
    h("div", { class: "actions" },
      act("Issue new link", "reissue-link", async () => {
        if (p.link.status === "active" && !confirm(`Issue a new link for ${p.name}? The current one stops working.`)) return;
        const r = await api("POST", `${base}/link`, {});
        await reload(p.id, r.onboarding_url);
      }),
      p.link.status === "active"
        ? act("Revoke link", "danger revoke-link", async () => {
          if (!confirm(`Revoke ${p.name}'s link? It stops working at once.`)) return;
          await api("DELETE", `${base}/link`);
          await reload();
        })
        : null,
      act("Remove", "danger remove-participant", async () => {
        if (!confirm(`Remove ${p.name} and everything they gave?`)) return;
        await api("DELETE", base);
        await reload();
      })),
    out,
  );
}

function roleSection(ctx, roles, reload) {
  const name = h("input", { id: "role-name", placeholder: "customer", required: true });
  const description = h("input", { id: "role-description", placeholder: "optional" });
  const message = h("div", { "aria-live": "polite" });
  const form = h("form", {
    id: "role-form",
    onsubmit: async (e) => {
      e.preventDefault();
      message.replaceChildren();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      try {
        await api("POST", `${ws(ctx.workspace.slug)}/participant-roles`, { name: name.value, description: description.value });
        await reload();
      } catch (err) {
        message.append(notice("error", err.message));
        showFieldErrors(form, message, err);
      }
    },
  },
  h("div", { class: "field", "data-pointer": "/name" }, h("label", { for: "role-name" }, "New role"), name),
  h("div", { class: "field", "data-pointer": "/description" }, h("label", { for: "role-description" }, "Description"), description),
  h("div", { class: "actions" }, h("button", { type: "submit", id: "add-role" }, "Add role")),
  message);
  return h("section", { id: "roles" }, h("h2", {}, "Roles"),
    roles.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Role"), h("th", {}, "Participants"), h("th", {}, "Connections"), h("th", {}, ""))),
        h("tbody", {}, roles.map((r) => h("tr", { "data-role": r.name }, h("td", {}, h("code", {}, r.name), r.description ? ` ${r.description}` : ""), h("td", {}, String(r.participants)), h("td", {}, String(r.connections)),
          h("td", {}, r.participants || r.connections ? "" : h("button", { type: "button", class: "link danger", onclick: async () => {
            try {
              await api("DELETE", `${ws(ctx.workspace.slug)}/participant-roles/${encodeURIComponent(r.name)}`);
              await reload();
            } catch (err) {
              message.replaceChildren(notice("error", err.message));
            }
          } }, "Delete"))))))
      : h("p", { class: "hint" }, "No roles yet. A connection with fulfillment “participant” collects credentials from participants of one role."),
    form);
}

function addForm(ctx, roles, reload) {
  const name = h("input", { id: "participant-name", required: true, autocomplete: "off" });
  const email = h("input", { id: "participant-email", type: "email", autocomplete: "off", placeholder: "optional" });
  const role = h("select", { id: "participant-role-select" }, roles.map((r) => h("option", { value: r.name }, r.name)));
  const days = h("input", { id: "participant-days", type: "number", min: 1, max: 90, value: 7 });
  const message = h("div", { "aria-live": "polite" });
  const form = h("form", {
    id: "participant-form",
    onsubmit: async (e) => {
      e.preventDefault();
      message.replaceChildren();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      try {
        const p = await api("POST", `${ws(ctx.workspace.slug)}/participants`, { name: name.value, email: email.value || undefined, role: role.value, link_days: Number(days.value) || undefined });
        await reload(p.id, p.onboarding_url);
      } catch (err) {
        message.append(notice("error", err.message));
        showFieldErrors(form, message, err);
      }
    },
  },
  h("div", { class: "field", "data-pointer": "/name" }, h("label", { for: "participant-name" }, "Name"), name),
  h("div", { class: "field", "data-pointer": "/email" }, h("label", { for: "participant-email" }, "E-mail"), email),
  h("div", { class: "field", "data-pointer": "/role" }, h("label", { for: "participant-role-select" }, "Role"), role),
  h("div", { class: "field", "data-pointer": "/link_days" }, h("label", { for: "participant-days" }, "Link works for (days)"), days),
  h("div", { class: "actions" }, h("button", { type: "submit", id: "add-participant", disabled: !roles.length }, "Add participant")),
  message);
  return h("section", { id: "add" }, h("h2", {}, "Add a participant"), roles.length ? null : h("p", { class: "hint" }, "Add a role first."), form);
}

export async function participantsPage(main, ctx) {
  if (!ctx.isAdmin) {
    clear(main, h("h1", {}, "Participants"), notice("error", "Only workspace admins manage participants."));
    return;
  }
  const filter = h("input", { id: "participant-filter", type: "search", placeholder: "Filter by name, e-mail or role", "aria-label": "Filter participants" });
  const reload = async (shownId, shownUrl) => {
    const [roles, people] = await Promise.all([
      api("GET", `${ws(ctx.workspace.slug)}/participant-roles`),
      api("GET", `${ws(ctx.workspace.slug)}/participants`),
    ]);
    const list = h("div", { id: "participants" }, people.length
      ? people.map((p) => participantRow(ctx, p, reload, p.id === shownId ? shownUrl : null))
      : h("p", { class: "hint" }, "No participants yet."));
    const apply = () => {
      const q = filter.value.trim().toLowerCase();
      for (const el of list.querySelectorAll(".participant")) el.hidden = !!q && !el.textContent.toLowerCase().includes(q);
    };
    filter.oninput = apply;
    clear(main,
      h("h1", {}, "Participants"),
      h("p", { class: "hint" }, "People outside the platform (customers, partners) who give their own credentials for this workspace's “participant” connections through an onboarding link. Calls made on their behalf use what they gave."),
      h("section", {}, h("h2", {}, `Participants (${people.length})`), people.length > 5 ? filter : null, list),
      addForm(ctx, roles, reload),
      roleSection(ctx, roles, reload));
    apply();
    document.documentElement.dataset.ready = String(Math.round(performance.now()));
  };
  await reload();
}
