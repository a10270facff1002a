/**
 * The watcher's pure core and its store: the health state machine (down after two probe failures,
 * OOM at once, restart loops without a second alert, recovery with its duration), the alert texts,
 * and the SQLite store with its deliveries (an alert queued once, retried after the backoff,
 * delivered once, kept across a reopen as after kill -9).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { after, describe, it } from "node:test";
import type Dockerode from "dockerode";
import { followCustomerEvents } from "../../src/watch/events";
import { alertMail, alertPayload, formatDuration, lookFurtherCommand, MAX_CONTENT } from "../../src/watch/alertText";
import { deliverDue, type Sink } from "../../src/watch/deliver";
import {
  DEFAULT_POLICY, incidentIdAt, initialHealth, observe, policyOf, type Alert, type CustomerHealth, type Observation,
} from "../../src/watch/health";
import { deliveryBackoffMs, WatchStore } from "../../src/watch/store";

const T0 = Date.parse("2025-03-01T12:00:00.000Z");
/** ISO time `s` seconds after T0 */
const t = (s: number) => new Date(T0 + s * 1000).toISOString();

const ok = (s: number): Observation => ({ kind: "probe", at: t(s), ok: true, ms: 40 });
const timeout = (s: number): Observation => ({ kind: "probe", at: t(s), ok: false, failure: "timeout", detail: "no answer in 5s" });
const refused = (s: number): Observation => ({ kind: "probe", at: t(s), ok: false, failure: "http", detail: "502 from the edge" });
const died = (s: number, exitCode = 1, oomKilled = false): Observation =>
  ({ kind: "died", at: t(s), exitCode, oomKilled, container: "hf-prod-acme-1a2b" });
const started = (s: number): Observation => ({ kind: "started", at: t(s), container: "hf-prod-acme-1a2b" });

/** Feeds observations to one customer; returns its final state and every alert. */
function run(observations: Observation[], state: CustomerHealth = initialHealth("prod", "acme", t(0))) {
  const alerts: Alert[] = [];
  for (const o of observations) {
    const next = observe(state, o, DEFAULT_POLICY, () => incidentIdAt(state.environment, state.customer, o.at));
    state = next.state;
    alerts.push(...next.alerts);
  }
  return { state, alerts };
}

describe("watch: customer health", () => {
  it("a frozen customer (probe timeouts) is down after two failures with one alert, and recovers with one alert of the same incident", () => {
    const { state: up } = run([ok(0), ok(30)]);
    assert.equal(up.status, "up");
    const once = run([timeout(60)], up);
    assert.equal(once.state.status, "up", "one failure is not down");
    assert.deepEqual(once.alerts, []);
    const down = run([timeout(90), timeout(120), timeout(150)], once.state);
    assert.equal(down.state.status, "down");
    assert.equal(down.state.since, t(90));
    assert.equal(down.alerts.length, 1);
    const [alert] = down.alerts;
    assert.equal(alert!.kind, "down");
    assert.equal(alert!.customer, "acme");
    assert.equal(alert!.environment, "prod");
    assert.equal(alert!.at, t(90));
    assert.match(alert!.reason, /^timeout through the proxy/);
    assert.equal(alert!.id, `${alert!.incident}:down`);

    const back = run([ok(180), timeout(210), ok(240), ok(270), ok(300)], down.state);
    assert.equal(back.alerts.length, 1, "one recovered alert; a single success between failures does not recover");
    const [rec] = back.alerts;
    assert.equal(rec!.kind, "recovered");
    assert.equal(rec!.incident, alert!.incident);
    assert.equal(rec!.id, `${alert!.incident}:recovered`);
    assert.equal(rec!.at, t(270));
    assert.equal(rec!.downSince, t(90));
    assert.equal(rec!.durationSeconds, 180);
    assert.match(rec!.reason, /timeout through the proxy/);
    assert.equal(back.state.status, "up");
    assert.equal(back.state.incident, undefined);
  });

  it("a neighbour's observations never alert for the other customer", () => {
    let acme = initialHealth("prod", "acme", t(0));
    let beta = initialHealth("prod", "beta", t(0));
    const alerts: Alert[] = [];
    for (let i = 0; i < 10; i++) {
      const a = observe(acme, ok(i * 30), DEFAULT_POLICY, () => "never");
      const b = observe(beta, i < 5 ? timeout(i * 30) : ok(i * 30), DEFAULT_POLICY, () => incidentIdAt("prod", "beta", t(i * 30)));
      acme = a.state;
      beta = b.state;
      alerts.push(...a.alerts, ...b.alerts);
    }
    assert.equal(acme.status, "up");
    assert.deepEqual(alerts.map((a) => `${a.customer} ${a.kind}`), ["beta down", "beta recovered"]);
  });

  it("a died event with OOMKilled makes the customer down at once, reason OOM-killed, one alert with the container", () => {
    const { state, alerts } = run([ok(0), ok(30), { kind: "oom", at: t(40), container: "hf-prod-acme-1a2b" }, died(40, 137, true), started(41), timeout(60)]);
    assert.equal(state.status, "down");
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.reason, "OOM-killed");
    assert.equal(alerts[0]!.at, t(40));
    assert.equal(alerts[0]!.container, "hf-prod-acme-1a2b");
    assert.match(state.reason!, /^OOM-killed \(probe: timeout/);
  });

  it("an OOM kill while probes succeed (a process of the container killed, the app still answering) recovers only after two good probes from then", () => {
    const one = run([ok(0), ok(15), ok(30), { kind: "oom", at: t(40) }, ok(45)]);
    assert.equal(one.state.status, "down");
    assert.deepEqual(one.alerts.map((a) => a.kind), ["down"]);
    const two = run([{ kind: "probe", at: t(60), ok: true, ms: 40 }], one.state);
    assert.deepEqual(two.alerts.map((a) => a.kind), ["recovered"]);
    assert.equal(two.alerts[0]!.durationSeconds, 20);
  });

  it("a restart loop of 5 die/start cycles gives one down alert; the reason then says restart loop", () => {
    const obs: Observation[] = [ok(0), ok(30)];
    for (let i = 0; i < 5; i++) {
      obs.push(died(60 + i * 30, 1), refused(65 + i * 30), started(70 + i * 30));
    }
    const { state, alerts } = run(obs);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.kind, "down");
    assert.match(alerts[0]!.reason, /^exited with code 1 \(probe: HTTP error: 502/);
    assert.equal(state.status, "down");
    assert.equal(state.restarts, 5);
    assert.equal(state.reason, "restart loop (5 restarts), last: exited with code 1");
    // it comes back: one recovered alert, the restarts forgotten
    const back = run([ok(300), ok(330)], state);
    assert.deepEqual(back.alerts.map((a) => a.kind), ["recovered"]);
    assert.equal(back.alerts[0]!.incident, alerts[0]!.incident);
    assert.match(back.alerts[0]!.reason, /restart loop \(5 restarts\)/);
    assert.equal(back.state.restarts, 0);
  });

  it("restarts with no failed probe in between are down at restartLoopAfter, once", () => {
    const obs: Observation[] = [ok(0)];
    for (let i = 0; i < 4; i++) obs.push(died(10 + i * 2, 2), started(11 + i * 2));
    const { state, alerts } = run(obs);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.reason, "restart loop (3 restarts), last: exited with code 2");
    assert.equal(state.reason, "restart loop (4 restarts), last: exited with code 2");
  });

  it("a rollout (the old container stops, probes keep succeeding) is no incident and its restart is forgotten", () => {
    const { state, alerts } = run([ok(0), started(5), died(6, 143), ok(30), ok(60), started(65), died(66, 143), ok(90), ok(120)]);
    assert.deepEqual(alerts, []);
    assert.equal(state.status, "up");
    assert.equal(state.restarts, 0);
    assert.equal(state.engine, undefined);
  });

  it("unhealthy with probes succeeding is degraded (no alert); a later probe failure reports the healthcheck's output", () => {
    const degraded = run([ok(0), { kind: "health", at: t(10), healthy: false, output: "db: connection refused\n" }, ok(30)]);
    assert.equal(degraded.state.status, "degraded");
    assert.equal(degraded.state.since, t(10));
    assert.equal(degraded.state.reason, "unhealthy: db: connection refused");
    assert.deepEqual(degraded.alerts, []);
    const down = run([timeout(60), timeout(90)], degraded.state);
    assert.equal(down.alerts.length, 1);
    assert.equal(down.alerts[0]!.reason, "unhealthy: db: connection refused (probe: timeout through the proxy: no answer in 5s)");
    const healthy = run([{ kind: "health", at: t(100), healthy: true }, ok(120), ok(150)], down.state);
    assert.equal(healthy.state.status, "up");
    assert.deepEqual(healthy.alerts.map((a) => a.kind), ["recovered"]);
  });

  it("a customer already down when the watcher starts is alerted; a clock stepped back gives no negative duration", () => {
    const down = run([timeout(100), timeout(130)]);
    assert.equal(down.alerts.length, 1);
    const back = run([ok(90), ok(95)], down.state);
    assert.equal(back.alerts[0]!.durationSeconds, 0);
    assert.equal(back.alerts[0]!.at, t(130));
  });

  it("the policy needs whole numbers of at least 1", () => {
    assert.deepEqual(policyOf({ downAfterFailures: 3 }), { ...DEFAULT_POLICY, downAfterFailures: 3 });
    assert.throws(() => policyOf({ upAfterSuccesses: 0 }), /upAfterSuccesses/);
  });
});

const downAlert: Alert = {
  id: "prod/acme@2025-03-01T12:01:30.000Z:down", incident: "prod/acme@2025-03-01T12:01:30.000Z", kind: "down",
  environment: "prod", customer: "acme", at: "2025-03-01T12:01:30.000Z", reason: "OOM-killed", container: "hf-prod-acme-1a2b",
};
const recoveredAlert: Alert = {
  ...downAlert, id: "prod/acme@2025-03-01T12:01:30.000Z:recovered", kind: "recovered", at: "2025-03-01T12:04:30.000Z",
  downSince: downAlert.at, durationSeconds: 180,
};

describe("watch: alert texts", () => {
  it("the webhook payload has text, content (at most 2000 characters), username and the alert; mentions are broken", () => {
    const long: Alert = { ...downAlert, reason: `unhealthy: @everyone <!channel> ${"x".repeat(5000)}` };
    for (const alert of [downAlert, recoveredAlert, long]) {
      const p = alertPayload(alert, { lookFurther: lookFurtherCommand(alert) });
      assert.equal(p.username, "hardened-fleet");
      assert.equal(p.text, p.content);
      assert.ok(p.content.length <= MAX_CONTENT, `${p.content.length} characters`);
      assert.deepEqual(p.alert, alert);
      assert.deepEqual(p.allowed_mentions, { parse: [] });
      assert.ok(p.text.includes("npm run fleet -- status acme --env prod; docker logs --tail 100 hf-prod-acme-1a2b"));
      assert.ok(p.text.includes(alert.incident));
    }
    const p = alertPayload(long, { lookFurther: "x" });
    assert.ok(!p.text.includes("@everyone") && !p.text.includes("<!channel>"));
    assert.match(alertPayload(downAlert, { lookFurther: "x" }).text, /^DOWN: acme \(environment prod\) since 2025-03-01T12:01:30.000Z\nreason: OOM-killed/);
    assert.match(alertPayload(recoveredAlert, { lookFurther: "x" }).text, /^RECOVERED: acme .* down for 3m 0s/);
  });

  it("the e-mail names customer, environment, reason and the command to look further", () => {
    const mail = alertMail(recoveredAlert);
    assert.equal(mail.subject, "[hardened-fleet] RECOVERED prod/acme: OOM-killed");
    assert.match(mail.text, /down for: +3m 0s/);
    assert.ok(mail.text.includes("npm run fleet -- status acme --env prod"));
    assert.equal(lookFurtherCommand({ ...downAlert, container: undefined }), "npm run fleet -- status acme --env prod");
    assert.equal(formatDuration(2 * 86400 + 4 * 3600 + 5), "2d 4h");
  });
});

describe("watch: store and deliveries", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-watch-store-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const freshFile = () => path.join(dir, `s${++n}`, "watch.db");
  const quiet = () => {};
  const now = new Date(T0);
  const later = (ms: number) => new Date(T0 + ms);

  it("apply saves the state and queues each alert once per sink, even when applied twice", () => {
    const store = WatchStore.open(freshFile());
    const { state, alerts } = run([timeout(0), timeout(30)]);
    assert.deepEqual(store.apply("prod", "acme", state, alerts, ["chat", "mail"], now), [alerts[0]!.id]);
    assert.deepEqual(store.apply("prod", "acme", state, alerts, ["chat", "mail"], now), []);
    assert.deepEqual(store.healthOf("prod", "acme"), state);
    assert.equal(store.deliveriesOf(alerts[0]!.id).length, 2);
    assert.deepEqual(store.pending(), { chat: { queued: 1, delivered: 0, failed: 0 }, mail: { queued: 1, delivered: 0, failed: 0 } });
    assert.throws(() => store.apply("prod", "beta", state, [], [], now), /cannot be saved/);
    store.close();
  });

  it("a failed delivery is retried after the backoff and delivered once; the sink keeps its order", async () => {
    const store = WatchStore.open(freshFile());
    const down = run([timeout(0), timeout(30)]);
    store.apply("prod", "acme", down.state, down.alerts, ["chat"], now);
    const up = run([ok(60), ok(90)], down.state);
    store.apply("prod", "acme", up.state, up.alerts, ["chat"], later(1));
    const sent: string[] = [];
    let failing = true;
    const sink: Sink = { name: "chat", send: async (a) => { if (failing) throw new Error("502 Bad Gateway"); sent.push(a.id); } };
    const lines: string[] = [];

    assert.deepEqual(await deliverDue(store, [sink], later(10), (l) => lines.push(l)), { delivered: 0, failed: 1 });
    assert.match(lines[0]!, /attempt 1 failed, again in 5s: 502 Bad Gateway/);
    const d = store.delivery(down.alerts[0]!.id, "chat")!;
    assert.equal(d.status, "failed");
    assert.equal(d.nextAttemptAt, later(10 + 5000).toISOString());
    failing = false;
    assert.deepEqual(await deliverDue(store, [sink], later(4000), quiet), { delivered: 0, failed: 0 }, "the backoff holds the whole sink");
    assert.deepEqual(await deliverDue(store, [sink], later(5010), quiet), { delivered: 2, failed: 0 });
    assert.deepEqual(sent, [down.alerts[0]!.id, up.alerts[0]!.id]);
    assert.deepEqual(await deliverDue(store, [sink], later(600_000), quiet), { delivered: 0, failed: 0 });
    assert.equal(sent.length, 2);
    const done = store.delivery(down.alerts[0]!.id, "chat")!;
    assert.equal(done.status, "delivered");
    assert.equal(done.attempts, 2);
    store.markFailed(down.alerts[0]!.id, "chat", "late", later(1));
    assert.equal(store.delivery(down.alerts[0]!.id, "chat")!.status, "delivered", "a failure never undoes a delivery");
    store.close();
  });

  it("overlapping passes send a delivery once; one sink down does not hold another", async () => {
    const store = WatchStore.open(freshFile());
    const down = run([timeout(0), timeout(30)]);
    store.apply("prod", "acme", down.state, down.alerts, ["slow", "broken"], now);
    let calls = 0;
    let release = () => {};
    const slow: Sink = { name: "slow", send: () => { calls++; return new Promise<void>((r) => { release = r; }); } };
    const broken: Sink = { name: "broken", send: async () => { throw new Error("connection refused"); } };
    const first = deliverDue(store, [slow, broken], now, quiet);
    const second = await deliverDue(store, [slow], now, quiet);
    assert.deepEqual(second, { delivered: 0, failed: 0 });
    release();
    assert.deepEqual(await first, { delivered: 1, failed: 1 });
    assert.deepEqual(await deliverDue(store, [slow], later(1000), quiet), { delivered: 0, failed: 0 });
    assert.equal(calls, 1);
    assert.equal(store.pending().broken!.failed, 1);
    store.close();
  });

  it("reopening the file (as after kill -9) keeps the states and the queued deliveries", async () => {
    const file = freshFile();
    const store = WatchStore.open(file);
    const down = run([timeout(0), timeout(30)]);
    store.apply("prod", "acme", down.state, down.alerts, ["chat"], now);
    store.apply("prod", "beta", run([ok(0)], initialHealth("prod", "beta", t(0))).state, [], ["chat"], now);
    // no close: the process is gone
    const again = WatchStore.open(file);
    assert.deepEqual(again.allHealth().map((h) => `${h.customer} ${h.status}`), ["acme down", "beta up"]);
    assert.deepEqual(again.healthOf("prod", "acme"), down.state);
    // the restarted watcher decides from the saved state: a further failure is no second alert
    const next = run([timeout(60)], again.healthOf("prod", "acme")!);
    assert.deepEqual(next.alerts, []);
    const sent: string[] = [];
    await deliverDue(again, [{ name: "chat", send: async (a) => { sent.push(a.id); } }], now, quiet);
    assert.deepEqual(sent, [down.alerts[0]!.id]);
    store.close();
    again.close();
  });

  it("a process killed with SIGKILL right after apply leaves its state and queued alert in the file", async () => {
    const file = freshFile();
    const script = path.join(dir, "apply-and-hang.ts");
    const down = run([timeout(0), timeout(30)]);
    fs.writeFileSync(script, `
      import { WatchStore } from ${JSON.stringify(path.resolve("src/watch/store.ts"))};
      const store = WatchStore.open(${JSON.stringify(file)});
      store.apply("prod", "acme", ${JSON.stringify(down.state)}, ${JSON.stringify(down.alerts)}, ["chat", "mail"]);
      process.stdout.write("applied\\n");
      setInterval(() => {}, 1000);
    `);
    const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: process.cwd(), stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => { if (chunk.toString().includes("applied")) resolve(); });
      child.on("exit", (code) => reject(new Error(`the child ended (${code}) before applying`)));
    });
    const exited = new Promise((r) => child.on("exit", (_code, signal) => r(signal)));
    child.kill("SIGKILL");
    assert.equal(await exited, "SIGKILL");
    const store = WatchStore.open(file);
    assert.deepEqual(store.healthOf("prod", "acme"), down.state);
    assert.deepEqual(store.due("mail", new Date(Date.now() + 1000)).map((d) => d.alert), down.alerts);
    assert.deepEqual(store.apply("prod", "acme", down.state, down.alerts, ["chat", "mail"]), [], "deciding again queues nothing");
    store.close();
  });

  it("the backoff starts at 5 s, doubles and stops at 5 min", () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map(deliveryBackoffMs), [5000, 10000, 20000, 40000, 80000, 160000, 300000, 300000]);
  });
});

describe("watch: the engine's event stream", () => {
  /** A stand-in engine: each getEvents call gets the next stream; its events are written by the test. */
  function fakeEngine() {
    const streams: PassThrough[] = [];
    const opened: (string | undefined)[] = [];
    const engine = {
      getEvents: async (opts: { since?: string }) => {
        opened.push(opts.since);
        const s = new PassThrough();
        streams.push(s);
        return s;
      },
      getContainer: () => ({ inspect: async () => ({ State: { OOMKilled: false, Health: { Log: [] } } }) }),
    };
    return { engine: engine as unknown as Dockerode, streams, opened };
  }
  const event = (customer: string, action: string, nanos: bigint) => JSON.stringify({
    Type: "container", Action: action, id: `c-${customer}`, timeNano: nanos.toString(),
    Actor: { ID: `c-${customer}`, Attributes: { "io.hardened-fleet.role": "customer-service", "io.hardened-fleet.environment": "staging", "io.hardened-fleet.customer": customer, name: `hf-staging-${customer}`, exitCode: "137" } },
  }) + "\n";
  const settle = () => new Promise((r) => setTimeout(r, 50));
  const T = 1_800_000_000_000_000_000n;

  it("takes a customer's event the engine sends after a neighbour's later one, each once, also after the stream is opened again", async () => {
    const { engine, streams, opened } = fakeEngine();
    const got: string[] = [];
    const handle = followCustomerEvents(engine, undefined, async (e) => { got.push(`${e.customer} ${e.observation.kind} ${e.cursor}`); }, () => {}, 10);
    await settle();
    streams[0]!.write(event("wa-a", "start", T + 200n));
    // sent after, but earlier: a busy engine does that across containers
    streams[0]!.write(event("wa-b", "die", T + 100n));
    streams[0]!.write(event("wa-b", "start", T + 300n));
    await settle();
    // the cursor only moves forward: wa-b's death is taken, carrying the cursor it leaves (the latest)
    assert.deepEqual(got, [`wa-a started ${T + 200n}`, `wa-b died ${T + 200n}`, `wa-b started ${T + 300n}`]);
    streams[0]!.end();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(opened.length, 2, "opened again");
    assert.equal(opened[1], `${(T + 300n) / 1_000_000_000n}.${((T + 300n) % 1_000_000_000n).toString().padStart(9, "0")}`);
    // the engine repeats the events at the cursor: not taken twice; a new one is
    streams[1]!.write(event("wa-b", "start", T + 300n));
    streams[1]!.write(event("wa-b", "die", T + 400n));
    await settle();
    assert.deepEqual(got.slice(3), [`wa-b died ${T + 400n}`]);
    handle.stop();
  });

  it("a watcher started again from its stored cursor does not take what it took before", async () => {
    const { engine, streams } = fakeEngine();
    const got: string[] = [];
    const handle = followCustomerEvents(engine, (T + 300n).toString(), async (e) => { got.push(`${e.customer} ${e.observation.kind}`); }, () => {}, 10);
    await settle();
    streams[0]!.write(event("wa-b", "start", T + 300n));
    streams[0]!.write(event("wa-b", "die", T + 500n));
    await settle();
    assert.deepEqual(got, ["wa-b died"]);
    handle.stop();
  });
});
