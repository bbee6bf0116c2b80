// End-to-end test of the real desktop app: starts `switchyard` (built with embedded
// assets) through tauri-driver + WebKitWebDriver, clicks through the navigation,
// checks that the Dashboard shows what the real core reports, that the last page
// survives a restart (tauri-plugin-store) and that a second launch hands over to the
// first instance. Screenshots go to target/e2e/.
//
// Run it through scripts/e2e.sh (it provides Xvfb, a D-Bus session and tauri-driver):
//   node ui/e2e/run.mjs --app target/debug/switchyard --driver .tools/cargo/bin/tauri-driver
//
// A minimal W3C WebDriver client is written here on purpose: a WebDriver library
// would add hundreds of packages for the dozen HTTP calls this needs.

import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
const BASE = `http://127.0.0.1:${PORT}`;
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

async function main() {
  mkdirSync(OUT, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "switchyard-e2e-"));
  console.log(`e2e: app ${APP}\ne2e: data dir ${dataDir}`);

  // What the real core says, asked through the CLI of the same binary.
  const doctor = JSON.parse(execFileSync(APP, ["--json", "--data-dir", dataDir, "doctor"]).toString());
  const dbCheck = doctor.checks.find((c) => c.name === "database");
  const expected = {
    version: doctor.version,
    dataDir,
    schema: dbCheck.data.schema_version,
  };

  const driver = spawn(DRIVER, ["--port", String(PORT), "--native-driver", NATIVE], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SWITCHYARD_LOG: "info" },
  });
  driver.stdout.on("data", (d) => (driverLog += d));
  driver.stderr.on("data", (d) => (driverLog += d));
  let failed = false;
  try {
    await waitFor("tauri-driver to listen", async () => (await fetch(BASE + "/status")).ok, 20000);

    // 1. Dashboard shows the real core's data; every page is reachable.
    let s = await Session.start(dataDir);
    const facts = await dashboardFacts(s);
    assert.deepEqual(facts, expected, "Dashboard facts equal what the core reports");
    console.log(`  ok dashboard shows version ${facts.version}, schema ${facts.schema}`);
    await s.screenshot("dashboard.png");
    for (const [i, id] of PAGES.entries()) {
      await s.click(`#nav-${id}`);
      await waitFor(`page ${id}`, () => s.exists(`main#page-${id}`));
      assert.equal(await s.text(`main#page-${id} h1`), LABELS[i]);
      assert.equal(await s.exec(`return document.querySelector("#nav-${id}").getAttribute("aria-current")`), "page");
    }
    console.log(`  ok clicked through ${PAGES.length} pages`);
    await s.click("#nav-pool");
    await waitFor("page pool", () => s.exists("main#page-pool"));
    await sleep(600); // the store saves with a 200 ms debounce

    // 2. A second launch hands over to the running instance and exits.
    const second = spawn(APP, ["--data-dir", dataDir], { stdio: "ignore", env: { ...process.env } });
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

    // 3. The last page is restored from tauri-plugin-store after a restart.
    s = await Session.start(dataDir);
    await waitFor("the app to reopen on the last page", () => s.exists("main#page-pool"), 30000);
    await s.screenshot("restart-last-page.png");
    console.log("  ok the last page survived a restart");
    await s.click("#nav-dashboard");
    await dashboardFacts(s);
    await s.screenshot("dashboard-final.png");
    await s.end();
    console.log("e2e: all checks passed");
  } catch (e) {
    failed = true;
    console.error(`e2e FAILED: ${e.stack ?? e}`);
    if (current) await current.screenshot("failure.png").catch(() => {});
    console.error("---- tauri-driver / app log (tail) ----\n" + driverLog.split("\n").slice(-40).join("\n"));
  } finally {
    driver.kill("SIGTERM");
    await sleep(300);
    rmSync(dataDir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main();
