// Chatterfly's pages: plain ES modules over the JSON API (no second path to the data).
// Every page load reads the session (and its CSRF token); a page without one goes to
// /login. The workspace chosen in the header is remembered in this browser.

import { api, setCsrf } from "./api.js";
import { h, clear, notice } from "./dom.js";
import { loginPage } from "./login.js";

// each page's module is loaded when it is visited
const page = (file, name) => async (...args) => (await import(file))[name](...args);
const ROUTES = [
  [/^\/(connections\/?)?$/, page("./hub.js", "hubPage")],
  [/^\/connections\/new$/, page("./wizard.js", "wizardPage")],
  [/^\/connections\/([a-z][a-z0-9_]{0,62})$/, page("./connection.js", "connectionPage")],
  [/^\/tools$/, page("./tools.js", "toolsPage")],
  [/^\/agents\/?$/, page("./agents.js", "agentsPage")],
  [/^\/agents\/new$/, page("./agents.js", "newAgentPage")],
  [/^\/agents\/([0-9a-f-]{36})$/, page("./agents.js", "agentPage")],
  [/^\/agents\/([0-9a-f-]{36})\/runs\/([0-9a-f-]{36})$/, page("./agents.js", "runPage")],
  [/^\/workflows\/?$/, page("./workflows.js", "workflowsPage")],
  [/^\/workflows\/new$/, page("./workflows.js", "newWorkflowPage")],
  [/^\/workflows\/([0-9a-f-]{36})$/, page("./workflows.js", "workflowPage")],
  [/^\/workflows\/([0-9a-f-]{36})\/runs\/([0-9a-f-]{36})$/, page("./workflows.js", "workflowRunPage")],
  [/^\/admin\/workspaces$/, page("./admin.js", "adminWorkspacesPage")],
  [/^\/admin\/users$/, page("./admin.js", "adminUsersPage")],
  [/^\/admin\/service-credentials$/, page("./admin.js", "adminServicesPage")],
  [/^\/admin\/oauth-providers$/, page("./admin.js", "adminProvidersPage")],
  [/^\/settings\/workspace\/services$/, page("./services.js", "servicesPage")],
  [/^\/settings\/accounts$/, page("./accounts.js", "accountsPage")],
  [/^\/participants$/, page("./participants.js", "participantsPage")],
  [/^\/audit$/, page("./audit.js", "auditPage")],
];

const WS_KEY = "chatterfly.workspace";

function chooseWorkspace(user) {
  const names = user.workspaces.map((w) => w.slug);
  const fromUrl = new URLSearchParams(location.search).get("ws");
  const saved = localStorage.getItem(WS_KEY);
  const slug = [fromUrl, saved, names[0]].find((s) => s && names.includes(s));
  if (slug) localStorage.setItem(WS_KEY, slug);
  return user.workspaces.find((w) => w.slug === slug) || null;
}

function header(ctx) {
  const { user, workspace } = ctx;
  const link = (href, text) =>
    h("a", { href, class: location.pathname === href ? "current" : null, "aria-current": location.pathname === href ? "page" : null }, text);
  const switcher = h(
    "select",
    {
      id: "workspace-switcher",
      "aria-label": "Workspace",
      onchange: (e) => {
        localStorage.setItem(WS_KEY, e.target.value);
        location.assign("/connections");
      },
    },
    user.workspaces.map((w) => h("option", { value: w.slug, selected: workspace && w.slug === workspace.slug }, `${w.name} (${w.slug})`)),
  );
  const signOut = h("button", {
    type: "button",
    id: "sign-out",
    class: "link",
    onclick: async () => {
      try {
        await api("POST", "/api/auth/logout");
      } finally {
        location.assign("/login");
      }
    },
  }, "Sign out");
  return h(
    "header",
    { class: "top" },
    h("a", { href: "/connections", class: "brand" }, "Chatterfly"),
    h(
      "nav",
      { "aria-label": "Main" },
      link("/connections", "Connections"),
      link("/tools", "Tools"),
      link("/agents", "Agents"),
      link("/workflows", "Workflows"),
      ctx.isAdmin ? link("/audit", "Audit") : null,
      ctx.isAdmin ? link("/participants", "Participants") : null,
      link("/settings/workspace/services", "AI & Services"),
      link("/settings/accounts", "My Accounts"),
      user.platform_admin
        ? h("span", { class: "admin-nav", id: "platform-admin" }, "Platform Admin: ", link("/admin/workspaces", "Workspaces"), " ", link("/admin/users", "Users"), " ",
          link("/admin/service-credentials", "Service Credentials"), " ", link("/admin/oauth-providers", "OAuth Providers"))
        : null,
    ),
    h("div", { class: "who" }, user.workspaces.length ? switcher : null, h("span", { class: "user" }, user.name), signOut),
  );
}

async function start() {
  const root = document.getElementById("app");
  if (location.pathname === "/login") {
    clear(root, loginPage());
    return;
  }
  // a participant's onboarding needs no account: its link is its key
  if (location.pathname === "/onboard" || location.pathname.startsWith("/onboard/")) {
    const { onboardPage } = await import("./onboard.js");
    await onboardPage(root);
    document.documentElement.dataset.ready = String(Math.round(performance.now()));
    return;
  }
  // the hub's list is asked for with the session, for the workspace chosen last time
  const guess = localStorage.getItem(WS_KEY);
  const early = guess && /^\/(connections\/?)?$/.test(location.pathname)
    ? { path: `/api/workspaces/${encodeURIComponent(guess)}/connections`, answer: api("GET", `/api/workspaces/${encodeURIComponent(guess)}/connections`) }
    : null;
  if (early) early.answer.catch(() => {});
  let session;
  try {
    session = await api("GET", "/api/auth/session");
  } catch (e) {
    if (e.status === 401) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      return;
    }
    clear(root, notice("error", e.message));
    return;
  }
  setCsrf(session.csrf_token);
  const user = session.user;
  const workspace = chooseWorkspace(user);
  const ctx = {
    user,
    workspace,
    isAdmin: !!workspace && workspace.role === "admin",
    // a GET already under way, else a new one
    get: (path) => (early && early.path === path ? early.answer : api("GET", path)),
  };
  const main = h("main", { id: "main" });
  clear(root, header(ctx), main);
  const route = ROUTES.find(([re]) => re.test(location.pathname));
  if (!route) {
    clear(main, h("h1", {}, "Not found"), h("p", {}, "There is no page here. ", h("a", { href: "/connections" }, "Go to Connections.")));
    return;
  }
  // platform admin pages and My Accounts (a person's own) need no workspace
  if (!workspace && !location.pathname.startsWith("/admin/") && location.pathname !== "/settings/accounts") {
    clear(main, h("h1", {}, "No workspace"), h("p", {}, "You are not a member of any workspace yet. Ask a workspace admin to invite you."));
    return;
  }
  const match = location.pathname.match(route[0]);
  try {
    await route[1](main, ctx, ...match.slice(1));
  } catch (e) {
    main.append(notice("error", e.message));
  }
  // when the page's data is on screen (tests and the bench wait for it)
  document.documentElement.dataset.ready = String(Math.round(performance.now()));
}

start();
