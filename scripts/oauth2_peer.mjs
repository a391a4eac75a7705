// The account tests' authorization server: npm oauth2-mock-server (pinned in scripts/oauth2.sh),
// started through its own API so that it behaves like Google's and GitHub's servers where the
// tests need it to, using only the package's documented events and `addRoute`:
// - the scope granted for a code is the scope asked for at /authorize, carried into the access
//   token, the token response and every refresh (the package answers "dummy" otherwise);
// - refresh tokens are single-use: each refresh issues a new one (rotation) and an unknown,
//   used or revoked one is refused with `invalid_grant`;
// - the id token carries the identity's `email`, the access token its `sub`, `email`, `login`;
// - the jwt-bearer grant takes its scope from the assertion's `scope` claim (Google's form);
// - GET /user answers GitHub's way ({"login","id"}) for the bearer's identity.
// Test controls under /__test/: POST /__test/config {identity, expires_in, deny_next,
// token_failures: [{status, body, content_type}], client_secret, refresh_delay_ms};
// GET /__test/stats (token requests by grant type, revocations, every token and code issued,
// for the canary checks); POST /__test/reset.
// usage: node oauth2_peer.mjs MODULE_DIR PORT
import { pathToFileURL } from "node:url";
import path from "node:path";

const [moduleDir, portText] = process.argv.slice(2);
const { OAuth2Server } = await import(
  pathToFileURL(path.join(moduleDir, "node_modules/oauth2-mock-server/dist/index.mjs")).href
);
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";

const fresh = () => ({
  identity: { sub: "johndoe", email: "johndoe@example.com", login: "johndoe" },
  expires_in: 3600,
  deny_next: 0,
  token_failures: [],
  client_secret: null,
  refresh_delay_ms: 0,
});
let config = fresh();
let stats = { token: {}, revoked: [], authorize: 0, issued: [], codes: [] };
const codes = new Map(); // code -> {scope, identity}
const refreshTokens = new Map(); // refresh token -> {scope, identity}
const pending = new WeakMap(); // request -> {scope, identity}

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
const service = server.service;

service.on("beforeAuthorizeRedirect", (redirect, req) => {
  stats.authorize += 1;
  const url = redirect.url;
  if (config.deny_next > 0) {
    config.deny_next -= 1;
    url.searchParams.delete("code");
    url.searchParams.set("error", "access_denied");
    url.searchParams.set("error_description", "The user denied the request");
    return;
  }
  const code = url.searchParams.get("code");
  if (code) stats.codes.push(code);
  if (code) codes.set(code, { scope: req.query.scope ?? "", identity: { ...config.identity } });
});

function grantOf(req) {
  if (pending.has(req)) return pending.get(req);
  const body = req.body ?? {};
  let grant = null;
  if (body.grant_type === "authorization_code") grant = codes.get(body.code) ?? null;
  if (body.grant_type === "refresh_token") grant = refreshTokens.get(body.refresh_token) ?? null;
  if (body.grant_type === JWT_BEARER) {
    try {
      const claims = JSON.parse(Buffer.from(String(body.assertion).split(".")[1], "base64url").toString("utf8"));
      grant = { scope: claims.scope ?? "", identity: { sub: claims.sub, email: claims.sub, login: claims.sub } };
    } catch {
      grant = null;
    }
  }
  pending.set(req, grant);
  return grant;
}

service.on("beforeTokenSigning", (token, req) => {
  const grant = grantOf(req);
  if (!grant) return;
  token.payload.sub = grant.identity.sub;
  token.payload.email = grant.identity.email;
  token.payload.login = grant.identity.login;
  if ("scope" in token.payload) token.payload.scope = grant.scope;
  token.payload.exp = token.payload.iat + Number(config.expires_in);
});

function clientSecretOf(req) {
  const auth = req.headers.authorization ?? "";
  if (auth.startsWith("Basic ")) {
    const pair = Buffer.from(auth.slice(6), "base64").toString("utf8");
    return decodeURIComponent(pair.slice(pair.indexOf(":") + 1));
  }
  return req.body?.client_secret ?? null;
}

service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  const type = body.grant_type === JWT_BEARER ? "jwt_bearer" : body.grant_type;
  stats.token[type] = (stats.token[type] ?? 0) + 1;
  if (config.token_failures.length > 0) {
    const f = config.token_failures.shift();
    response.statusCode = f.status ?? 400;
    response.body = f.body ?? { error: "invalid_request" };
    return;
  }
  if (config.client_secret !== null && body.grant_type !== JWT_BEARER && clientSecretOf(req) !== config.client_secret) {
    response.statusCode = 401;
    response.body = { error: "invalid_client", error_description: "The client secret is wrong" };
    return;
  }
  const grant = grantOf(req);
  if (body.grant_type === "refresh_token") {
    if (!grant) {
      response.statusCode = 400;
      response.body = { error: "invalid_grant", error_description: "Token has been expired or revoked." };
      return;
    }
    refreshTokens.delete(body.refresh_token);
  }
  if (body.grant_type === "authorization_code") codes.delete(body.code);
  if (grant) {
    response.body.scope = grant.scope;
    if (response.body.refresh_token) refreshTokens.set(response.body.refresh_token, grant);
  }
  response.body.expires_in = Number(config.expires_in);
  for (const k of ["access_token", "refresh_token", "id_token"]) {
    if (typeof response.body[k] === "string") stats.issued.push(response.body[k]);
  }
});

// A refresh answered slowly widens the window in which concurrent calls all need it.
const original = service.requestHandler;
const json = (res, status, body) => {
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json");
  res.end(JSON.stringify(body));
};
const readBody = (req) =>
  new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });

service.addRoute("GET", "/user", (req, res) => {
  const auth = req.headers.authorization ?? "";
  const parts = auth.replace(/^Bearer /, "").split(".");
  try {
    const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    json(res, 200, { login: claims.login ?? claims.sub, id: 4242 });
  } catch {
    json(res, 401, { message: "Bad credentials" });
  }
});
service.addRoute("POST", "/__test/config", (req, res) => {
  config = { ...config, ...req.body };
  json(res, 200, config);
});
service.addRoute("GET", "/__test/stats", (_req, res) => json(res, 200, stats));
service.addRoute("POST", "/__test/reset", (_req, res) => {
  config = fresh();
  stats = { token: {}, revoked: [], authorize: 0, issued: [], codes: [] };
  json(res, 200, {});
});

// Wrap the server's handler: revoke bodies are recorded and refreshes may be slowed down.
const http = await import("node:http");
const wrapped = http.createServer(async (req, res) => {
  if (req.method === "POST" && (req.url === "/token" || req.url === "/revoke")) {
    const text = await readBody(req);
    const form = Object.fromEntries(new URLSearchParams(text));
    if (req.url === "/revoke" && form.token) {
      stats.revoked.push(form.token);
      refreshTokens.delete(form.token);
    }
    if (req.url === "/token" && form.grant_type === "refresh_token" && config.refresh_delay_ms > 0) {
      await new Promise((r) => setTimeout(r, config.refresh_delay_ms));
    }
    // hand the body back to the package's handler
    const { Readable } = await import("node:stream");
    const replay = Readable.from([Buffer.from(text)]);
    Object.assign(replay, { method: req.method, url: req.url, headers: req.headers, socket: req.socket });
    return original(replay, res);
  }
  return original(req, res);
});
server.issuer.url = `http://127.0.0.1:${portText}`;
wrapped.listen(Number(portText), "127.0.0.1", () => {
  console.log(`oauth2 peer listening on 127.0.0.1:${portText}`);
});
