/**
 * The webhook job queue (a real SQLite file) and its worker on fake fleet operations: duplicates,
 * order per customer, superseded late events, the concurrency limit, retries with backoff, invalid
 * requests failing at once, and jobs of a killed process running again after a restart.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { JobQueue } from "../../src/webhooks/queue";
import { parseEnvelope } from "../../src/webhooks/signature";
import { decideEvent } from "../../src/webhooks/stripeEvents";
import { retryDelayMs, Worker, type FleetOperations, type JobRun } from "../../src/webhooks/worker";
import { checkoutCompleted, invoiceEvent, subscriptionDeleted, subscriptionUpdated, type TestEvent } from "../webhooks/support";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-webhooks-queue-"));
let n = 0;
const freshQueue = () => JobQueue.open(path.join(dir, `q${++n}`, "queue.db"));

function accept(queue: JobQueue, e: TestEvent) {
  const event = parseEnvelope(JSON.parse(JSON.stringify(e)));
  return queue.accept(event, "prod", decideEvent(event, "prod"), new Date());
}

interface Call { op: "provision" | "deprovision"; customer: string; plan?: string; eventId: string; start: number; end?: number }

/** Fake operations: record each call, take `delayMs`, and fail as `behaviour` says for a customer. */
class FakeOps implements FleetOperations {
  calls: Call[] = [];
  active = 0;
  maxActive = 0;
  activeCustomers = new Set<string>();
  overlapSameCustomer = false;
  constructor(private delayMs = 5, private behaviour: (customer: string, call: number) => Error | undefined = () => undefined) {}

  private async act(call: Call): Promise<void> {
    if (this.activeCustomers.has(call.customer)) this.overlapSameCustomer = true;
    this.activeCustomers.add(call.customer);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.calls.push(call);
    try {
      await new Promise((r) => setTimeout(r, this.delayMs));
      const err = this.behaviour(call.customer, this.calls.filter((c) => c.customer === call.customer).length);
      if (err) throw err;
    } finally {
      call.end = Date.now();
      this.active--;
      this.activeCustomers.delete(call.customer);
    }
  }

  provision(req: { customer: string; plan: string }, run: JobRun) {
    return this.act({ op: "provision", customer: req.customer, plan: req.plan, eventId: run.eventId, start: Date.now() });
  }

  deprovision(req: { customer: string }, run: JobRun) {
    return this.act({ op: "deprovision", customer: req.customer, eventId: run.eventId, start: Date.now() });
  }
}

const quiet = () => {};

async function runAll(queue: JobQueue, ops: FleetOperations, opts: ConstructorParameters<typeof Worker>[2] = {}): Promise<Worker> {
  const worker = new Worker(queue, ops, { log: quiet, pollMs: 20, retryBaseMs: 10, ...opts });
  worker.start();
  await worker.settled();
  await worker.stop();
  return worker;
}

describe("webhook job queue", () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a duplicate delivery is recognised by the event id: one event, one job, nothing written again", () => {
    const queue = freshQueue();
    const first = accept(queue, checkoutCompleted("evt_dup", 100, "acme", "starter"));
    const again = accept(queue, checkoutCompleted("evt_dup", 100, "acme", "starter"));
    assert.equal(first.duplicate, false);
    assert.equal(again.duplicate, true);
    assert.equal(again.job.id, first.job.id);
    assert.equal(queue.eventCount(), 1);
    assert.deepEqual(queue.counts(), { queued: 1, running: 0, done: 0, failed: 0, ignored: 0, refused: 0 });
    queue.close();
  });

  it("a customer's jobs run one at a time in the order of their events' created time, not of arrival", async () => {
    const queue = freshQueue();
    accept(queue, subscriptionUpdated("evt_c", 300, "acme", "standard", "starter"));
    accept(queue, checkoutCompleted("evt_a", 100, "acme", "starter"));
    accept(queue, subscriptionUpdated("evt_b", 200, "acme", "starter", "standard"));
    const ops = new FakeOps(10);
    await runAll(queue, ops, { concurrency: 3 });
    assert.deepEqual(ops.calls.map((c) => c.eventId), ["evt_a", "evt_b", "evt_c"]);
    assert.equal(ops.overlapSameCustomer, false);
    assert.deepEqual(queue.appliedState().map((s) => [s.customer, s.lastEventId, s.plan]), [["acme", "evt_c", "standard"]]);
    queue.close();
  });

  it("an event older than one already applied for the customer is superseded: recorded, never run", async () => {
    const queue = freshQueue();
    accept(queue, checkoutCompleted("evt_new", 200, "acme", "standard"));
    const ops = new FakeOps();
    await runAll(queue, ops);
    // Stripe delivers the older event late
    const late = accept(queue, checkoutCompleted("evt_old", 100, "acme", "starter"));
    const lateDeletion = accept(queue, subscriptionDeleted("evt_older", 150, "acme"));
    assert.equal(late.job.status, "queued");
    await runAll(queue, ops);
    assert.deepEqual(ops.calls.map((c) => c.eventId), ["evt_new"]);
    for (const id of [late.job.id, lateDeletion.job.id]) {
      const job = queue.job(id)!;
      assert.equal(job.status, "ignored");
      assert.match(job.note ?? "", /^superseded: evt_new \(created 200\) is newer and was applied first/);
    }
    assert.equal(queue.appliedState()[0]!.plan, "standard");
    // a newer event still runs
    accept(queue, subscriptionDeleted("evt_newest", 300, "acme"));
    await runAll(queue, ops);
    assert.deepEqual(ops.calls.map((c) => `${c.op} ${c.eventId}`), ["provision evt_new", "deprovision evt_newest"]);
    queue.close();
  });

  it("different customers run concurrently up to the limit, never two jobs of one customer at once", async () => {
    const queue = freshQueue();
    for (let i = 0; i < 6; i++) accept(queue, checkoutCompleted(`evt_${i}`, 100 + i, `cust${i}`, "starter"));
    accept(queue, subscriptionUpdated("evt_6", 200, "cust0", "standard", "starter"));
    const ops = new FakeOps(40);
    await runAll(queue, ops, { concurrency: 2 });
    assert.equal(ops.maxActive, 2);
    assert.equal(ops.overlapSameCustomer, false);
    assert.equal(ops.calls.length, 7);
    const three = freshQueue();
    for (let i = 0; i < 6; i++) accept(three, checkoutCompleted(`evt_${i}`, 100 + i, `cust${i}`, "starter"));
    const wider = new FakeOps(40);
    await runAll(three, wider, { concurrency: 3 });
    assert.equal(wider.maxActive, 3);
    queue.close();
    three.close();
  });

  it("a failing job is retried with exponential backoff, then stops as failed with its reason", async () => {
    assert.deepEqual([1, 2, 3, 4].map((a) => retryDelayMs(a, 30_000, 600_000)), [30_000, 60_000, 120_000, 240_000]);
    assert.equal(retryDelayMs(10, 30_000, 600_000), 600_000);
    const queue = freshQueue();
    const { job } = accept(queue, checkoutCompleted("evt_fail", 100, "acme", "starter"));
    const ops = new FakeOps(1, () => new Error("docker engine unreachable"));
    await runAll(queue, ops, { maxAttempts: 3, retryBaseMs: 40 });
    assert.equal(ops.calls.length, 3);
    const gaps = [ops.calls[1]!.start - ops.calls[0]!.end!, ops.calls[2]!.start - ops.calls[1]!.end!];
    assert.ok(gaps[0]! >= 35 && gaps[1]! >= 75, `waits ${gaps.join(", ")} ms: expected about 40 then 80`);
    const failed = queue.job(job.id)!;
    assert.equal(failed.status, "failed");
    assert.equal(failed.attempts, 3);
    assert.match(failed.lastError ?? "", /^docker engine unreachable\n {2}\(gave up after 3 attempts: fix the cause, then 'fleet jobs --retry \d+'\)/);
    assert.deepEqual(queue.appliedState(), []);
    // after fixing the cause, the operator queues it again
    queue.retryFailed(job.id, new Date());
    await runAll(queue, new FakeOps());
    assert.equal(queue.job(job.id)!.status, "done");
    queue.close();
  });

  it("a transient failure succeeds on a later attempt; a customer's later job waits for the retry", async () => {
    const queue = freshQueue();
    accept(queue, checkoutCompleted("evt_1", 100, "acme", "starter"));
    accept(queue, subscriptionUpdated("evt_2", 200, "acme", "standard", "starter"));
    const ops = new FakeOps(1, (_c, call) => (call === 1 ? new Error("another fleet operation holds 'stack.prod-acme'") : undefined));
    await runAll(queue, ops, { retryBaseMs: 30 });
    assert.deepEqual(ops.calls.map((c) => c.eventId), ["evt_1", "evt_1", "evt_2"]);
    const first = queue.jobForEvent("evt_1")!;
    assert.equal(first.status, "done");
    assert.equal(first.attempts, 2);
    assert.equal(first.lastError, null);
    queue.close();
  });

  it("an invalid customer id fails at once without running; a ConfigError from the operation is never retried", async () => {
    const queue = freshQueue();
    const bad = accept(queue, checkoutCompleted("evt_bad", 100, "Acme_Corp", "starter"));
    assert.equal(bad.job.status, "failed");
    assert.equal(bad.job.attempts, 0);
    assert.match(bad.job.lastError ?? "", /client_reference_id: must be a lowercase DNS label/);
    assert.throws(() => queue.retryFailed(bad.job.id, new Date()), /was refused on its event's content and never ran .*needs a new Stripe event/);
    const plan = accept(queue, checkoutCompleted("evt_plan", 100, "acme", "gold"));
    const ops = new FakeOps(1, () => new ConfigError("--plan", [{ path: "--plan", found: '"gold"', message: "must be one of the plans of 'prod': starter, standard, sandboxed" }]));
    await runAll(queue, ops, { maxAttempts: 3 });
    assert.equal(ops.calls.length, 1);
    assert.deepEqual(ops.calls.map((c) => c.customer), ["acme"]);
    const job = queue.job(plan.job.id)!;
    assert.equal(job.status, "failed");
    assert.equal(job.attempts, 1);
    assert.equal(job.lastError, "invalid request, nothing was created: --plan: must be one of the plans of 'prod': starter, standard, sandboxed (found \"gold\")");
    queue.close();
  });

  it("payment and unknown events are recorded as ignored and never run", async () => {
    const queue = freshQueue();
    const paid = accept(queue, invoiceEvent("evt_inv", 100, "invoice.payment_failed"));
    assert.equal(paid.job.status, "ignored");
    assert.equal(paid.job.action, null);
    const ops = new FakeOps();
    await runAll(queue, ops);
    assert.equal(ops.calls.length, 0);
    queue.close();
  });

  it("jobs running when the process died are queued again at the next start and run to completion once", async () => {
    const file = path.join(dir, "restart", "queue.db");
    const first = JobQueue.open(file);
    accept(first, checkoutCompleted("evt_1", 100, "acme", "starter"));
    accept(first, checkoutCompleted("evt_2", 100, "globex", "standard"));
    const claimed = first.claim(new Date())!; // running, as if the process was killed during its deployment
    assert.equal(claimed.status, "running");
    first.close();

    const second = JobQueue.open(file);
    assert.equal(second.requeueInterrupted(new Date()), 1);
    const requeued = second.job(claimed.id)!;
    assert.equal(requeued.status, "queued");
    assert.equal(requeued.interrupted, 1);
    assert.equal(requeued.attempts, 1, "the interrupted run stays counted");
    const ops = new FakeOps();
    await runAll(second, ops);
    assert.deepEqual(ops.calls.map((c) => c.eventId).sort(), ["evt_1", "evt_2"]);
    assert.deepEqual(second.counts(), { queued: 0, running: 0, done: 2, failed: 0, ignored: 0, refused: 0 });
    assert.equal(second.requeueInterrupted(new Date()), 0);
    second.close();
  });

  it("a job interrupted on its last attempt stops as failed at the next start instead of running again", () => {
    const file = path.join(dir, "crashloop", "queue.db");
    let queue = JobQueue.open(file);
    const { job } = accept(queue, checkoutCompleted("evt_crash", 100, "acme", "starter"));
    for (let run = 1; run <= 2; run++) {
      assert.equal(queue.claim(new Date())!.attempts, run); // counted durably before the run
      queue.close(); // the process dies during the run
      queue = JobQueue.open(file);
      assert.equal(queue.requeueInterrupted(new Date(), 2), run < 2 ? 1 : 0);
    }
    const failed = queue.job(job.id)!;
    assert.equal(failed.status, "failed");
    assert.equal(failed.attempts, 2);
    assert.equal(failed.interrupted, 2);
    assert.match(failed.lastError!, /^the process ended \(crash, kill -9, power loss\) while attempt 2 ran\n {2}\(gave up after 2 attempts, 2 of them interrupted: fix the cause, then 'fleet jobs --retry \d+'\)$/);
    assert.equal(queue.claim(new Date()), undefined);
    queue.close();
  });

  it("fleet jobs opens the file read-only and says when there is no queue", () => {
    assert.throws(() => JobQueue.open(path.join(dir, "none", "queue.db"), { readOnly: true }), /no job queue at .*none\/queue\.db: 'fleet serve' creates it/);
    const file = path.join(dir, "ro", "queue.db");
    const writer = JobQueue.open(file);
    accept(writer, checkoutCompleted("evt_1", 100, "acme", "starter"));
    const reader = JobQueue.open(file, { readOnly: true });
    assert.equal(reader.list().length, 1);
    assert.throws(() => accept(reader, checkoutCompleted("evt_2", 100, "acme", "starter")), /readonly/i);
    reader.close();
    writer.close();
    assert.equal((fs.statSync(file).mode & 0o777).toString(8), "600");
  });
});
