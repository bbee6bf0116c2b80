// End-to-end test of the real desktop app: starts `switchyard` (built with embedded
// assets) through tauri-driver + WebKitWebDriver, clicks through the navigation,
// checks that the Dashboard shows what the real core reports and where the gateway
// listens (and that it answers), adds a provider with a planted key (tested against a
// fake OpenAI server on loopback), adds three rules and reorders them by keyboard and
// by pointer drag and drop (checked through the CLI on the same data dir; a drag while
// the CLI changed the rules is a shown conflict), tests a model name, changes the pool,
// shows a model a gateway request loaded and unloads it, loads / pins / unloads a model
// on the Models page and pulls one from a fake Hub (progress, cancel, resume), replaces
// the root secret, checks that the planted key is in no command's response and no file
// of the data dir, stops and starts the gateway from the Dashboard, checks that the last
// page, the window's place and the rule order survive a restart (tauri-plugin-store),
// that a second launch hands over to the first instance, that a busy gateway port is
// shown as such, the dark theme, the language switch (window and tray menu) and launch
// at login; then drives the tray menu itself in a system tray on the Xvfb screen.
// Screenshots of every page and of the tray menu go to target/e2e/.
//
// Run it through scripts/e2e.sh (it provides Xvfb, a D-Bus session and tauri-driver):
//   node ui/e2e/run.mjs --app target/debug/switchyard --driver .tools/cargo/bin/tauri-driver
//
// A minimal W3C WebDriver client is written here on purpose: a WebDriver library
// would add hundreds of packages for the dozen HTTP calls this needs.

import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const APP = resolve(args.app ?? "target/debug/switchyard");
const DRIVER = resolve(args.driver ?? ".tools/cargo/bin/tauri-driver");
const NATIVE = args["native-driver"] ?? "/usr/bin/WebKitWebDriver";
const OUT = resolve(args.out ?? "target/e2e");
const PORT = Number(args.port ?? 4444);
const FIXTURE = resolve(args.fixture ?? ".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
let BASE = `http://127.0.0.1:${PORT}`;
// The app under test: the file vault (this session bus has no keychain) and any free
// gateway port, so a gateway already running on 8399 does not get in the way.
const APP_ENV = { SWITCHYARD_VAULT: "file", SWITCHYARD_GATEWAY_PORT: "0" };
const PLANTED = `sk-test-PLANTED-${randomBytes(12).toString("hex")}`;
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const PAGES = ["dashboard", "models", "providers", "routing", "pool", "clients", "security"];
const LABELS = ["Dashboard", "Models", "Providers", "Routing", "Pool", "Clients", "Security"];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let driverLog = "";
let current = null; // the live session, for a screenshot when a check fails

async function wd(method, path, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const v = json.value ?? {};
    throw new Error(`WebDriver ${method} ${path} -> ${res.status} ${v.error ?? ""}: ${v.message ?? JSON.stringify(json)}`);
  }
  return json.value;
}

async function waitFor(what, fn, timeoutMs = 30000) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

class Session {
  constructor(id) {
    this.id = id;
  }
  static async start(dataDir) {
    const value = await wd("POST", "/session", {
      capabilities: {
        alwaysMatch: {
          browserName: "wry",
          "tauri:options": { application: APP, args: ["--data-dir", dataDir] },
        },
      },
    });
    current = new Session(value.sessionId);
    return current;
  }
  find = async (css) => (await wd("POST", `/session/${this.id}/element`, { using: "css selector", value: css }))[ELEMENT];
  async exists(css) {
    const v = await wd("POST", `/session/${this.id}/elements`, { using: "css selector", value: css });
    return v.length > 0;
  }
  text = async (css) => wd("GET", `/session/${this.id}/element/${await this.find(css)}/text`);
  click = async (css) => wd("POST", `/session/${this.id}/element/${await this.find(css)}/click`, {});
  exec = async (script, a = []) => wd("POST", `/session/${this.id}/execute/sync`, { script, args: a });
  /** Type into an input the way a user does (Svelte's bindings see the input events). */
  async type(css, text) {
    const el = await this.find(css);
    await wd("POST", `/session/${this.id}/element/${el}/clear`, {});
    await wd("POST", `/session/${this.id}/element/${el}/value`, { text });
  }
  /** Pick an option of a <select>. */
  select = async (css, value) =>
    this.exec(
      `const el = document.querySelector(arguments[0]); el.value = arguments[1];
       if (el.value !== arguments[1]) throw new Error("no option " + arguments[1] + " in " + arguments[0]);
       el.dispatchEvent(new Event("change", { bubbles: true }));`,
      [css, value],
    );
  /** Press keys on whatever has the focus (W3C actions), one keyDown/keyUp pair each. */
  async keys(...keys) {
    const actions = keys.flatMap((k) => [{ type: "keyDown", value: k }, { type: "keyUp", value: k }, { type: "pause", duration: 150 }]);
    await wd("POST", `/session/${this.id}/actions`, { actions: [{ type: "key", id: "keyboard", actions }] });
    await wd("DELETE", `/session/${this.id}/actions`);
  }
  /**
   * Drag by pointer, as a person does with the mouse (W3C pointer actions): press on
   * `fromCss`, glide in small steps to `dy` px below the top edge of `toCss`, hold,
   * release. The steps and pauses give the drag library's position checks time to run.
   */
  async drag(fromCss, toCss, dy) {
    const rect = (css) => this.exec(`const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2, r.y];`, [css]);
    const [x, y0] = await rect(fromCss);
    const [, , top] = await rect(toCss);
    const y1 = top + dy;
    const moves = [];
    const steps = Math.max(4, Math.ceil(Math.abs(y1 - y0) / 6));
    for (let i = 1; i <= steps; i++) {
      moves.push({ type: "pointerMove", duration: 30, origin: "viewport", x: Math.round(x), y: Math.round(y0 + ((y1 - y0) * i) / steps) });
      moves.push({ type: "pause", duration: 40 });
    }
    const actions = [
      { type: "pointerMove", duration: 0, origin: "viewport", x: Math.round(x), y: Math.round(y0) },
      { type: "pointerDown", button: 0 },
      { type: "pause", duration: 200 },
      ...moves,
      { type: "pause", duration: 600 },
      { type: "pointerUp", button: 0 },
    ];
    await wd("POST", `/session/${this.id}/actions`, {
      actions: [{ type: "pointer", id: "mouse", parameters: { pointerType: "mouse" }, actions }],
    });
    await wd("DELETE", `/session/${this.id}/actions`);
  }
  /** Call a Tauri command from the page, as the UI does; resolves to {ok} or {err}. */
  invoke = async (cmd, a = {}) =>
    wd("POST", `/session/${this.id}/execute/async`, {
      script: `const done = arguments[arguments.length - 1];
        window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1]).then((ok) => done({ ok }), (err) => done({ err }));`,
      args: [cmd, a],
    });
  async goto(id) {
    await this.click(`#nav-${id}`);
    await waitFor(`page ${id}`, () => this.exists(`main#page-${id}`));
  }
  async screenshot(name) {
    // The DOM can be ready before WebKit has painted it: wait two frames, then a beat.
    await wd("POST", `/session/${this.id}/execute/async`, {
      script: "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
      args: [],
    });
    await sleep(400);
    const png = Buffer.from(await wd("GET", `/session/${this.id}/screenshot`), "base64");
    assert.equal(png.subarray(1, 4).toString(), "PNG", "screenshot is a PNG");
    const file = join(OUT, name);
    writeFileSync(file, png);
    console.log(`  screenshot ${file} (${png.length} bytes)`);
  }
  end = async () => wd("DELETE", `/session/${this.id}`).catch(() => {});
}

/** The Dashboard must show the core's data; an error banner means the command failed. */
async function dashboardFacts(s) {
  return waitFor("the Dashboard to show the core's data", async () => {
    if (await s.exists("#dash-error")) throw new Error(`Dashboard shows an error: ${await s.text("#dash-error")}`);
    if (!(await s.exists("#dash-facts"))) return null;
    return {
      version: await s.text("#dash-version"),
      dataDir: await s.text("#dash-data-dir"),
      schema: Number(await s.text("#dash-schema-version")),
    };
  });
}

/** The CLI of the same binary on the same data dir: what the core has stored. */
function cli(dataDir, ...a) {
  return JSON.parse(
    execFileSync(APP, ["--json", "--data-dir", dataDir, ...a], {
      env: { ...process.env, ...APP_ENV },
      stdio: ["ignore", "pipe", "pipe"], // the file vault's warning on stderr is expected
    }).toString(),
  );
}

/** tauri-driver on `port` (its WebKitWebDriver on `port + 1`), the app's environment from `env`. */
async function startDriver(port, env) {
  const driver = spawn(DRIVER, ["--port", String(port), "--native-port", String(port + 1), "--native-driver", NATIVE], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SWITCHYARD_LOG: "info", ...env },
  });
  driver.stdout.on("data", (d) => (driverLog += d));
  driver.stderr.on("data", (d) => (driverLog += d));
  BASE = `http://127.0.0.1:${port}`;
  await waitFor("tauri-driver to listen", async () => (await fetch(BASE + "/status")).ok, 20000);
  return driver;
}

/** A stand-in for OpenAI's GET /v1/models: 200 with the planted key, 401 without it. */
async function fakeOpenAI() {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push({ path: req.url, auth: req.headers.authorization ?? null });
    if (req.method === "GET" && req.url === "/v1/models") {
      if (req.headers.authorization === `Bearer ${PLANTED}`) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [{ id: "fake-1", object: "model" }, { id: "fake-2", object: "model" }] }));
      } else {
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "Incorrect API key provided", type: "invalid_request_error", code: "invalid_api_key" } }));
      }
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: server.address().port, seen };
}

/**
 * A stand-in for the Hugging Face Hub in its URL layout, with one repo (`acme/smol-gguf`,
 * the fixture GGUF as an LFS file): the revision listing, `resolve` redirecting to a
 * CDN path, and the CDN honouring `Range` and sending ~20 MB/s so a pull can be watched
 * and cancelled.
 */
async function fakeHub() {
  const bytes = readFileSync(FIXTURE);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const commit = "4d3c2b1a".repeat(5);
  const cdn = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/api/models/acme/smol-gguf/revision/main") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id: "acme/smol-gguf",
          sha: commit,
          siblings: [
            { rfilename: "README.md", blobId: "1".repeat(40), size: 7 },
            { rfilename: "smol.Q4_1.gguf", blobId: "2".repeat(40), size: bytes.length, lfs: { sha256, size: bytes.length, pointerSize: 134 } },
          ],
        }),
      );
    } else if (url.pathname === `/acme/smol-gguf/resolve/${commit}/smol.Q4_1.gguf`) {
      res.writeHead(302, { location: `/cdn/${sha256}?X-Amz-Signature=e2e` }).end();
    } else if (url.pathname === `/cdn/${sha256}`) {
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
      const start = m ? Number(m[1]) : 0;
      cdn.push(start);
      const head = { "content-length": bytes.length - start, "accept-ranges": "bytes" };
      if (m) res.writeHead(206, { ...head, "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` });
      else res.writeHead(200, head);
      for (let at = start; at < bytes.length && !res.destroyed; at += 1 << 20) {
        res.write(bytes.subarray(at, Math.min(bytes.length, at + (1 << 20))));
        await sleep(50);
      }
      res.end();
    } else {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "Repository not found" }));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${server.address().port}`, cdn, size: bytes.length };
}

/** Every regular file under `dir` whose bytes contain `needle` (the pool's socket has no bytes to read). */
function filesContaining(dir, needle) {
  const hits = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

const ruleIdsInUi = (s) => s.exec(`return [...document.querySelectorAll("#rule-list > li")].map((li) => Number(li.dataset.ruleId));`);

/** The tokens the run uses: the first start's `default`, and the one issued on the Clients page. */
const TOKENS = { default: null, e2e: null };
const bearer = (t) => ({ authorization: `Bearer ${t}` });

/** The first start's `default` token, shown once on the Dashboard: it works, a request without it does not. */
async function firstToken(s, url) {
  const token = await waitFor("the first-run token on the Dashboard", async () =>
    (await s.exists("#token-value")) && s.exec(`return document.querySelector("#token-value").value`),
  );
  assert.match(token, /^sy-[A-Za-z0-9_=-]+$/);
  const none = await fetch(`${url}/v1/models`);
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.code, "auth_required");
  const ok = await fetch(`${url}/v1/models`, { headers: bearer(token) });
  assert.equal(ok.status, 200, await ok.clone().text());
  await s.screenshot("dashboard-first-token.png");
  await s.click("#token-dismiss");
  await waitFor("the token to be gone", async () => !(await s.exists("#token-reveal")));
  TOKENS.default = token;
  // A request through the gateway shows on the Dashboard as it happens (an event, no reload).
  const sent = Date.now();
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(token) },
    body: JSON.stringify({ model: "e2e-no-such-model", messages: [{ role: "user", content: "Hi" }] }),
  });
  assert.equal(r.status, 404);
  await waitFor(
    "the request on the Dashboard",
    async () =>
      s.exec(`return [...document.querySelectorAll("#dash-requests tbody tr")].some((tr) => tr.textContent.includes("e2e-no-such-model") && tr.dataset.status === "404");`),
    1000,
  );
  console.log(`  ok the Dashboard listed the request ${Date.now() - sent} ms after it was sent (client, model, status)`);
  console.log("  ok the first start's token is shown once on the Dashboard and opens the gateway; none gets 401 auth_required");
}

/** The Clients page: issue a scoped token, use it through the gateway, revoke it → 401. */
async function clients(s, dataDir, url) {
  await s.goto("clients");
  await waitFor("the default token in the list", () => s.exists('tr[data-client-name="default"]'));
  await s.type("#clients-name", "e2e");
  await s.type("#clients-models", "e2e-*, gamma-*");
  await s.type("#clients-expires", "30d");
  await s.click("#clients-issue");
  const token = await waitFor("the new token", async () =>
    (await s.exists("#token-value")) && s.exec(`return document.querySelector("#token-value").value`),
  );
  await waitFor("the new row", () => s.exists('tr[data-client-name="e2e"]'));
  await s.screenshot("clients.png");
  const listed = cli(dataDir, "token", "list").find((c) => c.name === "e2e");
  assert.deepEqual(listed.scopes, ["e2e-*", "gamma-*"]);
  assert.equal(listed.state, "active");
  assert.ok(listed.expires_at > Date.now() + 29 * 86400e3);
  assert.ok(!JSON.stringify(cli(dataDir, "token", "list")).includes(token), "`token list` never shows a token");
  const outside = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(token) },
    body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] }),
  });
  assert.equal(outside.status, 403);
  assert.equal((await outside.json()).error.code, "model_not_allowed");
  const inside = await fetch(`${url}/v1/models`, { headers: { "x-api-key": token } });
  assert.equal(inside.status, 200);
  await s.click("#token-dismiss");
  await s.click('tr[data-client-name="e2e"] [data-role="revoke"]');
  await s.click("#clients-revoke-dialog-confirm");
  await waitFor("the revoked state", async () => (await s.text('tr[data-client-name="e2e"] [data-role="state"]')) === "revoked");
  const revoked = await fetch(`${url}/v1/models`, { headers: { "x-api-key": token } });
  assert.equal(revoked.status, 401);
  assert.equal((await revoked.json()).error.code, "token_revoked");
  TOKENS.e2e = token;
  // Tokens off for loopback: the page warns, the tray says so, a request needs none; then on again.
  const log = () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8");
  await s.click("#clients-auth-toggle");
  await waitFor("the warning on the Clients page", () => s.exists("#clients-auth-off"));
  await waitFor("the tray to say tokens are off", async () => log().includes(`tray status: Gateway: ${url} — client tokens off`), 10000);
  assert.equal((await fetch(`${url}/v1/models`)).status, 200, "no token needed while off");
  const before = log().length;
  await s.click("#clients-auth-toggle");
  await waitFor("the warning to go", async () => !(await s.exists("#clients-auth-off")));
  await waitFor("the tray to drop the warning", async () => log().slice(before).includes(`tray status: Gateway: ${url}\n`), 10000);
  assert.equal((await fetch(`${url}/v1/models`)).status, 401, "a token needed again");
  console.log("  ok a token issued on the Clients page is scoped (403 model_not_allowed), works, and is refused (401 token_revoked) once revoked there");
}

/** The Dashboard's gateway URL, once the gateway is up; its /health must answer. */
async function checkGateway(s, dataDir) {
  const url = await waitFor("the Dashboard to show the gateway's URL", async () => {
    if (await s.exists("#dash-gateway-error")) throw new Error(`gateway failed: ${await s.text("#dash-gateway-error")}`);
    return (await s.exists("#dash-gateway-url")) && (await s.text("#dash-gateway-url"));
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, "the gateway listens on loopback");
  const res = await fetch(`${url}/health`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ok" });
  await waitFor(
    "the tray status line in the log",
    async () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8").includes(`tray status: Gateway: ${url}`),
    10000,
  );
  console.log(`  ok the Dashboard shows the gateway at ${url}, /health answers, the tray says so`);
  return url;
}

async function addProvider(s, dataDir, fake) {
  await s.goto("providers");
  await s.screenshot("providers-empty.png");
  await s.click("#prov-add");
  await s.type("#prov-name", "fake");
  await s.select("#prov-kind", "openai-compatible");
  await s.type("#prov-base-url", `http://127.0.0.1:${fake.port}`);
  await s.type("#prov-key", PLANTED);
  await s.click("#prov-save");
  await waitFor("the provider in the list", () => s.exists('tr[data-provider="fake"]'));
  assert.equal(await s.text('tr[data-provider="fake"] [data-cell="key"]'), `••••${PLANTED.slice(-4)}`);
  assert.equal(await s.exec(`return document.querySelector("#prov-key") === null`), true, "the form (and the typed key) is gone");
  const stored = cli(dataDir, "provider", "list");
  assert.equal(stored.length, 1);
  assert.equal(stored[0].base_url, `http://127.0.0.1:${fake.port}`);
  assert.equal(stored[0].has_key, true);

  await s.click('tr[data-provider="fake"] [data-action="test"]');
  const result = await waitFor("the connection test's result", async () => (await s.exists("#prov-test-result-fake")) && s.text("#prov-test-result-fake"));
  assert.match(result, /Connection works/, result);
  assert.match(result, /2 models/, result);
  assert.ok(fake.seen.some((r) => r.auth === `Bearer ${PLANTED}`), "the fake server received the key");
  await waitFor("the last test in the list", async () => (await s.text('tr[data-provider="fake"] [data-cell="last-test"]')).includes("ok"));
  await s.screenshot("providers.png");
  console.log("  ok added a provider through the UI; its key reached the fake server; the list shows only the hint");
}

async function addRules(s, dataDir) {
  await s.goto("routing");
  const add = async (pattern, match, target, fallback) => {
    const before = (await ruleIdsInUi(s)).length;
    await s.click("#rule-add");
    await s.type("#rule-pattern", pattern);
    await s.select("#rule-match", match);
    await s.select("#rule-target", target);
    if (fallback) await s.select("#rule-fallback", fallback);
    await s.click("#rule-save");
    await waitFor(`rule ${pattern} in the list`, async () => (await ruleIdsInUi(s)).length === before + 1);
  };
  await add("alpha-", "prefix", "fake");
  await add("beta", "exact", "local");
  await add("gamma-.*", "regex", "fake", "local");
  const [a, b, c] = await ruleIdsInUi(s);
  assert.deepEqual(cli(dataDir, "rule", "list").map((r) => r.id), [a, b, c], "the CLI sees the rules in the order they were added");

  // Keyboard drag and drop: focus the last rule's handle, pick it up, move it up twice, drop.
  await s.exec(`document.querySelector('#rule-list > li[data-rule-id="${c}"] [role="button"]').focus();`);
  await s.keys(" ", "\uE013", "\uE013", " ");
  await waitFor("the UI to show the new order", async () => JSON.stringify(await ruleIdsInUi(s)) === JSON.stringify([c, a, b]));
  const stored = await waitFor("the new order to be stored", async () => {
    const list = cli(dataDir, "rule", "list");
    return JSON.stringify(list.map((r) => r.id)) === JSON.stringify([c, a, b]) && list;
  }, 10000);
  assert.deepEqual(stored.map((r) => r.position), [0, 1, 2], "positions stay a dense permutation");
  assert.deepEqual(stored.map((r) => r.pattern), ["gamma-.*", "alpha-", "beta"]);
  console.log(`  ok three rules added and reordered by keyboard to [${[c, a, b]}]; the CLI agrees`);

  // Pointer drag and drop: press on the third rule's handle, move above the first, release.
  const handle = (id) => `#rule-list > li[data-rule-id="${id}"] .handle`;
  await s.drag(handle(b), `#rule-list > li[data-rule-id="${c}"]`, 8);
  await waitFor("the UI to show the dragged order", async () => JSON.stringify(await ruleIdsInUi(s)) === JSON.stringify([b, c, a]), 10000);
  await waitFor("the dragged order to be stored", async () => JSON.stringify(cli(dataDir, "rule", "list").map((r) => r.id)) === JSON.stringify([b, c, a]), 10000);
  console.log(`  ok rule ${b} dragged by pointer from position 2 above rule ${c}: [${[b, c, a]}]; the CLI agrees`);

  // Another process changes the rules while this list is shown: the drag's order is
  // refused (rule_order_conflict), the page says so and reloads the list.
  const other = cli(dataDir, "rule", "add", "--pattern", "delta", "--match", "exact", "--to", "local");
  assert.equal((await ruleIdsInUi(s)).length, 3, "the page has not seen the new rule yet");
  await s.drag(handle(a), `#rule-list > li[data-rule-id="${b}"]`, 8);
  await waitFor("the conflict notice", () => s.exists("#rule-notice"), 10000);
  await waitFor("the list to be reloaded with the other process's rule", async () => (await ruleIdsInUi(s)).includes(other.id), 10000);
  assert.deepEqual(cli(dataDir, "rule", "list").map((r) => r.id), [b, c, a, other.id], "the refused order changed nothing");
  await s.screenshot("routing-conflict.png");
  cli(dataDir, "rule", "remove", String(other.id));
  await s.goto("pool");
  await s.goto("routing");
  await waitFor("the list without it", async () => JSON.stringify(await ruleIdsInUi(s)) === JSON.stringify([b, c, a]));
  console.log("  ok a drag while another process added a rule is refused as a conflict, shown, and the list reloaded");

  await s.type("#rule-test-input", "gamma-7");
  await s.click("#rule-test-run");
  const t = await waitFor("the rule test's result", async () => (await s.exists("#rule-test-result")) && s.text("#rule-test-result"));
  assert.match(t, new RegExp(`Rule #${c} at position 1`), t);
  assert.match(t, /fake/, t);
  await s.screenshot("routing.png");
  console.log("  ok the rule tester names the matching rule and its position");
  const order = cli(dataDir, "rule", "list").map((r) => r.pattern);
  assert.deepEqual(order, ["beta", "gamma-.*", "alpha-"], "the order after the pointer drag");
  return order;
}

async function providerInUse(s) {
  await s.goto("providers");
  await s.click('tr[data-provider="fake"] [data-action="remove"]');
  await waitFor("the confirmation", () => s.exists("#prov-remove-dialog"));
  await s.click("#prov-remove-dialog-confirm");
  const code = await waitFor("the refusal", async () => (await s.exists("#prov-remove-error")) && s.exec(`return document.querySelector("#prov-remove-error").dataset.code`));
  assert.equal(code, "provider_in_use");
  assert.match(await s.text("#prov-remove-error"), /rule/);
  await s.screenshot("providers-in-use.png");
  await s.keys("\uE00C"); // Escape cancels
  await waitFor("the dialog to close", async () => !(await s.exists("#prov-remove-dialog")));
  assert.ok(await s.exists('tr[data-provider="fake"]'), "the provider is still there");
  console.log("  ok removing a provider that rules use is refused with provider_in_use and shown");
}

async function pool(s, dataDir) {
  await s.goto("pool");
  await waitFor("the pool settings", () => s.exists("#pool-form"));
  await s.type("#pool-limit-value", "50");
  await waitFor("the budget preview", async () => (await s.exists("#pool-preview")) && (await s.text("#pool-preview")).includes("Budget"));
  await s.click("#pool-save");
  await waitFor("the saved limit", async () => (await s.text("#pool-limit")) === "50% of RAM");
  assert.equal(cli(dataDir, "pool", "show").limit, "50%");
  await s.screenshot("pool.png");
  console.log("  ok the pool limit set in the UI is what `pool show` reports");
}

/** A model loaded by a request through the gateway shows on the Pool page and unloads from there. */
async function poolLoaded(s, dataDir, url) {
  cli(dataDir, "models", "import", FIXTURE, "--name", "e2e-smol");
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(TOKENS.default) },
    body: JSON.stringify({ model: "e2e-smol", messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0 }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get("x-switchyard-backend"), "local");
  await s.goto("models");
  await s.goto("pool");
  await waitFor("the loaded model on the Pool page", () => s.exists('#pool-loaded li[data-model="e2e-smol"]'), 30000);
  const shown = cli(dataDir, "pool", "show");
  assert.deepEqual(shown.loaded.map((m) => m.name), ["e2e-smol"], "the CLI asks the app's pool through its socket");
  assert.ok(shown.loaded[0].bytes_measured > 0);
  await s.screenshot("pool-loaded.png");
  const log = () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8");
  await waitFor("the tray's model line", async () => /tray models: Loaded: e2e-smol \(\d+ MB\)/.test(log()), 10000);
  const before = log().length;
  await s.click('#pool-loaded li[data-model="e2e-smol"] button.unload');
  await waitFor("the model to be unloaded", () => s.exists("#pool-loaded-none"), 30000);
  assert.deepEqual(cli(dataDir, "pool", "show").loaded, []);
  await waitFor("the tray to say nothing is loaded", async () => log().slice(before).includes("tray models: No model loaded"), 10000);
  console.log("  ok a model loaded by a gateway request shows on the Pool page, in `pool show` and in the tray menu, and unloads from it");
}

/** The Models page: load, pin, unpin and unload a model; pull one from the (fake) Hub with progress, cancel, resume. */
async function modelsPool(s, dataDir, hub) {
  await s.goto("models");
  const row = 'tr[data-model="e2e-smol"]';
  await waitFor("the imported model on the Models page", () => s.exists(`${row} button[data-action="load"]`));
  await s.click(`${row} button[data-action="load"]`);
  await waitFor("the loaded badge", () => s.exists(`${row} .badge.ok`), 60000);
  assert.deepEqual(cli(dataDir, "pool", "show").loaded.map((m) => m.name), ["e2e-smol"]);
  await s.click(`${row} button[data-action="pin"]`);
  await waitFor("the pinned badge", () => s.exists(`${row} .badge.accent`));
  assert.equal(cli(dataDir, "models", "list").find((m) => m.name === "e2e-smol").pinned, true);
  await s.click(`${row} button[data-action="pin"]`);
  await waitFor("the pinned badge to go", async () => !(await s.exists(`${row} .badge.accent`)));
  await s.click(`${row} button[data-action="unload"]`);
  await waitFor("the loaded badge to go", async () => !(await s.exists(`${row} .badge.ok`)), 30000);
  assert.deepEqual(cli(dataDir, "pool", "show").loaded, []);
  console.log("  ok the Models page loads, pins, unpins and unloads a model (the CLI agrees)");

  await s.type("#models-pull-repo", "acme/smol-gguf");
  await s.click("#models-pull");
  const line = await waitFor("pull progress", async () => {
    const t = (await s.exists("#models-pull-progress")) && (await s.text("#models-pull-progress"));
    return t && / of /.test(t) ? t : null;
  });
  await s.screenshot("models-pull-progress.png");
  await s.click("#models-pull-cancel");
  const err = await waitFor("the cancelled pull", async () => (await s.exists("#models-pull-error")) && s.text("#models-pull-error"));
  assert.match(err, /error\[cancelled\]/);
  await s.type("#models-pull-repo", "acme/smol-gguf");
  await s.click("#models-pull");
  const notice = await waitFor(
    "the finished pull",
    async () => {
      const t = (await s.exists("#models-notice")) && (await s.text("#models-notice"));
      return t && t.startsWith("Pulled") ? t : null;
    },
    120000,
  );
  assert.match(notice, /Pulled acme\/smol-gguf .*Ready as acme\/smol-gguf\/smol\.Q4_1/);
  assert.equal(hub.cdn.length, 2, "one cancelled download and one that continued it");
  assert.ok(hub.cdn[1] > 0, `the second download resumed with a Range (from ${hub.cdn[1]})`);
  await waitFor("the pulled model in the list", () => s.exists('tr[data-model="acme/smol-gguf/smol.Q4_1"]'));
  assert.ok(cli(dataDir, "models", "list").some((m) => m.name === "acme/smol-gguf/smol.Q4_1" && m.source === "hf-cache"));
  await s.screenshot("models-pulled.png");
  console.log(`  ok a pull from the Hub showed progress (${line.trim().split("\n").pop()}), was cancelled, and resumed from byte ${hub.cdn[1]}`);
}

async function models(s) {
  await s.goto("models");
  await s.type("#models-path", "/nonexistent/switchyard-e2e/model.gguf");
  await s.click("#models-import");
  const err = await waitFor("the import error", async () => (await s.exists("#models-import-error")) && s.text("#models-import-error"));
  assert.match(err, /error\[[a-z_]+\]/, "errors show their code");
  await s.screenshot("models.png");
  console.log(`  ok a bad model path shows a coded error (${err.match(/error\[[a-z_]+\]/)[0]})`);
}

async function security(s, dataDir) {
  await s.goto("security");
  await waitFor("the vault status", () => s.exists("#sec-fingerprint"));
  const before = await s.text("#sec-fingerprint");
  assert.match(before, /^[0-9a-f]{16}$/, "a root exists since the key was stored");
  assert.equal(before, cli(dataDir, "keys", "status").fingerprint);
  await s.click("#sec-rotate-root");
  await waitFor("the confirmation", () => s.exists("#sec-root-dialog"));
  assert.equal(await s.text("#sec-root-dialog-fp"), before, "the confirmation shows the current fingerprint");
  await s.screenshot("security-confirm.png");
  await s.click("#sec-root-dialog-confirm");
  await waitFor("the rotation's result", () => s.exists("#sec-root-result"));
  assert.equal(await s.text("#sec-root-old"), before);
  const after = await s.text("#sec-root-new");
  assert.notEqual(after, before);
  assert.equal(cli(dataDir, "keys", "status").fingerprint, after);
  await waitFor("the new fingerprint on the page", async () => (await s.text("#sec-fingerprint")) === after);
  await s.screenshot("security.png");
  console.log(`  ok the root secret was replaced after confirming ${before}; now ${after}`);
}

/** Security page: the backup reminder, an export, and a restore with its preview first. */
async function backupRestore(s, dataDir) {
  await s.goto("security");
  await waitFor("the backup reminder", () => s.exists("#sec-backup-reminder"));
  const file = join(dataDir, "e2e.backup");
  const pass = "e2e passphrase, long enough";
  await s.type("#sec-backup-path", file);
  await s.type("#sec-backup-pass", pass);
  await s.type("#sec-backup-pass2", pass);
  await s.click("#sec-backup-export");
  const wrote = await waitFor("the export", async () => (await s.exists("#sec-backup-exported")) && s.text("#sec-backup-exported"), 60000);
  assert.match(wrote, /1 providers \(1 keys\), 3 rules/);
  assert.equal(statSync(file).mode & 0o777, 0o600, "the backup is private to its owner");
  await waitFor("the reminder to go", async () => !(await s.exists("#sec-backup-reminder")));
  // A provider added after the backup is what the restore takes away.
  cli(dataDir, "provider", "add", "after-backup", "--kind", "openai", "--no-key");
  await s.type("#sec-restore-path", file);
  await s.type("#sec-restore-pass", pass);
  await s.click("#sec-backup-preview");
  const diff = await waitFor("the preview", async () => (await s.exists("#sec-backup-diff")) && s.text("#sec-diff-providers"), 60000);
  assert.match(diff, /1 removed \(after-backup\)/);
  assert.ok(cli(dataDir, "provider", "list").some((p) => p.name === "after-backup"), "the preview wrote nothing");
  await s.screenshot("security-backup-preview.png");
  await s.click("#sec-backup-apply");
  await waitFor("the restore", () => s.exists("#sec-backup-restored"), 60000);
  assert.deepEqual(cli(dataDir, "provider", "list").map((p) => p.name), ["fake"]);
  console.log("  ok a backup exported on the Security page (0600), previewed and restored (the provider added since is gone)");
}

/** Every read command, called as the UI calls them: none may carry the planted key. */
async function noSecretInResponses(s, dataDir, fake) {
  const calls = [
    ["app_info"], ["gateway_status"], ["provider_list"], ["provider_test", { name: "fake" }], ["rule_list"],
    ["rule_test", { model: "gamma-7" }], ["rule_test", { model: "nothing-matches" }], ["pool_show"], ["keys_status"],
    ["models_list"], ["token_list"], ["token_auth"], ["token_first_run"],
  ];
  const seenBefore = fake.seen.length;
  let all = "";
  for (const [cmd, a] of calls) {
    const r = await s.invoke(cmd, a ?? {});
    assert.ok("ok" in r, `${cmd} failed: ${JSON.stringify(r)}`);
    all += JSON.stringify(r.ok);
  }
  assert.ok(fake.seen.length > seenBefore, "provider_test reached the fake server after the root rotation");
  assert.equal(fake.seen.at(-1).auth, `Bearer ${PLANTED}`, "the key still decrypts after the root rotation");
  assert.ok(!all.includes(PLANTED) && !all.includes("PLANTED"), "a command response carries the planted key");
  assert.ok(all.includes(PLANTED.slice(-4)), "the responses were read (the hint is there)");
  const leaks = filesContaining(dataDir, PLANTED);
  assert.deepEqual(leaks, [], "files of the data dir holding the planted key in plaintext");
  for (const t of [TOKENS.default, TOKENS.e2e]) {
    assert.ok(!all.includes(t), "a command response carries a client token after its birth");
    assert.deepEqual(filesContaining(dataDir, t.slice(3)), [], "files of the data dir holding a client token");
  }
  console.log(`  ok ${calls.length} read commands (${all.length} bytes) and every file of the data dir are free of the planted key`);
}

/**
 * Stop and start the gateway from the Dashboard (the tray's Start / Stop item calls the
 * same code): /health stops and starts answering, the tray's line and icon follow.
 * Returns the gateway's URL after the restart (the port is picked anew).
 */
async function startStop(s, dataDir, url) {
  const log = () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8");
  await s.goto("dashboard");
  await sleep(2600); // past the time a finished request keeps the icon busy
  let from = log().length;
  const asked = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(TOKENS.default) },
    body: JSON.stringify({ model: "e2e-no-such-model", messages: [{ role: "user", content: "Hi" }] }),
  });
  assert.equal(asked.status, 404);
  await waitFor("the tray icon to show a request being served", async () => log().slice(from).includes("tray icon: serving"), 5000);
  from = log().length;
  await s.click("#dash-gateway-toggle");
  await waitFor("the Dashboard to show the gateway stopped", () => s.exists("#dash-gateway-stopped"));
  await assert.rejects(fetch(`${url}/health`), "nothing answers on the gateway's port once stopped");
  await waitFor("the tray to say the gateway is stopped", async () => log().slice(from).includes("tray status: Gateway: stopped\n"), 5000);
  await waitFor("the tray icon to show it", async () => log().slice(from).includes("tray icon: stopped"), 5000);
  await s.screenshot("dashboard-stopped.png");
  from = log().length;
  await s.click("#dash-gateway-toggle");
  const again = await waitFor("the Dashboard to show the gateway's URL again", async () => (await s.exists("#dash-gateway-url")) && s.text("#dash-gateway-url"));
  const health = await fetch(`${again}/health`);
  assert.equal(health.status, 200);
  await waitFor("the tray to show the URL again", async () => log().slice(from).includes(`tray status: Gateway: ${again}`), 5000);
  await waitFor("the tray icon to go back to idle", async () => log().slice(from).includes("tray icon: idle"), 5000);
  console.log(`  ok the gateway stopped from the Dashboard (/health refused, tray "Gateway: stopped") and started again at ${again}`);
  return again;
}

/**
 * A second app on a busy port, in a dark desktop with a home of its own: the busy port
 * is shown on the Dashboard and in the tray while the app runs on; the window follows
 * the system's dark theme; the language switch turns it to Japanese and back (this
 * machine has no Japanese locale to start it in; `detectLocale` is unit-tested); launch
 * at login writes and removes the desktop's autostart entry.
 */
async function portInUse(busyPort) {
  const dataDir = mkdtempSync(join(tmpdir(), "switchyard-e2e-busy-"));
  const home = mkdtempSync(join(tmpdir(), "switchyard-e2e-home-"));
  const env = { ...APP_ENV, SWITCHYARD_GATEWAY_PORT: String(busyPort), GTK_THEME: "Adwaita:dark", HOME: home };
  const driver = await startDriver(PORT + 2, env);
  try {
    const s = await Session.start(dataDir);
    const code = await waitFor("the Dashboard to show the busy port", async () =>
      (await s.exists("#dash-gateway-error")) && s.exec(`return document.querySelector("#dash-gateway-error").dataset.code`),
    );
    assert.equal(code, "port_in_use");
    await waitFor(
      "the tray status line in the log",
      async () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8").includes(`tray status: Gateway: port ${busyPort} in use`),
      10000,
    );
    await waitFor("the tray icon to show the error", async () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8").includes("tray icon: error"), 5000);
    assert.ok(await s.exists("#dash-facts"), "the rest of the app works without a gateway");
    console.log(`  ok a busy port ${busyPort} shows port_in_use on the Dashboard and in the tray (text and icon); the app runs on`);

    // The system's dark theme; the language switch.
    const look = await s.exec(`return [matchMedia("(prefers-color-scheme: dark)").matches, getComputedStyle(document.documentElement).backgroundColor, document.documentElement.lang]`);
    assert.deepEqual(look, [true, "rgb(30, 30, 32)", "en"], "dark colours from the system, English from its C locale");
    await s.screenshot("dashboard-dark.png");
    await s.select("#locale-select", "ja");
    await waitFor("the Japanese navigation", async () => (await s.text("#nav-dashboard")) === "ダッシュボード");
    assert.equal(await s.text("main h1"), "ダッシュボード");
    assert.equal(await s.exec(`return document.documentElement.lang`), "ja");
    assert.deepEqual(await s.invoke("prefs_get", { key: "locale" }), { ok: "ja" }, "the choice is saved");
    const log = () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8");
    await waitFor("the tray menu in Japanese", async () => log().includes(`tray status: ゲートウェイ: ポート ${busyPort} は使用中`), 5000);
    await s.screenshot("dashboard-dark-ja.png");
    const from = log().length;
    await s.select("#locale-select", "en");
    await waitFor("the English navigation", async () => (await s.text("#nav-dashboard")) === "Dashboard");
    await waitFor("the tray menu in English again", async () => log().slice(from).includes(`tray status: Gateway: port ${busyPort} in use`), 5000);
    console.log("  ok the window follows the system's dark theme; the language switch turns the window and the tray menu to Japanese (saved) and back");

    // Launch at login: off by default; on writes the autostart entry (starting in the background), off removes it.
    const entry = join(home, ".config", "autostart", "Switchyard.desktop");
    await waitFor("the launch-at-login switch", () => s.exists("#autostart-toggle"));
    assert.equal(await s.exec(`return document.querySelector("#autostart-toggle").checked`), false, "off on a new install");
    await s.click("#autostart-toggle");
    const written = await waitFor("the autostart entry", async () => statSync(entry, { throwIfNoEntry: false }) && readFileSync(entry, "utf8"), 5000);
    assert.match(written, /^Exec=.*switchyard.* --background$/m, written);
    assert.equal(await s.exec(`return document.querySelector("#autostart-toggle").checked`), true);
    await s.click("#autostart-toggle");
    await waitFor("the autostart entry to go", async () => !statSync(entry, { throwIfNoEntry: false }), 5000);
    assert.ok(!(await s.exists("#autostart-error")), "no error shown");
    console.log("  ok launch at login writes the autostart entry (Exec … --background) and removes it");
    await s.end();
  } finally {
    driver.kill("SIGTERM");
    await sleep(300);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * The tray menu itself, as a person uses it: a system tray (trayer, an XEmbed tray) on
 * the Xvfb screen, the app started in the background (no window), its icon clicked with
 * the pointer and the menu driven by the keyboard (xdotool). Stop Gateway closes the
 * port, Start Gateway opens it again; the menu is photographed in both states.
 */
async function trayMenu() {
  const dataDir = mkdtempSync(join(tmpdir(), "switchyard-e2e-tray-"));
  const x = (...a) => execFileSync("xdotool", a, { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  const log = () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8");
  const tray = spawn("trayer", ["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32", "--SetDockType", "true", "--transparent", "false", "--tint", "0xdddddd"], { stdio: "ignore" });
  const app = spawn(APP, ["--data-dir", dataDir, "--background"], { stdio: "ignore", env: { ...process.env, ...APP_ENV } });
  const shot = (name) => {
    const file = join(OUT, name);
    execFileSync("import", ["-window", "root", "-crop", "520x220+760+0", "+repage", file]);
    console.log(`  screenshot ${file}`);
  };
  /** Open the menu by clicking the icon (the tray panel holds only it), then pick the `n`th enabled item. */
  const pick = async (n, screenshot) => {
    const [px, py, w, h] = x("search", "--name", "^panel$", "getwindowgeometry", "--shell").match(/\d+/g).slice(1, 5).map(Number);
    x("mousemove", String(px + Math.floor(w / 2)), String(py + Math.floor(h / 2)), "click", "1");
    await sleep(800);
    if (screenshot) shot(screenshot);
    for (let i = 0; i < n; i++) x("key", "Down");
    x("key", "Return");
  };
  /**
   * Mapped windows titled Switchyard as large as the main window (xdotool's search is
   * case-blind and also finds the tray icon's small `switchyard` window; it exits 1
   * when it finds none).
   */
  const shownWindows = () => {
    let ids = [];
    try {
      ids = x("search", "--onlyvisible", "--name", "^Switchyard$").split(/\s+/);
    } catch {
      return "";
    }
    return ids.filter((id) => Number(x("getwindowgeometry", "--shell", id).match(/WIDTH=(\d+)/)?.[1] ?? 0) >= 400).join(" ");
  };
  try {
    const url = await waitFor("the gateway's URL in the tray line", async () => log().match(/tray status: Gateway: (http:\/\/127\.0\.0\.1:\d+)\n/)?.[1], 20000);
    assert.equal((await fetch(`${url}/health`)).status, 200);
    assert.equal(shownWindows(), "", "a --background start opens no window");
    // Open, Gateway (copies the URL), Stop Gateway: the third enabled item.
    let from = log().length;
    await pick(3, "tray-menu.png");
    await waitFor("the tray to say the gateway is stopped", async () => log().slice(from).includes("tray status: Gateway: stopped\n"), 10000);
    await assert.rejects(fetch(`${url}/health`), "nothing answers once stopped from the tray");
    await waitFor("the faint icon", async () => log().slice(from).includes("tray icon: stopped"), 5000);
    // Open, Start Gateway: the status line is disabled while nothing listens.
    from = log().length;
    await pick(2, "tray-menu-stopped.png");
    const again = await waitFor("the URL again", async () => log().slice(from).match(/tray status: Gateway: (http:\/\/127\.0\.0\.1:\d+)\n/)?.[1], 10000);
    assert.equal((await fetch(`${again}/health`)).status, 200);
    console.log(`  ok the tray menu's Stop Gateway closed ${url} and Start Gateway opened ${again}; a --background start showed no window`);
  } finally {
    app.kill("SIGTERM");
    tray.kill("SIGTERM");
    await sleep(500);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "switchyard-e2e-"));
  console.log(`e2e: app ${APP}\ne2e: data dir ${dataDir}`);

  // What the real core says, asked through the CLI of the same binary.
  const doctor = cli(dataDir, "doctor");
  const dbCheck = doctor.checks.find((c) => c.name === "database");
  const expected = {
    version: doctor.version,
    dataDir,
    schema: dbCheck.data.schema_version,
  };

  const fake = await fakeOpenAI();
  const hub = await fakeHub();
  // The app and the CLI pull from the fake Hub into a cache of this run's own.
  Object.assign(APP_ENV, { HF_ENDPOINT: hub.url, HF_HOME: join(dataDir, "hf-home") });
  const driver = await startDriver(PORT, APP_ENV);
  let failed = false;
  try {
    // 1. Dashboard shows the real core's data and the gateway; every page is reachable.
    let s = await Session.start(dataDir);
    const facts = await dashboardFacts(s);
    assert.deepEqual(facts, expected, "Dashboard facts equal what the core reports");
    console.log(`  ok dashboard shows version ${facts.version}, schema ${facts.schema}`);
    const gatewayUrl = await checkGateway(s, dataDir);
    await firstToken(s, gatewayUrl);
    await waitFor("the getting-started checklist", () => s.exists("#dash-checklist"));
    // A new install has every step to do but the one the request above just did.
    const stepsNow = () =>
      s.exec(`return JSON.stringify([...document.querySelectorAll("#dash-checklist li")].map((li) => [li.dataset.step, li.dataset.done]));`);
    const want = JSON.stringify([["backend", "false"], ["rule", "false"], ["client", "true"], ["backup", "false"]]);
    await waitFor(`the checklist to read ${want}`, async () => (await stepsNow()) === want, 5000);
    await s.screenshot("dashboard.png");
    for (const [i, id] of PAGES.entries()) {
      await s.goto(id);
      assert.equal(await s.text(`main#page-${id} h1`), LABELS[i]);
      assert.equal(await s.exec(`return document.querySelector("#nav-${id}").getAttribute("aria-current")`), "page");
    }
    console.log(`  ok clicked through ${PAGES.length} pages`);
    await clients(s, dataDir, gatewayUrl);

    // 2. Settings through the UI, checked through the CLI; secrets stay secret.
    await addProvider(s, dataDir, fake);
    const ruleOrder = await addRules(s, dataDir);
    await providerInUse(s);
    await pool(s, dataDir);
    await poolLoaded(s, dataDir, gatewayUrl);
    await modelsPool(s, dataDir, hub);
    await models(s);
    await security(s, dataDir);
    await backupRestore(s, dataDir);
    await noSecretInResponses(s, dataDir, fake);
    await startStop(s, dataDir, gatewayUrl);

    await s.goto("pool");
    // Where the user leaves the window: its position and size come back after a restart.
    await wd("POST", `/session/${s.id}/window/rect`, { x: 64, y: 48, width: 1010, height: 700 });
    const placed = await wd("GET", `/session/${s.id}/window/rect`);
    assert.deepEqual([placed.x, placed.y], [64, 48], "the window moved");
    await sleep(600); // the store saves with a 200 ms debounce

    // 3. A second launch hands over to the running instance and exits.
    const second = spawn(APP, ["--data-dir", dataDir], { stdio: "ignore", env: { ...process.env, ...APP_ENV } });
    const code = await new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error("the second instance did not exit within 20 s")), 20000);
      second.on("exit", (c) => (clearTimeout(t), res(c)));
    });
    assert.equal(code, 0, "second instance exits cleanly");
    await waitFor(
      "the first instance to log the hand-over",
      async () => readFileSync(join(dataDir, "logs", "desktop.log"), "utf8").includes("second instance launched"),
      10000,
    );
    assert.ok(await s.exists("main#page-pool"), "the first instance keeps running");
    console.log("  ok a second launch focused the first instance and exited");
    await s.end();

    // 4. The last page is restored (prefs_get / prefs_set, ui-prefs.json) after a restart.
    s = await Session.start(dataDir);
    await waitFor("the app to reopen on the last page", () => s.exists("main#page-pool"), 30000);
    const rect = await wd("GET", `/session/${s.id}/window/rect`);
    assert.deepEqual([rect.x, rect.y, rect.width, rect.height], [placed.x, placed.y, placed.width, placed.height], "the window's position and size after a restart");
    assert.equal((await s.invoke("token_first_run")).ok, null, "the first-run token is not issued or shown again");
    await s.screenshot("restart-last-page.png");
    console.log(`  ok the last page and the window's place (${placed.x},${placed.y} ${placed.width}×${placed.height}) survived a restart`);
    // The backup restored above gave the rules new ids: the order is checked by pattern.
    const stored = cli(dataDir, "rule", "list");
    assert.deepEqual(stored.map((r) => r.pattern), ruleOrder, "the dragged order is stored");
    await s.goto("routing");
    await waitFor("the rules in their dragged order after the restart", async () => JSON.stringify(await ruleIdsInUi(s)) === JSON.stringify(stored.map((r) => r.id)));
    console.log(`  ok the dragged rule order [${ruleOrder}] survived the restart (UI and CLI)`);
    await s.click("#nav-dashboard");
    await dashboardFacts(s);
    // Provider, rules, a tool's request with a token, a backup: the checklist is done and gone.
    await waitFor("the Dashboard's data", () => s.exists("#dash-client-setup"));
    await sleep(1000);
    assert.ok(!(await s.exists("#dash-checklist")), "the checklist is gone once every step is done");
    await s.screenshot("dashboard-final.png");
    await s.end();
    assert.deepEqual(filesContaining(dataDir, PLANTED), [], "no file holds the planted key after the app ran");
    driver.kill("SIGTERM");
    await sleep(300);

    // 5. A gateway port that is taken: shown on the Dashboard and in the tray; the app runs on.
    await portInUse(fake.port);
    await trayMenu();
    console.log("e2e: all checks passed");
  } catch (e) {
    failed = true;
    console.error(`e2e FAILED: ${e.stack ?? e}`);
    if (current) await current.screenshot("failure.png").catch(() => {});
    console.error("---- tauri-driver / app log (tail) ----\n" + driverLog.split("\n").slice(-40).join("\n"));
  } finally {
    driver.kill("SIGTERM");
    fake.server.close();
    hub.server.close();
    await sleep(300);
    rmSync(dataDir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main();
