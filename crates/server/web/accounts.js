// My Accounts: each person's own accounts at OAuth providers (connect with the permission
// tiers chosen, see what was granted, disconnect) and their own keys for the workspace's
// `caller` connections. The outcome of a connect comes back in the query; the page says
// it in its own words (never the URL's) and then takes it out of the address.

import { api, ws } from "./api.js";
import { h, clear, notice, when, showFieldErrors } from "./dom.js";

const OUTCOMES = {
  access_denied: "Consent was refused at the provider; nothing was connected.",
  state_unknown: "This connect link was not started here. Start again.",
  state_used: "This connect link was already used. Start again.",
  state_expired: "The connect link expired after ten minutes. Start again.",
  state_other_user: "This connect link was started by another person. Start again while signed in as yourself.",
  not_signed_in: "You were not signed in when the provider sent you back. Sign in, then connect again.",
  bad_callback: "The provider's answer carried no usable code. Start again.",
  token_refused: "The provider refused the authorization code; nothing was connected. Start again.",
  client_refused: "The provider refused Chatterfly's client id or secret. A platform admin must check Platform Admin → OAuth Providers.",
  ssrf_blocked: "The provider's token endpoint address is not allowed. A platform admin must check Platform Admin → OAuth Providers.",
  provider_unreachable: "The provider could not be reached. Try again later.",
  provider_invalid: "The provider answered something that is not a token. Try again later.",
  identity_failed: "The provider did not say which account this is; nothing was connected.",
  provider_error: "The provider answered with an error; nothing was connected.",
  not_configured: "No OAuth client is configured for this provider. A platform admin must register one under Platform Admin → OAuth Providers.",
};

// the auth types a person brings their own key for (as the API decides: a `caller`
// connection with a secret field that no account gives)
const PERSONAL_AUTH = ["api_key_header", "api_key_query", "bearer", "basic", "bot_token"];

export const takesPersonalKeys = (c) =>
  c.fulfillment === "caller" && !!c.auth && PERSONAL_AUTH.includes(c.auth.type) && !c.oauth_provider;

/// The outcome of a connect (from the query), as a notice; the query is then removed so a
/// reload does not say it again.
function outcome(providers) {
  const params = new URLSearchParams(location.search);
  const connected = params.get("connected");
  const error = params.get("error");
  if (connected === null && error === null) return null;
  const known = (id) => providers.find((p) => p.id === id);
  let box;
  if (error !== null) {
    const p = known(params.get("provider"));
    const isKnown = Object.prototype.hasOwnProperty.call(OUTCOMES, error);
    // no text from the URL is shown (anyone can write a link): an unknown code gets the
    // generic message only
    const what = `${p ? `Connecting your ${p.label} account failed` : "Connecting failed"}.`;
    box = h("div", { id: "account-notice", class: "notice error", role: "alert", "data-code": isKnown ? error : "other" }, isKnown ? `${what} ${OUTCOMES[error]}` : what);
  } else {
    const p = known(connected);
    box = h("div", { id: "account-notice", class: "notice ok", role: "status", "data-provider": p ? p.id : null }, p ? `Connected your ${p.label} account.` : "Connected your account.");
  }
  for (const k of ["connected", "error", "provider"]) params.delete(k);
  const rest = params.toString();
  history.replaceState(history.state, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
  return box;
}

function tierLabel(provider, id) {
  const t = provider.tiers.find((x) => x.id === id);
  return t ? t.label : id;
}

function accountCard(ctx, provider, account, reload) {
  const message = h("div", { class: "card-message", "aria-live": "polite" });
  const granted = account ? account.tiers : [];
  const needsReconnect = !!account && account.status === "needs_reconnect";
  const boxes = provider.tiers.map((t, i) => {
    const id = `tier-${provider.id}-${t.id}`;
    const box = h("input", { type: "checkbox", name: "tier", value: t.id, id, checked: account ? granted.includes(t.id) : i === 0 });
    return h("div", { class: "tier-choice" }, h("label", { class: "inline", for: id }, box, " ", t.label), h("span", { class: "hint scope" }, t.scope));
  });
  const connect = h(
    "button",
    { type: "submit", class: "connect", disabled: !provider.configured },
    needsReconnect ? "Reconnect" : account ? "Update permissions" : "Connect",
  );
  const chooser = h(
    "form",
    {
      class: "tier-chooser",
      onsubmit: async (e) => {
        e.preventDefault();
        for (const el of chooser.querySelectorAll(".field-error")) el.remove();
        message.replaceChildren();
        const tiers = [...chooser.querySelectorAll("input[name=tier]")].filter((b) => b.checked).map((b) => b.value);
        connect.disabled = true;
        try {
          const { authorize_url } = await api("POST", `/api/me/accounts/${encodeURIComponent(provider.id)}/connect`, { tiers });
          clear(message, h("p", { role: "status", class: "progress" }, `Taking you to ${provider.label}…`));
          location.assign(authorize_url);
        } catch (err) {
          connect.disabled = false;
          if (err.errors && err.errors.length) showFieldErrors(chooser, message, err);
          else message.append(notice("error", err.message));
        }
      },
    },
    h(
      "fieldset",
      { class: "tiers", "data-pointer": "/tiers" },
      h("legend", {}, account ? "Permissions (add more)" : "Permissions to grant"),
      boxes,
      account ? h("p", { class: "hint" }, "Permissions granted before are kept; to give one up, disconnect and connect again.") : null,
    ),
    connect,
    provider.configured
      ? null
      : h(
        "p",
        { class: "hint not-configured" },
        "Not available yet: a platform admin must register an OAuth client under Platform Admin → ",
        ctx.user.platform_admin ? h("a", { href: "/admin/oauth-providers" }, "OAuth Providers") : "OAuth Providers",
        ".",
      ),
  );
  let disconnect = null;
  if (account) {
    const confirmRow = h(
      "div",
      { class: "confirm-disconnect", hidden: true },
      h("p", {}, `Disconnect ${account.identity}? Chatterfly gives up its access at ${provider.label}; tools that use this account stop working for you.`),
      h("button", {
        type: "button",
        class: "danger confirm",
        onclick: async (e) => {
          e.target.disabled = true;
          message.replaceChildren();
          try {
            await api("DELETE", `/api/me/accounts/${encodeURIComponent(account.id)}`);
            await reload(`Disconnected your ${provider.label} account.`);
          } catch (err) {
            e.target.disabled = false;
            message.append(notice("error", err.message));
          }
        },
      }, "Disconnect"),
      " ",
      h("button", { type: "button", class: "link cancel", onclick: () => { confirmRow.hidden = true; ask.hidden = false; } }, "Cancel"),
    );
    const ask = h("button", { type: "button", class: "disconnect secondary", onclick: () => { confirmRow.hidden = false; ask.hidden = true; } }, "Disconnect");
    disconnect = h("div", { class: "disconnect-area" }, ask, confirmRow);
  }
  return h(
    "section",
    { class: "account-card", "data-provider": provider.id, "data-connected": account ? "true" : "false" },
    h("div", { class: "card-head" },
      h("h2", {}, provider.label),
      account
        ? h("span", { class: `status badge ${needsReconnect ? "bad" : "good"}`, "data-status": account.status }, needsReconnect ? "Needs reconnecting" : "Connected")
        : h("span", { class: "status badge none", "data-status": "none" }, "Not connected")),
    account
      ? [
        h("p", { class: "account-who" }, "Signed in as ", h("strong", { class: "identity" }, account.identity)),
        h("div", { class: "granted" }, h("span", { class: "meta" }, "Granted: "),
          granted.length ? granted.map((t) => h("span", { class: "tier chip", "data-tier": t }, tierLabel(provider, t))) : h("span", { class: "meta" }, "nothing")),
        h("p", { class: "meta connected-at" }, `Connected ${when(account.connected_at)}`, account.updated_at && account.updated_at !== account.connected_at ? `, changed ${when(account.updated_at)}` : ""),
        needsReconnect ? h("p", { class: "warning" }, `${provider.label} no longer accepts this connection. Reconnect to use it again.`) : null,
      ]
      : null,
    chooser,
    disconnect,
    message,
  );
}

function keyForm(ctx, c, view) {
  const base = `${ws(ctx.workspace.slug)}/connections/${encodeURIComponent(c.slug)}/my-credentials`;
  const message = h("div", { class: "key-message", "aria-live": "polite" });
  const inputs = view.fields.map((f) => {
    const id = `key-${c.slug}-${f}`;
    const input = h("input", {
      id,
      name: f,
      type: f === "username" ? "text" : "password",
      autocomplete: f === "username" ? "off" : "new-password",
      placeholder: view.set ? "saved; enter a new value to replace it" : null,
    });
    return { f, input, row: h("div", { class: "field", "data-pointer": `/${f}` }, h("label", { for: id }, f), input) };
  });
  const form = h(
    "form",
    {
      class: "personal-key",
      "data-slug": c.slug,
      "data-set": view.set ? "true" : "false",
      onsubmit: async (e) => {
        e.preventDefault();
        for (const el of form.querySelectorAll(".field-error")) el.remove();
        message.replaceChildren();
        const body = {};
        for (const { f, input } of inputs) if (input.value !== "") body[f] = input.value;
        try {
          const saved = await api("PUT", base, body);
          const next = keyForm(ctx, c, saved);
          form.parentNode.replaceChild(next, form);
          next.querySelector(".key-message").append(notice("ok", `Saved your key for ${c.name}.`));
        } catch (err) {
          message.append(notice("error", err.message));
          showFieldErrors(form, message, err);
        }
      },
    },
    h("h3", {}, c.name, " ", h("code", {}, c.slug)),
    h("p", { class: "meta" }, `${c.service_type}, ${c.auth.type}`),
    h("p", { class: `key-state ${view.set ? "set" : "unset"}` }, view.set ? `Saved ${when(view.updated_at)}` : "Not set"),
    inputs.map((i) => i.row),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "save-key" }, "Save"),
      view.set
        ? [" ", h("button", {
          type: "button",
          class: "link remove-key",
          onclick: async () => {
            message.replaceChildren();
            try {
              await api("DELETE", base);
              const next = keyForm(ctx, c, { ...view, set: false, updated_at: null });
              form.parentNode.replaceChild(next, form);
              next.querySelector(".key-message").append(notice("ok", `Removed your key for ${c.name}.`));
            } catch (err) {
              message.append(notice("error", err.message));
            }
          },
        }, "Remove")]
        : null),
    message,
  );
  return form;
}

async function personalKeys(ctx) {
  const section = h("section", { id: "personal-keys" }, h("h2", {}, "Your keys for this workspace"));
  if (!ctx.workspace) {
    section.append(h("p", { class: "empty" }, "You are not a member of any workspace, so there are no connections to bring keys for."));
    return section;
  }
  section.append(h("p", { class: "hint" }, `Connections in ${ctx.workspace.name} that each person calls with their own key. Keys are write-only: they are never shown again.`));
  let list;
  try {
    list = (await api("GET", `${ws(ctx.workspace.slug)}/connections`)).filter(takesPersonalKeys);
  } catch (err) {
    section.append(notice("error", err.message));
    return section;
  }
  if (!list.length) {
    section.append(h("p", { class: "empty" }, "No connection in this workspace takes a personal key."));
    return section;
  }
  const views = await Promise.all(
    list.map((c) => api("GET", `${ws(ctx.workspace.slug)}/connections/${encodeURIComponent(c.slug)}/my-credentials`).catch((err) => ({ err }))),
  );
  section.append(...list.map((c, i) =>
    views[i].err
      ? h("div", { class: "personal-key", "data-slug": c.slug }, h("h3", {}, c.name, " ", h("code", {}, c.slug)), notice("error", views[i].err.message))
      : keyForm(ctx, c, views[i])));
  return section;
}

// Your API tokens: each listed by name and date (never the token), a new one shown once,
// revoking one stops it on every server within a second.
async function apiTokens(ctx) {
  const section = h("section", { id: "api-tokens" }, h("h2", {}, "API tokens"));
  const list = h("div", { id: "token-list", "aria-live": "polite" });
  const shown = h("div", { id: "token-shown", "aria-live": "polite" });
  const base = `/api/users/${encodeURIComponent(ctx.user.id)}/tokens`;
  const draw = async () => {
    const tokens = await api("GET", base);
    if (!tokens.length) return clear(list, h("p", { class: "empty" }, "You have no API tokens."));
    clear(list, h("table", { class: "tokens" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Created"), h("th", {}, ""))),
      h("tbody", {}, tokens.map((t) => h("tr", { "data-token": t.id },
        h("td", {}, t.name, t.current ? h("span", { class: "meta" }, " (this request's)") : null),
        h("td", {}, when(t.created_at)),
        h("td", {}, h("button", {
          type: "button", class: "danger", "aria-label": `Revoke ${t.name}`,
          onclick: async (ev) => {
            if (!confirm(`Revoke the token “${t.name}”? Anything using it stops working.`)) return;
            ev.target.disabled = true;
            try {
              await api("DELETE", `${base}/${encodeURIComponent(t.id)}`);
              clear(shown, notice("ok", `Token “${t.name}” revoked.`));
              await draw();
            } catch (err) {
              ev.target.disabled = false;
              clear(shown, notice("error", err.message));
            }
          },
        }, "Revoke")))))));
  };
  const name = h("input", { id: "token-name", name: "name", required: true, maxlength: 100, placeholder: "e.g. ci or laptop" });
  const form = h("form", { id: "token-form", class: "inline" },
    h("label", { for: "token-name" }, "New token"), name, h("button", { type: "submit" }, "Create token"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const t = await api("POST", base, { name: name.value });
      name.value = "";
      clear(shown, h("div", { class: "notice ok", role: "status" },
        h("p", {}, `Token “${t.name}” created. Copy it now: it is not shown again.`),
        h("code", { id: "new-token" }, t.token)));
      await draw();
    } catch (err) {
      clear(shown, notice("error", err.message));
    }
  });
  section.append(h("p", { class: "hint" }, "Tokens let scripts and agents call the API as you. Revoking one stops it on every server within a second."), form, shown, list);
  await draw().catch((err) => clear(list, notice("error", err.message)));
  return section;
}

export async function accountsPage(main, ctx) {
  clear(main, h("h1", {}, "My Accounts"), h("p", { role: "status" }, "Loading…"));
  const [providers, keys, tokens] = await Promise.all([api("GET", "/api/me/account-providers"), personalKeys(ctx), apiTokens(ctx)]);
  const top = h("div", { id: "accounts-top", "aria-live": "polite" }, outcome(providers));
  const cards = h("div", { id: "account-cards" });
  const draw = async (done) => {
    const accounts = await api("GET", "/api/me/accounts");
    clear(cards, providers.map((p) => accountCard(ctx, p, accounts.find((a) => a.provider === p.id), reload)));
    if (done) clear(top, h("div", { id: "account-notice", class: "notice ok", role: "status" }, done));
  };
  const reload = (done) => draw(done).catch((err) => clear(top, notice("error", err.message)));
  await draw();
  clear(
    main,
    h("h1", {}, "My Accounts"),
    top,
    h("p", { class: "hint" }, "Your own accounts at other services. Tools that act for you (such as a connection whose token comes from your GitHub account) use them; nobody else can."),
    cards,
    keys,
    tokens,
  );
}
