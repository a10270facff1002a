/**
 * The status page's routes inside the webhook server, over real HTTP on 127.0.0.1 with injected data
 * and logs (no engine): nothing is read or shown without a session; the sign-in flow with its CSRF
 * nonce and cookie flags; a wrong token, a forged or missing CSRF field, a token in the URL; sign-out;
 * the logs page escaped; too many failed sign-ins; the CSP and the other headers; FLEET_STATUS_TOKEN.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import type { Server } from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { statusPage } from "../../src/statusPage/pages";
import { createStatusRoutes, NotFound, type LogReader, type StatusRoutes, type StatusSnapshot } from "../../src/statusPage/server";
import { serveSettings } from "../../src/webhooks/config";
import { JobQueue } from "../../src/webhooks/queue";
import { createWebhookServer, listen } from "../../src/webhooks/server";
import { JOBS_TOKEN, SECRET } from "../webhooks/support";

const TOKEN = "status-token-0123456789abcdef";
const T = "2025-03-01T12:00:00.000Z";
const EVIL_LINE = `2025-03-01T12:00:01Z <script>alert("x")</script> & done`;

const SNAPSHOT: StatusSnapshot = {
  generatedAt: T,
  environments: [{
    name: "staging",
    customers: [
      { customer: "sp-up", plan: "starter", url: "https://sp-up.staging.localhost:19700", version: "1.0.0", lastUpdate: T,
        lastBackup: null, lastDrill: null, watcher: { status: "up", since: T, reason: "", updatedAt: T, stale: false } },
      { customer: "sp-down", plan: "starter", url: "https://sp-down.staging.localhost:19700", version: "1.0.0", lastUpdate: T,
        lastBackup: null, lastDrill: null, watcher: { status: "down", since: T, reason: "timeout through the proxy", updatedAt: T, stale: false } },
    ],
  }],
  alerts: [],
  jobs: [],
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-status-server-"));

/** Cookies a browser would keep from Set-Cookie headers (name=value only; Max-Age=0 removes). */
class Jar {
  readonly cookies = new Map<string, string>();
  take(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq);
      if (/max-age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(eq + 1));
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
}

describe("status page routes", () => {
  let queue: JobQueue;
  let server: Server;
  let routes: StatusRoutes;
  let base: string;
  let clock = Date.parse(T);
  let dataCalls = 0;
  let failData = false;
  const logCalls: [string, string, number][] = [];
  const logged: string[] = [];
  let logsResult: string[] | Error = [EVIL_LINE, "second line"];

  const logs: LogReader = async (environment, customer, lines) => {
    logCalls.push([environment, customer, lines]);
    if (logsResult instanceof Error) throw logsResult;
    return logsResult;
  };

  before(async () => {
    queue = JobQueue.open(path.join(dir, "queue.db"));
    routes = createStatusRoutes({
      token: TOKEN, logs, logLines: 50, now: () => clock, sessionSeconds: 3600, maxFailuresPerMinute: 5, log: (l) => logged.push(l),
      data: async () => {
        dataCalls++;
        if (failData) throw new Error("backend unreadable: /secret/path");
        return SNAPSHOT;
      },
    });
    server = createWebhookServer({ queue, environment: "staging", tier: "staging", secret: SECRET, jobsToken: JOBS_TOKEN, log: () => {}, status: routes });
    base = `http://127.0.0.1:${(await listen(server, "127.0.0.1", 0)).port}`;
  });

  after(() => {
    server.close();
    queue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    clock += 120_000; // a new minute: earlier failed sign-ins no longer count
    dataCalls = 0;
    logCalls.length = 0;
    failData = false;
    logsResult = [EVIL_LINE, "second line"];
  });

  const get = (p: string, jar?: Jar) => fetch(`${base}${p}`, { redirect: "manual", headers: jar ? { cookie: jar.header() } : {} });
  const post = (p: string, form: Record<string, string>, jar?: Jar) => fetch(`${base}${p}`, {
    method: "POST", redirect: "manual", body: new URLSearchParams(form).toString(),
    headers: { "content-type": "application/x-www-form-urlencoded", ...(jar ? { cookie: jar.header() } : {}) },
  });
  const field = (body: string, name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(body)?.[1];

  /** Opens the sign-in form: the jar gets its nonce cookie; returns the form's CSRF field. */
  async function openForm(jar: Jar): Promise<string> {
    const res = await get("/status/login", jar);
    assert.equal(res.status, 200);
    jar.take(res);
    const csrf = field(await res.text(), "csrf");
    assert.ok(csrf);
    return csrf;
  }

  async function signIn(): Promise<Jar> {
    const jar = new Jar();
    const csrf = await openForm(jar);
    const res = await post("/status/login", { csrf, token: TOKEN }, jar);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "/status");
    jar.take(res);
    assert.ok(jar.cookies.has("hf_session"));
    return jar;
  }

  it("without a session every route redirects to the sign-in form and reads nothing", async () => {
    const forged = new Jar();
    forged.cookies.set("hf_session", "A".repeat(43));
    for (const jar of [undefined, forged]) {
      for (const p of ["/status", "/status/", "/status/logs?environment=staging&customer=sp-up"]) {
        const res = await get(p, jar);
        assert.equal(res.status, 303, p);
        assert.equal(res.headers.get("location"), "/status/login");
        const body = await res.text();
        assert.doesNotMatch(body, /sp-up|sp-down|staging/);
      }
    }
    const out = await post("/status/logout", {});
    assert.equal(out.status, 303);
    assert.equal(dataCalls, 0);
    assert.deepEqual(logCalls, []);
  });

  it("the sign-in form: no script, a strict CSP, its nonce in an HttpOnly, Secure, SameSite=Strict cookie for /status/login only", async () => {
    const res = await get("/status/login");
    const body = await res.text();
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/html; charset=utf-8/);
    const csp = res.headers.get("content-security-policy")!;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
    assert.match(csp, /form-action 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /script-src|unsafe/);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.headers.get("referrer-policy"), "no-referrer");
    assert.doesNotMatch(body, /<script/i);
    assert.match(body, /<label for="token">Operator token<\/label>/);
    assert.match(body, /<form method="post" action="\/status\/login">/);
    const [cookie] = res.headers.getSetCookie();
    assert.match(cookie!, /^hf_login=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/status\/login; Max-Age=600; Secure$/);
    // the CSP's hash is the hash of the page's one <style>
    const style = /<style>([\s\S]*?)<\/style>/.exec(body)![1]!;
    const { createHash } = await import("node:crypto");
    assert.ok(csp.includes(`'sha256-${createHash("sha256").update(style).digest("base64")}'`));
  });

  it("signs in with the token: a session cookie HttpOnly, Secure, SameSite=Strict, Path=/status; then the page shows the data", async () => {
    const jar = new Jar();
    const csrf = await openForm(jar);
    const res = await post("/status/login", { csrf, token: TOKEN }, jar);
    assert.equal(res.status, 303);
    const cookies = res.headers.getSetCookie();
    const session = cookies.find((c) => c.startsWith("hf_session="))!;
    assert.match(session, /^hf_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/status; Max-Age=3600; Secure$/);
    assert.ok(cookies.some((c) => /^hf_login=; .*Max-Age=0/.test(c)), "the nonce cookie is cleared");
    jar.take(res);
    assert.equal(dataCalls, 0);
    const page = await get("/status", jar);
    assert.equal(page.status, 200);
    const body = await page.text();
    assert.match(body, /<th scope="row">sp-up<\/th>/);
    assert.match(body, /state-down">down<\/span>/);
    assert.match(body, /timeout through the proxy/);
    assert.match(body, /href="\/status\/logs\?environment=staging&amp;customer=sp-down"/);
    assert.doesNotMatch(body, /<script/i);
    assert.ok(!body.includes(TOKEN));
    assert.equal(dataCalls, 1);
    // signed in, the form sends you to the page
    const again = await get("/status/login", jar);
    assert.equal(again.status, 303);
    assert.equal(again.headers.get("location"), "/status");
  });

  it("a wrong token: 401, the form again with the error, no session; a token in the URL is never read", async () => {
    const sessionsBefore = routes.sessions.size();
    const jar = new Jar();
    let csrf = await openForm(jar);
    const wrong = await post("/status/login", { csrf, token: `${TOKEN}x` }, jar);
    assert.equal(wrong.status, 401);
    const body = await wrong.text();
    assert.match(body, /role="alert">That is not the operator token\./);
    assert.match(body, /aria-invalid="true"/);
    assert.ok(!wrong.headers.getSetCookie().some((c) => c.startsWith("hf_session=")));
    jar.take(wrong);
    csrf = field(body, "csrf")!;
    const inUrl = await post(`/status/login?token=${TOKEN}`, { csrf }, jar);
    assert.equal(inUrl.status, 401);
    assert.ok(!inUrl.headers.getSetCookie().some((c) => c.startsWith("hf_session=")));
    const getUrl = await get(`/status/login?token=${TOKEN}`);
    assert.equal(getUrl.status, 200);
    assert.ok(!getUrl.headers.getSetCookie().some((c) => c.startsWith("hf_session=")));
    assert.equal(routes.sessions.size(), sessionsBefore);
    assert.equal(dataCalls, 0);
    assert.ok(logged.some((l) => /a failed sign-in/.test(l)));
    assert.ok(!logged.some((l) => l.includes(TOKEN)));
  });

  it("CSRF: the right token without the form's field, with a forged one, or without the nonce cookie is refused with 403", async () => {
    const before = routes.sessions.size();
    const jar = new Jar();
    const csrf = await openForm(jar);
    const cases: [Record<string, string>, Jar | undefined][] = [
      [{ token: TOKEN }, jar],
      [{ token: TOKEN, csrf: "x".repeat(43) }, jar],
      [{ token: TOKEN, csrf }, undefined],
    ];
    // another form's nonce: its field does not match this nonce
    const other = new Jar();
    await openForm(other);
    cases.push([{ token: TOKEN, csrf }, other]);
    for (const [form, j] of cases) {
      const res = await post("/status/login", form, j);
      assert.equal(res.status, 403, JSON.stringify(form));
      assert.match(await res.text(), /expired or did not come from this page/);
      assert.ok(!res.headers.getSetCookie().some((c) => c.startsWith("hf_session=")));
    }
    assert.equal(routes.sessions.size(), before);
  });

  it("signing out needs the page's CSRF field; afterwards the cookie is cleared and the session is gone", async () => {
    const jar = await signIn();
    const page = await (await get("/status", jar)).text();
    const csrf = field(page, "csrf")!;
    const forged = await post("/status/logout", { csrf: "forged" }, jar);
    assert.equal(forged.status, 403);
    assert.equal((await get("/status", jar)).status, 200, "still signed in");
    const stolen = { ...Object.fromEntries(jar.cookies) };
    const out = await post("/status/logout", { csrf }, jar);
    assert.equal(out.status, 303);
    assert.equal(out.headers.get("location"), "/status/login");
    assert.ok(out.headers.getSetCookie().some((c) => /^hf_session=; HttpOnly; SameSite=Strict; Path=\/status; Max-Age=0; Secure$/.test(c)));
    jar.take(out);
    assert.equal((await get("/status", jar)).status, 303);
    // the old cookie, replayed: the session is gone on the server too
    const replay = new Jar();
    replay.cookies.set("hf_session", stolen.hf_session!);
    assert.equal((await get("/status", replay)).status, 303);
  });

  it("a session expires after its time", async () => {
    const jar = await signIn();
    assert.equal((await get("/status", jar)).status, 200);
    clock += 3600 * 1000;
    assert.equal((await get("/status", jar)).status, 303);
  });

  it("the logs page: the reader's lines escaped, a bad or unknown customer refused", async () => {
    const jar = await signIn();
    const res = await get("/status/logs?environment=staging&customer=sp-down", jar);
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.deepEqual(logCalls, [["staging", "sp-down", 50]]);
    assert.match(body, /<h1>Logs of sp-down in staging<\/h1>/);
    assert.match(body, /The last 2 lines, oldest first\./);
    assert.ok(body.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; done"));
    assert.doesNotMatch(body, /<script/i);
    assert.ok(res.headers.get("content-security-policy")!.includes("default-src 'none'"));

    for (const q of ["environment=staging&customer=%3Cscript%3E", "environment=../etc&customer=sp-a", "customer=sp-a", ""]) {
      const bad = await get(`/status/logs?${q}`, jar);
      assert.equal(bad.status, 400, q);
      assert.doesNotMatch(await bad.text(), /<script/i);
    }
    assert.equal(logCalls.length, 1);
    logsResult = new NotFound("There is no customer sp-zz in staging.");
    const missing = await get("/status/logs?environment=staging&customer=sp-zz", jar);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /There is no customer sp-zz in staging\./);
    logsResult = [];
    assert.match(await (await get("/status/logs?environment=staging&customer=sp-up", jar)).text(), /No log lines\./);
  });

  it("an error reading the data: 500 without its details (they go to the server's log)", async () => {
    const jar = await signIn();
    failData = true;
    const res = await get("/status", jar);
    assert.equal(res.status, 500);
    const body = await res.text();
    assert.doesNotMatch(body, /secret\/path/);
    assert.ok(logged.some((l) => l.includes("backend unreadable")));
  });

  it("too many failed sign-ins in a minute: 429, even for the right token, until the minute is over", async () => {
    const jar = new Jar();
    for (let i = 0; i < 5; i++) {
      const csrf = await openForm(jar);
      assert.equal((await post("/status/login", { csrf, token: "wrong" }, jar)).status, 401);
    }
    let csrf = await openForm(jar);
    const blocked = await post("/status/login", { csrf, token: TOKEN }, jar);
    assert.equal(blocked.status, 429);
    assert.match(await blocked.text(), /Too many failed sign-ins: try again in \d+ seconds/);
    clock += 61_000;
    csrf = await openForm(jar);
    assert.equal((await post("/status/login", { csrf, token: TOKEN }, jar)).status, 303);
  });

  it("methods, unknown paths, a large form; the other endpoints unchanged", async () => {
    const logout = await get("/status/logout");
    assert.equal(logout.status, 405);
    assert.equal(logout.headers.get("allow"), "POST");
    assert.equal((await get("/status/nothing")).status, 404);
    assert.equal((await fetch(`${base}/status`, { method: "POST", redirect: "manual" })).status, 405);
    const big = await fetch(`${base}/status/login`, { method: "POST", body: "token=" + "a".repeat(20_000), redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" } });
    assert.equal(big.status, 413);
    assert.equal((await get("/healthz")).status, 200);
    assert.equal((await get("/jobs")).status, 401);
    const none = await get("/nothing");
    assert.equal(none.status, 404);
    assert.match(await none.text(), /GET \/status/);
  });

  it("without FLEET_STATUS_TOKEN the status routes answer 404 and read nothing", async () => {
    let read = 0;
    const off = createStatusRoutes({ token: undefined, data: async () => { read++; return SNAPSHOT; }, logs });
    const s = createWebhookServer({ queue, environment: "staging", tier: "staging", secret: SECRET, log: () => {}, status: off });
    const url = `http://127.0.0.1:${(await listen(s, "127.0.0.1", 0)).port}`;
    try {
      for (const p of ["/status", "/status/login"]) {
        const res = await fetch(`${url}${p}`, { redirect: "manual" });
        assert.equal(res.status, 404);
        assert.match(await res.text(), /FLEET_STATUS_TOKEN is not set/);
      }
      const res = await fetch(`${url}/status/login`, { method: "POST", body: "token=", redirect: "manual" });
      assert.equal(res.status, 404);
      assert.equal(read, 0);
    } finally {
      s.close();
    }
  });
});

describe("status page: settings, engine states, log frames", () => {
  const env = { STRIPE_WEBHOOK_SECRET: "whsec_x" };
  it("FLEET_STATUS_TOKEN: optional, at least 16 characters, never echoed in the error", () => {
    assert.equal(serveSettings({}, env, "/srv/fleet").statusToken, undefined);
    assert.equal(serveSettings({}, { ...env, FLEET_STATUS_TOKEN: ` ${TOKEN} ` }, "/srv/fleet").statusToken, TOKEN);
    assert.throws(() => serveSettings({}, { ...env, FLEET_STATUS_TOKEN: "short-secret" }, "/srv/fleet"), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /FLEET_STATUS_TOKEN.*at least 16 characters/s);
      assert.doesNotMatch(err.message, /short-secret/);
      return true;
    });
  });

  it("a customer the watcher has no state for: the engine's health in colour and words", () => {
    const c = SNAPSHOT.environments[0]!.customers[0]!;
    const page = statusPage({ ...SNAPSHOT, csrfToken: "c", environments: [{ name: "staging", customers: [
      { ...c, customer: "sp-paused", watcher: null, health: "paused" },
      { ...c, customer: "sp-healthy", watcher: null, health: "healthy" },
      { ...c, customer: "sp-new", watcher: null, health: "not deployed" },
      { ...c, customer: "sp-unhealthy", watcher: null, health: "unhealthy" },
    ] }] });
    assert.match(page, /sp-paused<\/th>\n<td><span class="badge state-down">down<\/span> <span class="muted">engine: paused; not watched<\/span>/);
    assert.match(page, /sp-healthy<\/th>\n<td><span class="badge state-up">up<\/span> <span class="muted">engine: healthy; not watched/);
    assert.match(page, /sp-new<\/th>\n<td><span class="badge state-unwatched">not deployed<\/span>/);
    assert.match(page, /sp-unhealthy<\/th>\n<td><span class="badge state-down">down<\/span>/);
    assert.match(page, /4 customers \(1 up, 2 down, 1 not watched\)/);
  });

});
