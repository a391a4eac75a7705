// The Telegram tests' Bot API: npm telegram-test-api (pinned in scripts/telegram.sh), which
// answers getMe, sendMessage and getUpdates as Telegram does and records what each bot sent
// (POST /getUpdatesHistory {"token"}). It is mounted behind a few answers the package does
// not give, chosen by the bot id (the digits before the token's `:`), so the tests meet
// Telegram's refusals as Telegram words them:
// - 401…: {"ok":false,"error_code":401,"description":"Unauthorized"} (a token Telegram refuses)
// - 429…: 429 with {"parameters":{"retry_after":17}} (flood control)
// - 400…: sendMessage refused with 400 "Bad Request: chat not found"
// - 418…: a refusal whose description echoes the token (to prove it is redacted)
// - 302…: a redirect to another host whose Location carries the token (never to be followed)
// Test controls: GET /__test/requests (requests per bot token, refused ones included),
// POST /__test/reset.
// usage: node telegram_peer.cjs MODULE_DIR PORT
const path = require("node:path");
const [moduleDir, portText] = process.argv.slice(2);
const TelegramServer = require(path.join(moduleDir, "node_modules/telegram-test-api"));
const express = require(path.join(moduleDir, "node_modules/express"));

const port = Number(portText);
const server = new TelegramServer({ port, host: "127.0.0.1", storeTimeout: 600 });
let requests = {};

const outer = express();
outer.get("/__test/requests", (_req, res) => res.json(requests));
outer.post("/__test/reset", (_req, res) => {
  requests = {};
  server.storage.botMessages.length = 0;
  server.storage.userMessages.length = 0;
  res.json({ ok: true });
});
outer.all("/bot:token/:method", (req, res, next) => {
  const token = req.params.token;
  requests[token] = (requests[token] || 0) + 1;
  const id = token.split(":")[0];
  const refuse = (status, body) => res.status(status).json({ ok: false, error_code: status, ...body });
  if (id.startsWith("401")) return refuse(401, { description: "Unauthorized" });
  if (id.startsWith("429")) return refuse(429, { description: "Too Many Requests: retry after 17", parameters: { retry_after: 17 } });
  if (id.startsWith("400") && req.params.method === "sendMessage") return refuse(400, { description: "Bad Request: chat not found" });
  if (id.startsWith("418")) return refuse(400, { description: `Bad Request: bot ${token} cannot do that` });
  if (id.startsWith("302")) return res.redirect(302, `http://localhost:${port}/moved/bot${token}/${req.params.method}`);
  next();
});
outer.use(server.webServer);
outer.listen(port, "127.0.0.1", () => console.log(`telegram-test-api on http://127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));
