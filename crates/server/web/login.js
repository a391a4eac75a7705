// Sign in with an API token, or an e-mail address and password.

import { api } from "./api.js";
import { h, notice } from "./dom.js";

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/connections";
  // only a page of this site: resolved as the browser would (which drops tabs and line
  // breaks, and reads `\` as `/`), then required to stay on this origin
  try {
    const url = new URL(next, location.origin);
    // the whole URL, not its path: a path that resolves to `//host` (`/.//host`) would
    // be read as another site
    if (url.origin === location.origin && next.startsWith("/") && !url.pathname.startsWith("//")) return url.href;
  } catch (e) {
    // not a URL at all
  }
  return "/connections";
}

export function loginPage() {
  const message = h("div", { id: "login-message", "aria-live": "polite" });
  const submit = async (event, body) => {
    event.preventDefault();
    message.replaceChildren();
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/api/auth/login", body());
      location.assign(safeNext());
    } catch (e) {
      message.append(notice("error", e.message));
      button.disabled = false;
    }
  };
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const email = h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  return h(
    "main",
    { class: "login" },
    h("h1", {}, "Sign in to Chatterfly"),
    message,
    h(
      "form",
      { id: "token-form", onsubmit: (e) => submit(e, () => ({ token: token.value })) },
      h("label", { for: "token" }, "API token"),
      token,
      h("p", { class: "hint" }, "The token the first start printed works here."),
      h("button", { type: "submit" }, "Sign in with token"),
    ),
    h("p", { class: "or" }, "or"),
    h(
      "form",
      { id: "password-form", onsubmit: (e) => submit(e, () => ({ email: email.value, password: password.value })) },
      h("label", { for: "email" }, "E-mail"),
      email,
      h("label", { for: "password" }, "Password"),
      password,
      h("button", { type: "submit" }, "Sign in"),
    ),
  );
}
