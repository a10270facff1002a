/**
 * The status page of `fleet serve` in a real browser (Debian's chromium, driven by playwright-core)
 * on the real engines (target: docker). Two customers behind their edge proxy; `fleet watch` probes
 * every 2 s; `fleet serve` with FLEET_STATUS_TOKEN; each a separate process.
 *
 *  - /status without a session shows the sign-in form, nothing of the fleet;
 *  - signing in with the keyboard (label, Enter) sets an HttpOnly, Secure, SameSite=Strict session
 *    cookie; the page lists both customers up, with no CSP violation (its one style is allowed);
 *  - a customer frozen (docker pause): after reloads the page says it is down, in words, with the
 *    watcher's alert; its neighbour stays up; its logs are one click away and show its lines;
 *  - on a phone-sized viewport the page does not overflow sideways;
 *  - after signing out, /status and the logs page show the sign-in form again and no data.
 *
 * Screenshots go to .fleet/test-artifacts/status-page/ (desktop, down, logs, phone, signed out).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { fleet, killLeftovers, orphanedPlugins, show, startFleet, type LongRun } from "../support/cli";
import { customerContainer, engine, removeCustomers } from "../support/engine";
import { projectDir } from "../support/fixtures";
import { copyProject, editEnvironment, useEdge } from "../support/projectCopy";

const ENV = "staging";
const EDGE = "edge-sp";
const IDS = ["sp-a", "sp-b"];
const TOKEN = "sp-status-token-for-the-browser-test";
const CHROMIUM = process.env.HF_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = path.join(projectDir, ".fleet", "test-artifacts", "status-page");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The browser's globals, in functions that run in the page (this project's types have no DOM). */
interface PageGlobals {
  document: { cookie: string; activeElement: { textContent: string | null } | null;
    documentElement: { scrollWidth: number; clientWidth: number } };
  getComputedStyle(element: unknown): { backgroundColor: string };
}
// (functions given to evaluate run in the page: they name only its globals)
const background = (l: Locator) => l.evaluate((el) => (globalThis as unknown as PageGlobals).getComputedStyle(el).backgroundColor);

describe("the status page in a real browser (chromium, real engines)", { timeout: 20 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  const pluginsBefore = orphanedPlugins();
  let watcher: LongRun | undefined;
  let server: LongRun | undefined;
  let browser: Browser | undefined;
  let base = "";
  let paused: string | undefined;
  const cspErrors: string[] = [];

  const ok = async (args: string[]) => {
    const r = await fleet(root, args);
    assert.equal(r.code, 0, show(r));
    return r;
  };
  const logsOf = () => `--- fleet serve stderr\n${server?.stderr().slice(-3000)}\n--- fleet watch stderr\n${watcher?.stderr().slice(-3000)}`;

  async function newContext(viewport: { width: number; height: number }, mobile = false): Promise<BrowserContext> {
    const context = await browser!.newContext({ viewport, ...(mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}) });
    context.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text()); });
    return context;
  }

  /** A customer's row in the table of its environment (the alerts table has rows named by customer too). */
  const rowOf = (page: Page, id: string) => page.getByRole("region", { name: /^Environment staging:/ })
    .locator("tr", { has: page.locator("th[scope=row]", { hasText: new RegExp(`^${id}$`) }) });
  /** The state cell's badge of a customer's row. */
  const stateOf = (page: Page, id: string) => rowOf(page, id).locator("td").first().locator(".badge");

  /** Reloads the page until every customer's state is the one wanted (the watcher probes every 2 s). */
  async function reloadUntil(page: Page, want: Record<string, string>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen: Record<string, string> = {};
    for (;;) {
      await page.goto(`${base}/status`);
      seen = {};
      for (const id of Object.keys(want)) seen[id] = (await stateOf(page, id).textContent({ timeout: 5000 }).catch(() => null)) ?? "(no row)";
      if (Object.entries(want).every(([id, s]) => seen[id] === s)) return;
      if (Date.now() > deadline) throw new Error(`the page did not show ${JSON.stringify(want)}; it showed ${JSON.stringify(seen)}\n${logsOf()}`);
      await sleep(1000);
    }
  }

  async function signIn(page: Page): Promise<void> {
    await page.goto(`${base}/status`);
    assert.match(page.url(), /\/status\/login$/);
    // by the keyboard: the field found by its label, the form sent with Enter
    await page.getByLabel("Operator token").fill(TOKEN);
    await Promise.all([page.waitForURL(`${base}/status`), page.getByLabel("Operator token").press("Enter")]);
  }

  before(async () => {
    fs.rmSync(ARTIFACTS, { recursive: true, force: true });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await removeCustomers(IDS.map((id): [string, string] => [ENV, id]), [[ENV, EDGE]]);
    useEdge(root, ENV, EDGE, 19700, 19701);
    editEnvironment(root, ENV, (e) => {
      e.deploy.healthTimeoutSeconds = 60;
      e.watch = { intervalSeconds: 2, timeoutSeconds: 2 };
    });
    await ok(["up", ENV]);
    for (const id of IDS) await ok(["provision", id, "--env", ENV]);
    watcher = startFleet(root, ["watch", "--env", ENV, "--listen", "127.0.0.1:0"]);
    await watcher.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
    server = startFleet(root, ["serve", "--env", ENV, "--listen", "127.0.0.1:0", "--db", path.join(root, ".fleet", "webhooks", "queue.db")],
      { STRIPE_WEBHOOK_SECRET: "whsec_sp_browser_test", FLEET_STATUS_TOKEN: TOKEN });
    base = (await server.waitFor(/status page on (http:\/\/127\.0\.0\.1:\d+)\/status/))[1]!;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] });
  });

  after(async () => {
    if (paused) await engine.getContainer(paused).unpause().catch(() => {});
    await browser?.close().catch(() => {});
    for (const run of [server, watcher]) {
      if (run && run.child.exitCode === null) { process.kill(-run.child.pid!, "SIGKILL"); await run.exited; }
    }
    killLeftovers(pluginsBefore);
    await removeCustomers(IDS.map((id): [string, string] => [ENV, id]), [[ENV, EDGE]]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("without a session /status is the sign-in form and shows nothing of the fleet", async () => {
    const context = await newContext({ width: 1280, height: 900 });
    const page = await context.newPage();
    const res = await page.goto(`${base}/status`);
    assert.match(page.url(), /\/status\/login$/);
    assert.equal(res?.status(), 200);
    const text = await page.locator("body").innerText();
    for (const id of IDS) assert.ok(!text.includes(id), text);
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Fleet status");
    // a wrong token: the form again, its error announced and tied to the field
    await page.getByLabel("Operator token").fill("not-the-token-at-all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    assert.match(await page.getByRole("alert").textContent() ?? "", /not the operator token/);
    assert.equal(await page.getByLabel("Operator token").getAttribute("aria-invalid"), "true");
    assert.ok(!(await context.cookies()).some((c) => c.name === "hf_session"));
    await context.close();
  });

  it("signs in by the keyboard: the session cookie is HttpOnly, Secure, SameSite=Strict; both customers up; no CSP violation", async () => {
    const context = await newContext({ width: 1280, height: 900 });
    const page = await context.newPage();
    await signIn(page);
    const session = (await context.cookies()).find((c) => c.name === "hf_session");
    assert.ok(session, "a session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.secure, true);
    assert.equal(session.sameSite, "Strict");
    assert.equal(session.path, "/status");
    // scripts cannot read it (and the page has none)
    assert.equal(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie), "");
    assert.equal(await page.locator("script").count(), 0);
    await reloadUntil(page, { "sp-a": "up", "sp-b": "up" });
    for (const id of IDS) {
      const row = rowOf(page, id);
      assert.match(await row.innerText(), new RegExp(`${id}\\s+up\\s+\\S+`));
      assert.equal(await row.getByRole("link", { name: new RegExp(`^https://${id}\\.staging\\.localhost:19700`) }).count(), 1);
    }
    assert.match(await page.getByRole("table").first().locator("caption").innerText(), /Environment staging: 2 customers \(2 up\)/);
    // the first Tab reaches the skip link
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.textContent), "Skip to main content");
    // the page's style applies (the CSP allows it by its hash): the up badge is white on green
    assert.equal(await background(stateOf(page, "sp-a")), "rgb(26, 127, 55)");
    await page.screenshot({ path: path.join(ARTIFACTS, "status-desktop.png"), fullPage: true });
    assert.deepEqual(cspErrors, []);
    await context.close();
  });

  it("a frozen customer (docker pause): the page says down, in words, with the alert; its logs are one click away", async () => {
    const context = await newContext({ width: 1280, height: 900 });
    const page = await context.newPage();
    await signIn(page);
    const c = await customerContainer(ENV, "sp-a");
    assert.ok(c, "sp-a's container");
    await engine.getContainer(c.Id).pause();
    paused = c.Id;
    await reloadUntil(page, { "sp-a": "down", "sp-b": "up" });
    const row = rowOf(page, "sp-a");
    assert.match(await row.innerText(), /down since .*timeout/);
    assert.equal(await background(stateOf(page, "sp-a")), "rgb(180, 35, 24)");
    assert.match(await page.getByRole("table").first().locator("caption").innerText(), /2 customers \(1 up, 1 down\)/);
    // the watcher's alert: recent alerts list it (reloaded until it is there)
    const deadline = Date.now() + 30_000;
    while (!(await page.locator("#alerts").count())) {
      assert.ok(Date.now() < deadline, `no alerts table:\n${logsOf()}`);
      await sleep(1000);
      await page.reload();
    }
    const alerts = page.getByRole("region", { name: /Recent alerts/ });
    assert.match(await alerts.innerText(), /staging\s+sp-a\s+down/);
    await page.screenshot({ path: path.join(ARTIFACTS, "status-down.png"), fullPage: true });

    await Promise.all([page.waitForURL(/\/status\/logs\?/), page.getByRole("link", { name: "Logs of sp-a" }).click()]);
    assert.equal(new URL(page.url()).search, "?environment=staging&customer=sp-a");
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Logs of sp-a in staging");
    const lines = (await page.locator("pre").innerText()).split("\n").filter(Boolean);
    assert.ok(lines.length > 0, "log lines");
    for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z /, line);
    assert.match(await page.locator("main > p").nth(1).innerText(), /^The last \d+ lines?, oldest first\.$/);
    await page.screenshot({ path: path.join(ARTIFACTS, "logs.png"), fullPage: true });
    await Promise.all([page.waitForURL(`${base}/status`), page.getByRole("link", { name: "Back to the status page" }).first().click()]);
    assert.deepEqual(cspErrors, []);
    await context.close();
  });

  it("on a phone-sized viewport the page fits its width (tables scroll in their own region)", async () => {
    const context = await newContext({ width: 390, height: 844 }, true);
    const page = await context.newPage();
    await signIn(page);
    await page.getByRole("heading", { name: "Customers" }).waitFor();
    const overflow = await page.evaluate(() => {
      const root = (globalThis as unknown as PageGlobals).document.documentElement;
      return root.scrollWidth - root.clientWidth;
    });
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    assert.ok(await page.locator(".scroll").first().evaluate((el) => el.scrollWidth > el.clientWidth), "the table scrolls inside its region");
    await page.screenshot({ path: path.join(ARTIFACTS, "status-phone.png"), fullPage: true });
    await context.close();
  });

  it("after signing out, /status and the logs page show the sign-in form and no data", async () => {
    const context = await newContext({ width: 1280, height: 900 });
    const page = await context.newPage();
    await signIn(page);
    await Promise.all([page.waitForURL(/\/status\/login$/), page.getByRole("button", { name: "Sign out" }).click()]);
    assert.ok(!(await context.cookies()).some((c) => c.name === "hf_session"), "the session cookie is gone");
    for (const p of ["/status", "/status/logs?environment=staging&customer=sp-a"]) {
      await page.goto(`${base}${p}`);
      assert.match(page.url(), /\/status\/login$/, p);
      const text = await page.locator("body").innerText();
      for (const id of IDS) assert.ok(!text.includes(id), `${p}: ${text}`);
      assert.equal(await page.locator("pre").count(), 0);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, "signed-out.png"), fullPage: true });
    await context.close();

    await engine.getContainer(paused!).unpause();
    paused = undefined;
    const names = fs.readdirSync(ARTIFACTS).sort();
    assert.deepEqual(names, ["logs.png", "signed-out.png", "status-desktop.png", "status-down.png", "status-phone.png"]);
  });
});
