/**
 * The webhook server over real HTTP on 127.0.0.1 (port 0), with the worker on fake operations:
 * signatures made the way Stripe makes them are accepted; a bad or missing signature, an old
 * timestamp, a tampered or malformed body get 400 and write nothing; /healthz and the bearer-protected
 * /jobs; answers stay fast while a slow job runs behind them.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import type { Server } from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { JobQueue } from "../../src/webhooks/queue";
import { bearerMatches, createWebhookServer, listen } from "../../src/webhooks/server";
import { Worker, type FleetOperations } from "../../src/webhooks/worker";
import {
  checkoutCompleted, deliver, getJson, invoiceEvent, JOBS_TOKEN, SECRET, sign, subscriptionUpdated,
} from "../webhooks/support";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-webhooks-server-"));

describe("webhook server", () => {
  let queue: JobQueue;
  let server: Server;
  let worker: Worker;
  let base: string;
  const provisioned: string[] = [];
  let release: () => void = () => {};

  const ops: FleetOperations = {
    async provision(req) {
      provisioned.push(`${req.customer} ${req.plan}`);
      // "slow" blocks like a long `pulumi up` until the test releases it
      if (req.customer === "slow") await new Promise<void>((r) => { release = r; });
    },
    async deprovision(req) {
      provisioned.push(`deprovision ${req.customer}`);
    },
  };

  before(async () => {
    queue = JobQueue.open(path.join(dir, "queue.db"));
    worker = new Worker(queue, ops, { log: () => {}, pollMs: 20 });
    server = createWebhookServer({ queue, environment: "prod", tier: "staging", secret: SECRET, jobsToken: JOBS_TOKEN, log: () => {}, onQueued: () => worker.wake() });
    const address = await listen(server, "127.0.0.1", 0);
    base = `http://127.0.0.1:${address.port}`;
    worker.start();
  });

  after(async () => {
    release();
    server.close();
    await worker.stop();
    queue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const nothingWritten = (before: number, what: string) => assert.equal(queue.eventCount(), before, `${what}: an event was written`);

  it("accepts a correctly signed event, queues its job and runs it; a second delivery is a duplicate", async () => {
    const d = sign(checkoutCompleted("evt_ok", 1000, "acme", "starter"));
    const first = await deliver(base, d.body, d.signature);
    assert.equal(first.status, 200);
    assert.deepEqual(first.json, { received: true, duplicate: false, job: 1, status: "queued" });
    await worker.settled();
    assert.deepEqual(provisioned, ["acme starter"]);
    const again = await deliver(base, d.body, d.signature);
    assert.equal(again.status, 200);
    assert.equal(again.json.duplicate, true);
    assert.equal(again.json.status, "done");
    assert.equal(queue.eventCount(), 1);
    await worker.settled();
    assert.deepEqual(provisioned, ["acme starter"]);
  });

  it("refuses a bad signature, a missing one, an old timestamp, a tampered or malformed body: 400, nothing written", async () => {
    const count = queue.eventCount();
    const event = checkoutCompleted("evt_attack", 1001, "mallory", "standard");
    const wrongSecret = sign(event, { secret: "whsec_someone_else" });
    const old = sign(event, { timestamp: Math.floor(Date.now() / 1000) - 600 });
    const good = sign(event);
    const tampered = good.body.replace("mallory", "acme");
    const cases: [string, string, string | undefined, RegExp][] = [
      ["wrong secret", wrongSecret.body, wrongSecret.signature, /signature verification failed: No signatures found matching/],
      ["no header", good.body, undefined, /missing Stripe-Signature header/],
      ["garbage header", good.body, "v1=deadbeef", /signature verification failed/],
      ["replayed 10 minutes later", old.body, old.signature, /Timestamp outside the tolerance zone/],
      ["tampered body", tampered, good.signature, /signature verification failed/],
    ];
    const notJson = sign("{ this is not json");
    cases.push(["signed, not JSON", notJson.body, notJson.signature, /malformed event: the body is not JSON/]);
    const noId = sign(JSON.stringify({ object: "event", type: "checkout.session.completed", created: 5, data: { object: {} } }));
    cases.push(["signed, no id", noId.body, noId.signature, /malformed event: id must be a string/]);
    for (const [what, body, signature, message] of cases) {
      const answer = await deliver(base, body, signature);
      assert.equal(answer.status, 400, what);
      assert.match(String(answer.json.error), message, what);
      nothingWritten(count, what);
    }
    assert.ok(!provisioned.some((p) => p.startsWith("mallory")));
  });

  it("records an invalid customer id as a failed job (200: Stripe must not retry it), and payment events as ignored", async () => {
    const bad = sign(checkoutCompleted("evt_badid", 1002, "ACME Corp", "starter"));
    const answer = await deliver(base, bad.body, bad.signature);
    assert.equal(answer.status, 200);
    assert.equal(answer.json.status, "failed");
    const invoice = sign(invoiceEvent("evt_invoice", 1003, "invoice.payment_failed"));
    const ignored = await deliver(base, invoice.body, invoice.signature);
    assert.equal(ignored.json.status, "ignored");
    assert.match(String(ignored.json.note), /recorded only/);
    await worker.settled();
    assert.ok(!provisioned.some((p) => p.includes("ACME")));
  });

  it("GET /healthz shows the queue; GET /jobs needs the bearer token", async () => {
    const health = await getJson(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(health.json.queue, { queued: 0, running: 0, done: 1, failed: 1, ignored: 1, refused: 0 });
    const attempts: Record<string, string>[] = [{}, { authorization: "Bearer wrong" }, { authorization: JOBS_TOKEN }, { authorization: `Basic ${JOBS_TOKEN}` }];
    for (const headers of attempts) {
      const denied = await getJson(`${base}/jobs`, headers);
      assert.equal(denied.status, 401, JSON.stringify(headers));
      assert.match(String(denied.json.error), /needs Authorization: Bearer/);
    }
    const jobs = await getJson(`${base}/jobs?status=failed`, { authorization: `Bearer ${JOBS_TOKEN}` });
    assert.equal(jobs.status, 200);
    const list = jobs.json.jobs as { eventId: string; lastError: string }[];
    assert.deepEqual(list.map((j) => j.eventId), ["evt_badid"]);
    assert.match(list[0]!.lastError, /client_reference_id: must be a lowercase DNS label/);
    assert.equal((await getJson(`${base}/jobs?status=bogus`, { authorization: `Bearer ${JOBS_TOKEN}` })).status, 400);
    assert.equal((await getJson(`${base}/nowhere`)).status, 404);
    assert.equal((await fetch(`${base}/webhooks/stripe`)).status, 405);
    assert.equal(bearerMatches(`Bearer ${JOBS_TOKEN}`, undefined), false, "no token configured: /jobs is closed");
  });

  it("answers in milliseconds while a job runs: the request only records", async () => {
    const slow = sign(checkoutCompleted("evt_slow", 2000, "slow", "starter"));
    assert.equal((await deliver(base, slow.body, slow.signature)).status, 200);
    while (!provisioned.includes("slow starter")) await new Promise((r) => setTimeout(r, 5));
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const d = sign(subscriptionUpdated(`evt_fast_${i}`, 3000 + i, `fast${i}`, "standard", "starter"));
      const answer = await deliver(base, d.body, d.signature);
      assert.equal(answer.status, 200);
      times.push(answer.ms);
    }
    times.sort((a, b) => a - b);
    const p50 = times[10]!;
    const max = times[19]!;
    assert.ok(p50 < 50 && max < 250, `webhook answers took p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms while a job ran`);
    assert.equal(queue.jobForEvent("evt_slow")!.status, "running");
    release();
    await worker.settled();
    assert.equal(queue.jobForEvent("evt_slow")!.status, "done");
  });
});
