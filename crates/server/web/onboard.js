// A participant's onboarding page: no platform account, the link is the key. The token is
// read from `/onboard/<token>`, kept in this tab (sessionStorage) and taken out of the
// address bar; every API call sends it in the `X-Onboarding-Token` header.

import { h, clear, notice, when } from "./dom.js";

const KEY = "chatterfly.onboarding";
const PROVIDER = { gmail: "Google", github: "GitHub" };
const TIERS = {
  gmail: [["send", "Send email"], ["read", "Read email"], ["full", "Full access to the mailbox"]],
  github: [["read", "Read your profile"], ["repo", "Repositories"], ["org", "Organizations (read)"]],
};
const REFUSED = {
  onboarding_link_invalid: "This link does not work",
  onboarding_link_revoked: "This link was revoked",
  onboarding_link_expired: "This link has expired",
};
const CONNECT_ERRORS = {
  access_denied: "You refused consent, so nothing was connected.",
  state_other_browser: "The connection was started in another browser. Connect again from this page.",
  link_invalid: "Your onboarding link stopped working while you were away (revoked or expired). Ask for a new one.",
  state_expired: "Connecting took more than ten minutes. Try again.",
  state_used: "That connect attempt was already used. Try again.",
};

function token() {
  const m = location.pathname.match(/^\/onboard\/([^/]+)$/);
  if (m) {
    const t = decodeURIComponent(m[1]);
    sessionStorage.setItem(KEY, t);
    // the token leaves the address bar (and so the history's shown URL and any copy of it)
    history.replaceState(null, "", `/onboard${location.search}`);
    return t;
  }
  return sessionStorage.getItem(KEY);
}

async function call(t, method, path, body) {
  const headers = { Accept: "application/json", "X-Onboarding-Token": t };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  } catch (e) {
    throw Object.assign(new Error("The server could not be reached. Check your connection and try again."), { status: 0 });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = { detail: `The server answered ${response.status}.` };
  }
  if (!response.ok) {
    throw Object.assign(new Error((data && data.detail) || `The server answered ${response.status}.`), { status: response.status, code: data && data.code, errors: (data && data.errors) || [] });
  }
  return data;
}

function keyForm(t, c, reload) {
  const inputs = c.fields.map((f) => h("input", { type: "password", id: `key-${c.slug}-${f}`, name: f, autocomplete: "off", placeholder: c.set ? "given; leave blank to keep it" : "" }));
  const message = h("div", { "aria-live": "polite" });
  const form = h("form", {
    class: "key-form",
    onsubmit: async (e) => {
      e.preventDefault();
      message.replaceChildren();
      const body = {};
      c.fields.forEach((f, i) => {
        if (inputs[i].value) body[f] = inputs[i].value;
      });
      try {
        await call(t, "PUT", `/api/onboarding/connections/${encodeURIComponent(c.slug)}`, body);
        await reload(`Saved your ${c.name} credentials.`);
      } catch (err) {
        const detail = err.errors.length ? err.errors.map((x) => x.detail).join("; ") : err.message;
        message.append(notice("error", detail));
      }
    },
  },
  c.fields.map((f, i) => h("div", { class: "field" }, h("label", { for: inputs[i].id }, f, " (write-only)"), inputs[i])),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "save-key" }, c.set ? "Update" : "Save")),
  message);
  return form;
}

function accountForm(t, c) {
  const tiers = TIERS[c.provider] || [];
  const boxes = tiers.map(([id, label]) => {
    const needed = c.tiers.includes(id);
    return h("label", { class: "inline" }, h("input", { type: "checkbox", value: id, checked: needed, disabled: needed, class: "tier" }), ` ${label} (${id})${needed ? ", asked for" : ""}`);
  });
  const message = h("div", { "aria-live": "polite" });
  const button = h("button", {
    type: "button",
    class: "connect-account",
    onclick: async () => {
      message.replaceChildren();
      button.disabled = true;
      const extra = boxes.map((b) => b.querySelector("input")).filter((b) => b.checked && !b.disabled).map((b) => b.value);
      try {
        const r = await call(t, "POST", `/api/onboarding/connections/${encodeURIComponent(c.slug)}/connect`, { tiers: extra });
        location.assign(r.authorize_url);
      } catch (err) {
        message.append(notice("error", err.message));
        button.disabled = false;
      }
    },
  }, `${c.set ? "Reconnect" : "Connect"} your ${PROVIDER[c.provider] || c.provider} account`);
  return h("div", { class: "account-form" }, h("fieldset", {}, h("legend", {}, "What it may do"), boxes), button, message);
}

function card(t, c, reload) {
  const state = c.kind === "none"
    ? "Nothing needed from you."
    : c.set
      ? `Given ${when(c.updated_at)}${c.identity ? ` as ${c.identity}` : ""}.`
      : c.status === "needs_reconnect"
        ? `${c.identity} must be connected again.`
        : "Not given yet.";
  const withdraw = c.set && c.kind !== "none"
    ? h("button", {
      type: "button",
      class: "link danger withdraw",
      onclick: async () => {
        if (!confirm(`Withdraw what you gave for ${c.name}? Calls on your behalf will stop working.`)) return;
        try {
          await call(t, "DELETE", `/api/onboarding/connections/${encodeURIComponent(c.slug)}`);
          await reload(`Withdrawn: ${c.name}.`);
        } catch (err) {
          alert(err.message);
        }
      },
    }, "Withdraw")
    : null;
  return h(
    "section",
    { class: "card onboarding-connection", "data-slug": c.slug, "data-set": String(c.set) },
    h("h2", {}, c.name, " ", h("code", {}, c.slug)),
    h("p", { class: c.set ? "status ok" : "status" }, state),
    c.kind === "key" ? keyForm(t, c, reload) : null,
    c.kind === "account" ? accountForm(t, c) : null,
    withdraw,
  );
}

export async function onboardPage(root) {
  const t = token();
  const main = h("main", { id: "main", class: "onboarding" });
  clear(root, h("header", { class: "top" }, h("span", { class: "brand" }, "Chatterfly")), main);
  const params = new URLSearchParams(location.search);
  if (!t) {
    const error = params.get("error");
    clear(main, h("h1", { id: "refused", "data-code": "onboarding_link_invalid" }, "Open your onboarding link"),
      error ? h("p", { class: "notice error", role: "alert", "data-code": error }, CONNECT_ERRORS[error] || "Connecting did not work. Try again.") : null,
      h("p", {}, "This page needs the link you were sent (it starts with /onboard/). Open it again from your message."));
    return;
  }
  const load = async (message) => {
    let o;
    try {
      o = await call(t, "GET", "/api/onboarding");
    } catch (err) {
      clear(main, h("h1", { id: "refused", "data-code": err.code || "" }, REFUSED[err.code] || "This link cannot be used"), h("p", {}, err.message));
      return;
    }
    const connected = params.get("connected");
    const error = params.get("error");
    const top = message
      ? notice("ok", message)
      : connected
        ? notice("ok", "Connected. Thank you.")
        : error
          ? h("p", { class: "notice error", role: "alert", "data-code": error }, CONNECT_ERRORS[error] || "Connecting did not work. Try again.")
          : null;
    if (top) top.id = "onboarding-notice";
    clear(
      main,
      h("h1", {}, `Welcome, ${o.participant.name}`),
      h("p", { id: "onboarding-intro" }, h("strong", {}, o.workspace.name), ` asks you, as a ${o.participant.role}, for access to the services below. What you give is encrypted and used only for calls made on your behalf. This link works until ${when(new Date(o.expires_at * 1000).toISOString())}.`),
      top,
      o.connections.length ? o.connections.map((c) => card(t, c, load)) : h("p", {}, "Nothing is asked of you at the moment."),
    );
  };
  await load();
}
