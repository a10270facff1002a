/**
 * `fleet serve` as a real process (the CLI under tsx, as `npm run fleet` runs it), over real HTTP,
 * with the test-only operations module (test/webhooks/fakeOperations.ts: each operation writes
 * start/done lines to a file and takes 300 ms; nothing is deployed, so no Docker and no Pulumi).
 *
 * A burst of 30 signed deliveries for 10 customers (21 events: duplicates, out-of-order plan changes,
 * deletions, a resubscription) with a kill -9 of the server in the middle of the burst, while jobs
 * run; then a restart, the deliveries that got no 200 sent again (as Stripe does), a bad signature and
 * a late stale event. At the end: no accepted event lost, every job done or superseded, each event's
 * operation completed once (twice only for a run the kill cut short after it finished, which its
 * idempotence makes harmless), and every customer in the state its newest event asks for.
 *
 * Then the attacks on payments: a stranger's checkout naming a paying customer, a stranger's plan
 * change, the deletion of a customer's old subscription, a stranger's checkout after a cancel, a
 * checkout for a customer the CLI made, and a test-mode event on the production-tier environment.
 * Each ends `refused` and runs nothing; the owner's own events (a second subscription, a resubscribe)
 * go through; `fleet bind` re-binds on purpose and `fleet jobs --retry` then runs the refused job.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { BindingStore, defaultBindingsPath } from "../../src/project/bindings";
import { JobQueue, type Job } from "../../src/webhooks/queue";
import {
  checkoutCompleted as testModeCheckout, deliver, getJson, JOBS_TOKEN, live, SECRET, sign, subscriptionDeleted as testModeDeleted,
  subscriptionUpdated as testModeUpdated, type TestEvent,
} from "./support";

const root = path.resolve(__dirname, "..", "..");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "hf-serve-"));
const db = path.join(work, "queue.db");
const opsLog = path.join(work, "ops.log");
const groups = new Set<number>();
// the environment's stack file: `fleet serve` needs its tier (prod is production: live events only)
fs.copyFileSync(path.join(root, "Pulumi.prod.yaml"), path.join(work, "Pulumi.prod.yaml"));

// live-mode events, as Stripe sends them to a production endpoint
const checkoutCompleted = (...a: Parameters<typeof testModeCheckout>) => live(testModeCheckout(...a));
const subscriptionUpdated = (...a: Parameters<typeof testModeUpdated>) => live(testModeUpdated(...a));
const subscriptionDeleted = (...a: Parameters<typeof testModeDeleted>) => live(testModeDeleted(...a));

interface Served {
  child: ChildProcess;
  base: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function env(): NodeJS.ProcessEnv {
  return {
    ...process.env, FLEET_PROJECT_DIR: work, STRIPE_WEBHOOK_SECRET: SECRET, FLEET_JOBS_TOKEN: JOBS_TOKEN,
    FLEET_SERVE_TEST_OPERATIONS: path.join(root, "test", "webhooks", "fakeOperations.ts"),
    FAKE_OPS_LOG: opsLog, FAKE_OPS_DELAY_MS: "300", FAKE_OPS_EXISTING: "legacy",
  };
}

function fleet(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(root, "src", "cli", "main.ts"), ...args],
    { cwd: root, env: env(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  groups.add(child.pid!);
  return child;
}

/** Starts `fleet serve` on a free port and resolves once it listens. */
async function serve(queueFile = db): Promise<Served> {
  const child = fleet(["serve", "--listen", "127.0.0.1:0", "--db", queueFile, "--concurrency", "2"]);
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })));
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleet serve did not listen within 30 s:\n${stderr}`)), 30_000);
    child.stdout!.on("data", (c: Buffer) => {
      stdout += c.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\/webhooks\/stripe/.exec(stdout);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    });
    void exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`fleet serve exited (${code}) before listening:\n${stderr}`)); });
  });
  return { child, base, stderr: () => stderr, exited };
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = fleet(args);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => { stdout += c.toString(); });
  child.stderr!.on("data", (c: Buffer) => { stderr += c.toString(); });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The operations log: lines `start|done <event> provision|deprovision <customer> <plan|->`. */
function opsLines(): { kind: string; eventId: string; op: string; customer: string; plan: string }[] {
  if (!fs.existsSync(opsLog)) return [];
  return fs.readFileSync(opsLog, "utf8").split("\n").filter(Boolean).map((l) => {
    const [kind, eventId, op, customer, plan] = l.split(" ") as [string, string, string, string, string];
    return { kind, eventId, op, customer, plan };
  });
}

/** A job is running right now: a start line without its done line. */
function aJobRuns(): boolean {
  const open = new Map<string, number>();
  for (const l of opsLines()) open.set(l.eventId, (open.get(l.eventId) ?? 0) + (l.kind === "start" ? 1 : -1));
  return [...open.values()].some((n) => n > 0);
}

function readQueue<T>(fn: (q: JobQueue) => T, file = db): T {
  const q = JobQueue.open(file, { readOnly: true });
  try {
    return fn(q);
  } finally {
    q.close();
  }
}

async function settle(base: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { json } = await getJson(`${base}/healthz`);
    const q = json.queue as Record<string, number>;
    if (q.queued === 0 && q.running === 0) return;
    if (Date.now() > deadline) throw new Error(`queue not settled after 30 s: ${JSON.stringify(q)}`);
    await sleep(100);
  }
}

// 10 customers, 21 events; created times in Stripe's unix seconds
const T0 = 1_790_000_000;
const c = (i: number) => `cust${i}`;
const checkout = (i: number, plan = "starter", extra = 1, id = `evt_checkout_${i}`) => checkoutCompleted(id, T0 + 10 * i + extra, c(i), plan);
const upgrade = (i: number) => subscriptionUpdated(`evt_upgrade_${i}`, T0 + 10 * i + 5, c(i), "standard", "starter");
const upd8a = subscriptionUpdated("evt_upgrade_8", T0 + 85, c(8), "standard", "starter");
const upd8b = subscriptionUpdated("evt_downgrade_8", T0 + 87, c(8), "starter", "standard");
const del6 = subscriptionDeleted("evt_cancel_6", T0 + 68, c(6));
const del7 = subscriptionDeleted("evt_cancel_7", T0 + 76, c(7));
const resub7 = checkout(7, "standard", 9, "evt_resubscribe_7");

/** Before the kill: 12 events and 3 duplicates, newer plan changes ahead of the checkouts they follow. */
const burstA: TestEvent[] = [
  upgrade(0), checkout(0), checkout(1), upgrade(1), upgrade(2), checkout(2), checkout(0), checkout(3),
  upd8b, checkout(4), upgrade(0), upgrade(3), checkout(5), checkout(1), upgrade(4),
];
/** Around the kill: 9 events and 6 duplicates. */
const burstB: TestEvent[] = [
  checkout(6), del6, checkout(8), upd8a, checkout(7), resub7, del7, upd8b, checkout(9), upgrade(5),
  del6, checkout(9), resub7, upgrade(4), checkout(5),
];
const stale = subscriptionUpdated("evt_stale_0", T0 + 2, c(0), "starter", "standard");

/** What each customer ends as: the plan it runs, or absent (deprovisioned). */
const expected = new Map<string, string | undefined>([
  ...[0, 1, 2, 3, 4, 5].map((i) => [c(i), "standard"] as const), [c(6), undefined], [c(7), "standard"], [c(8), "starter"], [c(9), "starter"],
]);

describe("fleet serve as a process: burst, kill -9, restart; payments acting only on their own customer", { timeout: 120_000 }, () => {
  after(() => {
    for (const pgid of groups) {
      try { process.kill(-pgid, "SIGKILL"); } catch { /* gone */ }
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("loses no accepted event, completes each event once and ends with every customer in its right plan", async (t) => {
    const accepted = new Set<string>();
    const unanswered: TestEvent[] = [];

    // 1. the first half of the burst
    const first = await serve();
    for (const event of burstA) {
      const d = sign(event);
      const answer = await deliver(first.base, d.body, d.signature);
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      accepted.add(event.id);
    }

    // 2. once cust8's downgrade (delivered ahead of its checkout and upgrade) is applied, the second
    //    half all at once, and kill -9 while deliveries are in flight and a job runs
    while (!opsLines().some((l) => l.kind === "done" && l.eventId === upd8b.id)) await sleep(5);
    while (!aJobRuns()) await sleep(5);
    let answered = 0;
    let killed = false;
    const kill = () => {
      if (!killed) first.child.kill("SIGKILL");
      killed = true;
    };
    const inFlight = burstB.map(async (event) => {
      const d = sign(event);
      try {
        const answer = await deliver(first.base, d.body, d.signature);
        answered++;
        if (answered >= 5 && aJobRuns()) kill(); // at once, in the same tick: the other deliveries are in flight
        if (answer.status === 200) accepted.add(event.id);
        else unanswered.push(event);
      } catch {
        unanswered.push(event); // connection refused or reset: Stripe sees no 200 and delivers again
      }
    });
    await Promise.all(inFlight);
    kill();
    assert.equal((await first.exited).signal, "SIGKILL");

    // every event that got a 200 is in the queue; the kill cut a job short
    const afterKill = readQueue((q) => ({ counts: q.counts(), ids: new Set(q.list({ limit: 1000 }).map((j) => j.eventId)) }));
    for (const id of accepted) assert.ok(afterKill.ids.has(id), `accepted event ${id} was lost by the kill`);
    assert.ok(afterKill.counts.running >= 1, `no job was running at the kill: ${JSON.stringify(afterKill.counts)}`);
    t.diagnostic(`at the kill: ${afterKill.ids.size} events in the queue, ${unanswered.length} of ${burstB.length} deliveries unanswered, ` +
      `jobs ${JSON.stringify(afterKill.counts)}`);

    // 3. restart; Stripe delivers again what got no 200, with fresh signatures
    const second = await serve();
    assert.match(second.stderr(), /\d+ job\(s\) interrupted by the end of the previous process are queued again/);
    // a second server on the same queue would run its jobs twice: it waits 10 s for the lock, then gives up
    const rival = run(["serve", "--listen", "127.0.0.1:0", "--db", db]);
    for (const event of unanswered) {
      const d = sign(event);
      const answer = await deliver(second.base, d.body, d.signature);
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      accepted.add(event.id);
    }
    const redelivered = sign(checkout(0));
    assert.equal((await deliver(second.base, redelivered.body, redelivered.signature)).json.duplicate, true);
    const forged = sign(checkoutCompleted("evt_forged", T0 + 999, "intruder", "standard"), { secret: "whsec_not_ours" });
    assert.equal((await deliver(second.base, forged.body, forged.signature)).status, 400);
    await settle(second.base);

    // 4. a stale plan change delivered long after newer ones were applied: superseded
    const late = sign(stale);
    assert.equal((await deliver(second.base, late.body, late.signature)).status, 200);
    await settle(second.base);

    // the queue: 21 events of the burst and the stale one, nothing forged, each done or superseded
    const jobs = readQueue((q) => q.list({ limit: 1000 }));
    const state = readQueue((q) => q.appliedState());
    const unique = new Set([...burstA, ...burstB, stale].map((e) => e.id));
    assert.equal(unique.size, 22);
    assert.deepEqual(new Set(jobs.map((j) => j.eventId)), unique);
    assert.equal(jobs.length, 22, "one job per event");
    for (const job of jobs) {
      assert.ok(job.status === "done" || (job.status === "ignored" && /^superseded: /.test(job.note ?? "")),
        `job ${job.id} (${job.eventId}) ended ${job.status}: ${job.lastError ?? job.note}`);
    }
    // older events arriving after a newer one was applied: superseded, never run
    for (const id of ["evt_stale_0", checkout(8).id, upd8a.id]) assert.equal(jobs.find((j) => j.eventId === id)!.status, "ignored", id);
    assert.ok(jobs.some((j) => j.interrupted > 0), "the job cut short by the kill ran again");
    t.diagnostic(`after the restart: ${jobs.filter((j) => j.status === "done").length} done, ` +
      `${jobs.filter((j) => j.status === "ignored").length} superseded, ${jobs.filter((j) => j.interrupted > 0).length} interrupted and run again`);

    // each event's operation completed once; a second completion only for a run cut short by the kill
    const lines = opsLines();
    const byId = new Map<string, Job>(jobs.map((j) => [j.eventId, j]));
    for (const job of jobs) {
      const completions = lines.filter((l) => l.kind === "done" && l.eventId === job.eventId).length;
      if (job.status === "ignored") assert.equal(completions, 0, `superseded ${job.eventId} ran`);
      else if (job.interrupted === 0) assert.equal(completions, 1, `${job.eventId} completed ${completions} times`);
      else assert.ok(completions === 1 || completions === 2, `${job.eventId} (interrupted) completed ${completions} times`);
    }
    for (const l of lines) assert.ok(byId.has(l.eventId), `operation for unknown event ${l.eventId}`);

    // every customer ends as its newest event says: in the operations' effects and in the queue
    const final = new Map<string, string | undefined>();
    for (const l of lines.filter((x) => x.kind === "done")) {
      if (l.op === "deprovision") final.delete(l.customer);
      else final.set(l.customer, l.plan);
    }
    assert.deepEqual(new Map([...final].sort()), new Map([...expected].filter(([, plan]) => plan !== undefined).sort()));
    const newest = new Map<string, TestEvent>();
    for (const e of [...burstA, ...burstB, stale]) {
      const customer = String((e.data.object.metadata as Record<string, unknown>).customer_id ?? e.data.object.client_reference_id);
      if ((newest.get(customer)?.created ?? 0) < e.created) newest.set(customer, e);
    }
    assert.deepEqual(state.map((s) => [s.customer, s.lastEventId, s.action === "deprovision" ? undefined : s.plan]),
      [...expected].sort().map(([customer, plan]) => [customer, newest.get(customer)!.id, plan]));

    // 5. the operator's views: GET /jobs and `fleet jobs`, reading the same file
    const listed = await getJson(`${second.base}/jobs?limit=1000`, { authorization: `Bearer ${JOBS_TOKEN}` });
    assert.equal((listed.json.jobs as unknown[]).length, 22);
    const table = await run(["jobs", "--db", db, "--limit", "1000"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^job +status +customer +action +plan +event/m);
    assert.match(table.stdout, /ignored +prod\/cust0 +plan-change +starter +customer\.subscription\.updated evt_stale_0 .* superseded: evt_upgrade_0/);
    assert.match(table.stdout, /: 0 queued, 0 running, \d+ done, 0 failed, \d+ ignored/);
    const asJson = await run(["jobs", "--db", db, "--json", "--status", "done"]);
    assert.ok((JSON.parse(asJson.stdout) as { jobs: Job[] }).jobs.every((j) => j.status === "done"));

    const refused = await rival;
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /another fleet operation holds 'serve\.[0-9a-f]+' \(waited 10s\) \(pid \d+/);
    assert.doesNotMatch(refused.stdout, /listening/);

    // 6. SIGTERM: a clean stop
    second.child.kill("SIGTERM");
    assert.deepEqual(await second.exited, { code: 0, signal: null });
    assert.match(second.stderr(), /fleet serve: stopped/);
  });
  it("refuses a stranger's payment, an old subscription's cancel and a test-mode event in production: nothing runs", async () => {
    const authDb = path.join(work, "auth.db");
    const server = await serve(authDb);
    const T1 = T0 + 100_000;
    const acme = (sub: string) => ({ stripeCustomer: "cus_acme", subscription: sub });
    const mallory = { stripeCustomer: "cus_mallory", subscription: "sub_mallory" };
    const events: [TestEvent, string][] = [
      [checkoutCompleted("evt_a1", T1 + 1, "acme", "starter", "paid", acme("sub_a1")), "done"],
      // a payment link opened with ?client_reference_id=acme by somebody else
      [checkoutCompleted("evt_a2", T1 + 2, "acme", "standard", "paid", mallory), "refused"],
      // the owner takes a second subscription: it becomes the current one
      [checkoutCompleted("evt_a3", T1 + 3, "acme", "standard", "paid", acme("sub_a2")), "done"],
      // cancelling the old subscription does not deprovision the customer who has a newer one
      [subscriptionDeleted("evt_a4", T1 + 4, "acme", acme("sub_a1")), "refused"],
      [subscriptionUpdated("evt_a5", T1 + 5, "acme", "starter", "standard", mallory), "refused"],
      [subscriptionDeleted("evt_a6", T1 + 6, "acme", acme("sub_a2")), "done"],
      // after the cancel the data volume is kept, and so is the binding: a stranger cannot take it
      [checkoutCompleted("evt_a7", T1 + 7, "acme", "starter", "paid", mallory), "refused"],
      // the same Stripe customer comes back: re-bound to the new subscription
      [checkoutCompleted("evt_a8", T1 + 8, "acme", "standard", "paid", acme("sub_a3")), "done"],
      // made by the CLI, bound to nobody: a checkout does not take it over
      [checkoutCompleted("evt_l1", T1 + 9, "legacy", "starter", "paid", { stripeCustomer: "cus_legacy", subscription: "sub_legacy" }), "refused"],
      // test mode never acts on a production-tier environment
      [testModeCheckout("evt_g1", T1 + 10, "globex", "starter"), "refused"],
    ];
    for (const [event] of events) {
      const d = sign(event);
      const answer = await deliver(server.base, d.body, d.signature);
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      if (event.id === "evt_g1") assert.equal(answer.json.status, "refused", "refused when accepted, never queued");
    }
    await settle(server.base);

    const jobs = readQueue((q) => q.list({ limit: 100 }), authDb);
    const status = (id: string) => jobs.find((j) => j.eventId === id)!;
    for (const [event, expected] of events) {
      assert.equal(status(event.id).status, expected, `${event.id}: ${status(event.id).lastError ?? status(event.id).note}`);
    }
    assert.match(status("evt_a2").lastError!, /prod\/acme is bound to Stripe customer cus_acme .*this event comes from cus_mallory/);
    assert.match(status("evt_a4").lastError!, /current subscription is sub_a2; this event is about sub_a1/);
    assert.match(status("evt_a7").lastError!, /bound to Stripe customer cus_acme/);
    assert.match(status("evt_l1").lastError!, /prod\/legacy exists but is bound to no Stripe customer[^]*fleet bind legacy --env prod --stripe-customer cus_legacy --subscription sub_legacy/);
    assert.match(status("evt_g1").lastError!, /test-mode event \(livemode false\) never acts on prod, a production-tier environment/);
    // what ran: only the owner's events; nothing for a refused one
    const ran = opsLines().filter((l) => l.kind === "done" && /^evt_[alg]\d$/.test(l.eventId)).map((l) => `${l.eventId} ${l.op} ${l.customer} ${l.plan}`);
    assert.deepEqual(ran, ["evt_a1 provision acme starter", "evt_a3 provision acme standard", "evt_a6 deprovision acme -", "evt_a8 provision acme standard"]);
    const binding = () => BindingStore.readAll(defaultBindingsPath(work)).find((b) => b.customer === "acme");
    assert.deepEqual([binding()?.stripeCustomer, binding()?.subscription, binding()?.boundBy], ["cus_acme", "sub_a3", "event evt_a8"]);

    // the operator's views show the new state
    const health = await getJson(`${server.base}/healthz`);
    assert.equal((health.json.queue as Record<string, number>).refused, 6);
    const table = await run(["jobs", "--db", authDb, "--status", "refused"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /refused +prod\/acme +provision +standard +checkout\.session\.completed evt_a2 .*refused, nothing changed: prod\/acme is bound/);
    assert.match(server.stderr(), /job \d+ provision prod\/acme \(plan standard\) from checkout\.session\.completed evt_a2: refused: /);

    // fleet bind: bad ids are refused naming the field; then the operator binds legacy on purpose and retries its job
    const bad = await run(["bind", "legacy", "--env", "prod", "--stripe-customer", "legacy", "--subscription", "cus_legacy"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--stripe-customer: must be a Stripe customer id/);
    assert.match(bad.stderr, /--subscription: must be a Stripe subscription id/);
    assert.equal(BindingStore.readAll(defaultBindingsPath(work)).some((b) => b.customer === "legacy"), false, "nothing written");
    const bound = await run(["bind", "legacy", "--env", "prod", "--stripe-customer", "cus_legacy", "--subscription", "sub_legacy"]);
    assert.equal(bound.code, 0, bound.stderr);
    assert.match((await run(["bind", "legacy", "--env", "prod", "--show"])).stdout, /prod\/legacy: Stripe customer cus_legacy, subscription sub_legacy \(bound .* by operator\)/);
    const retried = await run(["jobs", "--db", authDb, "--retry", String(status("evt_l1").id)]);
    assert.equal(retried.code, 0, retried.stderr);
    const deadline = Date.now() + 10_000;
    while (readQueue((q) => q.jobForEvent("evt_l1")!.status, authDb) !== "done") {
      assert.ok(Date.now() < deadline, `the retried job did not run: ${JSON.stringify(readQueue((q) => q.jobForEvent("evt_l1"), authDb))}`);
      await sleep(100);
    }
    assert.ok(opsLines().some((l) => l.kind === "done" && l.eventId === "evt_l1"));
    const cleared = await run(["bind", "legacy", "--env", "prod", "--clear"]);
    assert.match(cleared.stdout, /binding cleared \(was cus_legacy\)/);

    server.child.kill("SIGTERM");
    assert.equal((await server.exited).code, 0);
  });
});
