/**
 * The watcher's sinks against local servers on 127.0.0.1: the chat webhook (the payload posted, 2xx
 * taken, anything else, a refused connection or a timeout not, the URL's secret path in no error, a
 * 503 twice then one delivery through deliverDue and the store) and e-mail (STARTTLS with login and
 * the alert id header, a wrong password, a server without STARTTLS, a 451 then a delivery).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { alertPayload, lookFurtherCommand } from "../../src/watch/alertText";
import { deliverDue } from "../../src/watch/deliver";
import { incidentIdAt, initialHealth, type Alert } from "../../src/watch/health";
import {
  ALERT_ID_HEADER, describeWebhookUrl, mailConfigProblems, mailSink, parseWebhookUrl, webhookSink,
} from "../../src/watch/sinks";
import { WatchStore } from "../../src/watch/store";
import { selfSignedCertificate, startSmtpServer, type TestSmtpServer } from "../support/smtpServer";

const SECRET_PATH = "/services/T000/B000/SECRETTOKEN";
const AT = "2025-03-01T12:00:00.000Z";
const incident = incidentIdAt("prod", "acme", AT);
const alert: Alert = {
  id: `${incident}:down`, incident, kind: "down", environment: "prod", customer: "acme", at: AT,
  reason: "timeout through the proxy: no answer in 5s", container: "hf-prod-acme-1a2b",
};

interface Hit { method: string; url: string; contentType: string; body: string; status: number | null }

/** A webhook receiver on 127.0.0.1 answering each request with `answer(n)` (n: 1-based), or never when it returns null. */
async function hookServer(answer: (n: number) => number | null) {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const status = answer(hits.length + 1);
      hits.push({ method: req.method ?? "", url: req.url ?? "", contentType: String(req.headers["content-type"]), body: Buffer.concat(chunks).toString("utf8"), status });
      if (status === null) return; // silent: the client's timeout decides
      res.writeHead(status, { "content-type": "text/plain" }).end(status < 300 ? "ok" : `no: ${req.url}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    hits,
    url: `http://127.0.0.1:${port}${SECRET_PATH}?token=SECRETQUERY`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof Error);
    return err;
  }
  assert.fail("expected a rejection");
}

function assertNoSecret(err: Error) {
  assert.doesNotMatch(err.message, /SECRETTOKEN|SECRETQUERY|services/, `the error shows the secret URL: ${err.message}`);
}

describe("watch sinks: webhook", () => {
  it("names only scheme, host and port of the URL, and checks it", () => {
    assert.equal(describeWebhookUrl(`https://hooks.slack.com${SECRET_PATH}`), "webhook https://hooks.slack.com:443");
    assert.equal(describeWebhookUrl(`http://127.0.0.1:8080${SECRET_PATH}?x=1`), "webhook http://127.0.0.1:8080");
    assert.equal(parseWebhookUrl(`https://hooks.slack.com${SECRET_PATH}`).hostname, "hooks.slack.com");
    for (const bad of ["not a url SECRETTOKEN", `ftp://example.com${SECRET_PATH}`, `https://user:SECRETTOKEN@example.com${SECRET_PATH}`]) {
      assert.throws(() => parseWebhookUrl(bad), (err: Error) => {
        assert.match(err.message, /hardened-fleet:alertWebhookUrl/);
        assert.match(err.message, /pulumi config set --secret/);
        assertNoSecret(err);
        return true;
      });
    }
  });

  it("posts the alert payload as JSON and resolves on a 2xx", async () => {
    const hook = await hookServer(() => 204);
    after(hook.close);
    await webhookSink({ url: hook.url }).send(alert);
    assert.equal(hook.hits.length, 1);
    const [hit] = hook.hits;
    assert.equal(hit!.method, "POST");
    assert.equal(hit!.url, `${SECRET_PATH}?token=SECRETQUERY`);
    assert.equal(hit!.contentType, "application/json");
    const posted = JSON.parse(hit!.body);
    assert.deepEqual(posted, JSON.parse(JSON.stringify(alertPayload(alert, { lookFurther: lookFurtherCommand(alert) }))));
    assert.deepEqual(Object.keys(posted).sort(), ["alert", "allowed_mentions", "content", "text", "username"]);
    assert.deepEqual(posted.allowed_mentions, { parse: [] });
    assert.equal(posted.alert.id, alert.id);
  });

  it("rejects a 500 naming the status and not the path, even when the body echoes it", async () => {
    const hook = await hookServer(() => 500);
    after(hook.close);
    const err = await rejection(webhookSink({ url: hook.url }).send(alert));
    assert.match(err.message, /^webhook http:\/\/127\.0\.0\.1:\d+ answered 500: no: /);
    assertNoSecret(err);
  });

  it("rejects a refused connection and a timeout, neither naming the path", async () => {
    const hook = await hookServer(() => 200);
    const closedUrl = hook.url;
    await hook.close();
    const refused = await rejection(webhookSink({ url: closedUrl }).send(alert));
    assert.match(refused.message, /ECONNREFUSED/);
    assertNoSecret(refused);

    const silent = await hookServer(() => null);
    after(silent.close);
    const started = Date.now();
    const timedOut = await rejection(webhookSink({ url: silent.url, timeoutMs: 300 }).send(alert));
    assert.match(timedOut.message, /no answer within 0\.3s/);
    assert.ok(Date.now() - started < 5000);
    assertNoSecret(timedOut);
  });

  it("https: the certificate is checked against the given CA", async () => {
    const { key, cert } = selfSignedCertificate();
    let hits = 0;
    const server = https.createServer({ key, cert }, (req, res) => {
      hits++;
      req.resume().on("end", () => res.writeHead(200).end("ok"));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    after(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}${SECRET_PATH}`;
    await webhookSink({ url, ca: cert }).send(alert);
    assert.equal(hits, 1);
    const err = await rejection(webhookSink({ url, timeoutMs: 5000 }).send(alert));
    assert.match(err.message, /self[- ]signed certificate/);
    assertNoSecret(err);
    assert.equal(hits, 1);
  });

  it("through deliverDue and the store: 503 twice, failed with a backoff, then delivered exactly once", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-sinks-"));
    const store = WatchStore.open(path.join(dir, "watch.db"));
    const hook = await hookServer((n) => (n <= 2 ? 503 : 200));
    after(async () => {
      await hook.close();
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const sink = webhookSink({ url: hook.url });
    const log: string[] = [];
    const state = { ...initialHealth("prod", "acme", AT), status: "down" as const, incident, reason: alert.reason };
    store.apply("prod", "acme", state, [alert], [sink.name], new Date(AT));

    let now = new Date(AT);
    for (let attempt = 1; attempt <= 2; attempt++) {
      assert.deepEqual(await deliverDue(store, [sink], now, (l) => log.push(l)), { delivered: 0, failed: 1 });
      const d = store.delivery(alert.id, "webhook")!;
      assert.equal(d.status, "failed");
      assert.equal(d.attempts, attempt);
      assert.match(d.lastError!, /answered 503/);
      assert.doesNotMatch(d.lastError!, /SECRET/);
      // not due before its retry time
      assert.deepEqual(await deliverDue(store, [sink], now, () => {}), { delivered: 0, failed: 0 });
      now = new Date(Date.parse(d.nextAttemptAt) + 1);
    }
    assert.deepEqual(await deliverDue(store, [sink], now, (l) => log.push(l)), { delivered: 1, failed: 0 });
    assert.equal(store.delivery(alert.id, "webhook")!.status, "delivered");
    // later passes send nothing more
    assert.deepEqual(await deliverDue(store, [sink], new Date(now.getTime() + 3_600_000), () => {}), { delivered: 0, failed: 0 });
    assert.equal(hook.hits.length, 3);
    assert.deepEqual(hook.hits.map((h) => h.status), [503, 503, 200], "exactly one accepted request");
    assert.ok(log.every((l) => !l.includes("SECRET")), log.join("\n"));
  });
});

describe("watch sinks: email", () => {
  const servers: TestSmtpServer[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));
  const start = async (opts: Parameters<typeof startSmtpServer>[0]) => {
    const s = await startSmtpServer(opts);
    servers.push(s);
    return s;
  };
  const auth = { user: "alerts", password: "S3cret-pass!" };
  const mailTo = (s: TestSmtpServer, extra: { username?: string; password?: string } = {}) =>
    mailSink({ host: s.host, port: s.port, from: "alerts@fleet.test", to: ["oncall@fleet.test", "ops@fleet.test"], ca: s.ca, timeoutMs: 5000, ...extra });

  it("sends over STARTTLS with login: the subject and the alert id header arrive", async () => {
    const s = await start({ auth });
    await mailTo(s, { username: auth.user, password: auth.password }).send(alert);
    assert.equal(s.received.length, 1);
    const [m] = s.received;
    assert.equal(m!.secure, true);
    assert.equal(m!.user, auth.user);
    assert.equal(m!.from, "alerts@fleet.test");
    assert.deepEqual(m!.to, ["oncall@fleet.test", "ops@fleet.test"]);
    assert.equal(m!.subject, "[hardened-fleet] DOWN prod/acme: timeout through the proxy: no answer in 5s");
    assert.equal(m!.alertId, alert.id);
    assert.match(m!.raw, new RegExp(`^${ALERT_ID_HEADER}:`, "mi"));
    assert.match(m!.raw, /npm run fleet -- status acme --env prod/);
  });

  it("a wrong password rejects without the password in the error", async () => {
    const s = await start({ auth });
    const wrong = "Wr0ng-pass-XYZ";
    const err = await rejection(mailTo(s, { username: auth.user, password: wrong }).send(alert));
    assert.match(err.message, /^email via 127\.0\.0\.1:\d+: /);
    assert.match(err.message, /535|auth|login/i);
    assert.ok(!err.message.includes(wrong), err.message);
    assert.ok(!err.message.includes(Buffer.from(wrong).toString("base64")), err.message);
    assert.ok(!err.message.includes(Buffer.from(`\u0000${auth.user}\u0000${wrong}`).toString("base64")), err.message);
    assert.equal(s.received.length, 0);
  });

  it("a server without STARTTLS: rejects, and nothing was sent in clear text", async () => {
    const s = await start({ noStartTls: true });
    const err = await rejection(mailTo(s).send(alert));
    assert.match(err.message, /STARTTLS|TLS/);
    assert.equal(s.received.length, 0);
  });

  it("a certificate not from the given CA rejects", async () => {
    const s = await start({});
    const other = await start({});
    const err = await rejection(mailSink({ host: s.host, port: s.port, from: "alerts@fleet.test", to: ["oncall@fleet.test"], ca: other.ca, timeoutMs: 5000 }).send(alert));
    assert.match(err.message, /certificate|self[- ]signed/i);
    assert.equal(s.received.length, 0);
  });

  it("a server answering 451 rejects, and the next attempt is taken", async () => {
    const s = await start({ refuse: 1 });
    const sink = mailTo(s);
    const err = await rejection(sink.send(alert));
    assert.match(err.message, /451/);
    assert.equal(s.received.length, 0);
    await sink.send(alert);
    assert.equal(s.received.length, 1);
    assert.equal(s.received[0]!.alertId, alert.id);
  });

  it("checks its settings, naming watch.email.<field> and the fix", () => {
    assert.deepEqual(mailConfigProblems({ host: "smtp.example.com", port: 587, from: "a@example.com", to: ["b@example.com"] }), []);
    const problems = mailConfigProblems({ host: "", port: 70000, from: "nobody", to: [], password: "x" });
    for (const field of ["host", "port", "from", "to", "username"]) {
      assert.ok(problems.some((p) => p.startsWith(`watch.email.${field} `)), `${field}: ${problems.join("; ")}`);
    }
    assert.throws(() => mailSink({ host: "smtp.example.com", port: 0, from: "a@example.com", to: ["b@example.com"] }), /watch\.email\.port/);
  });
});
