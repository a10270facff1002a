/**
 * `fleet serve` on the real engines: Stripe-signed events over real HTTP turn into real provisioning
 * (Pulumi and Docker) in a throwaway copy of the project's staging environment.
 *
 * A burst of 30 deliveries for 10 customers (10 checkouts, 4 upgrades, some delivered before the
 * checkout they follow, and 16 duplicates), with the server's whole process group (server, pulumi,
 * plugins) killed with SIGKILL in the middle of the burst while a deployment runs, then a restart and
 * the rest of the burst. A forged delivery changes nothing. At the end exactly those 10 customers run,
 * healthy, audit-clean, each on the plan its newest event asks for, and every job is done or
 * superseded, none failed.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { JobQueue } from "../../src/webhooks/queue";
import { fleet, killLeftovers, orphanedPlugins, show, startFleet, type LongRun } from "../support/cli";
import { removeCustomers } from "../support/engine";
import { copyProject, useEdge } from "../support/projectCopy";
import { checkoutCompleted, deliver, getJson, JOBS_TOKEN, SECRET, sign, subscriptionUpdated, type TestEvent } from "./support";

const IDS = Array.from({ length: 10 }, (_, i) => `wh${i}`);
const T0 = 1_790_000_000;
const checkout = (i: number) => checkoutCompleted(`evt_wh_checkout_${i}`, T0 + 10 * i, IDS[i], "starter");
const upgrade = (i: number) => subscriptionUpdated(`evt_wh_upgrade_${i}`, T0 + 10 * i + 5, IDS[i], "standard", "starter");
const UPGRADED = new Set([0, 3, 6, 9]);

/** 30 deliveries: upgrades of wh3 and wh9 ahead of their checkouts, and a duplicate of nearly everything. */
const firstHalf: TestEvent[] = [checkout(0), checkout(1), upgrade(3), checkout(2), checkout(3), checkout(0), upgrade(0), checkout(4),
  checkout(1), checkout(5), upgrade(0), checkout(2), checkout(6), checkout(3), checkout(4)];
const secondHalf: TestEvent[] = [upgrade(9), checkout(7), upgrade(6), checkout(8), checkout(5), checkout(9), checkout(6), upgrade(3),
  checkout(7), upgrade(6), checkout(8), upgrade(9), checkout(9), checkout(0), upgrade(0)];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("fleet serve on the real engines: a burst of payments, a kill -9, a restart", { timeout: 20 * 60_000 }, () => {
  const ctx = copyProject();
  const db = path.join(ctx.root, ".fleet", "webhooks", "queue.db");
  const env = { STRIPE_WEBHOOK_SECRET: SECRET, FLEET_JOBS_TOKEN: JOBS_TOKEN };
  const pluginsBefore = orphanedPlugins();
  const cleanDocker = () => removeCustomers(IDS.map((id): [string, string] => ["staging", id]), [["staging", "edge-wh"]]);

  const serve = async (): Promise<{ run: LongRun; base: string }> => {
    const run = startFleet(ctx.root, ["serve", "--env", "staging", "--listen", "127.0.0.1:0", "--db", db, "--concurrency", "2",
      "--retry-delay", "2"], env);
    const m = await run.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\/webhooks\/stripe/);
    return { run, base: m[1]! };
  };
  const counts = async (base: string) => (await getJson(`${base}/healthz`)).json.queue as Record<string, number>;

  before(async () => {
    await cleanDocker();
    useEdge(ctx.root, "staging", "edge-wh", 18800, 18801);
    const up = await fleet(ctx.root, ["up", "staging"]);
    assert.equal(up.code, 0, show(up));
  });

  after(async () => {
    killLeftovers(pluginsBefore);
    await cleanDocker();
    fs.rmSync(ctx.root, { recursive: true, force: true });
  });

  it("ends with exactly the 10 paying customers healthy on their plans; a forged event changes nothing", async (t) => {
    const accepted = new Set<string>();
    const post = async (base: string, event: TestEvent) => {
      const d = sign(event);
      const answer = await deliver(base, d.body, d.signature);
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      accepted.add(event.id);
      return answer;
    };

    // the first half, then SIGKILL of the whole process group while a deployment runs
    const first = await serve();
    const latencies: number[] = [];
    for (const event of firstHalf) latencies.push((await post(first.base, event)).ms);
    const forged = sign(checkoutCompleted("evt_wh_forged", T0 + 999, "intruder", "standard"), { secret: "whsec_not_ours" });
    assert.equal((await deliver(first.base, forged.body, forged.signature)).status, 400);
    const stale = sign(checkout(1), { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    assert.equal((await deliver(first.base, stale.body, stale.signature)).status, 400);
    // a deployment is under way: its pulumi up has begun creating resources
    const started = Date.now();
    while (!/\[staging-wh\d\] .*creating/.test(first.run.stderr())) {
      assert.ok(Date.now() - started < 180_000, `no deployment began:\n${first.run.stderr().slice(-3000)}`);
      await sleep(100);
    }
    await sleep(1500);
    assert.ok(((await counts(first.base)).running ?? 0) >= 1, "no job running at the kill");
    process.kill(-first.run.child.pid!, "SIGKILL");
    assert.equal((await first.run.exited).signal, "SIGKILL");

    // restart: unfinished jobs resume; the second half of the burst arrives
    const second = await serve();
    await second.run.waitFor(/listening/);
    assert.match(second.run.stderr(), /job\(s\) interrupted by the end of the previous process are queued again/);
    for (const event of secondHalf) latencies.push((await post(second.base, event)).ms);
    t.diagnostic(`webhook answers while jobs ran: max ${Math.max(...latencies).toFixed(0)} ms over ${latencies.length} deliveries`);

    const deadline = Date.now() + 15 * 60_000;
    for (;;) {
      const q = await counts(second.base);
      if (q.queued === 0 && q.running === 0) break;
      assert.ok(Date.now() < deadline, `the queue did not settle: ${JSON.stringify(q)}\n${second.run.stderr().slice(-3000)}`);
      await sleep(1000);
    }

    // the queue: one job per accepted event, none failed, nothing from the forged or stale deliveries
    const queue = JobQueue.open(db, { readOnly: true });
    const jobs = queue.list({ limit: 1000 });
    queue.close();
    assert.deepEqual(new Set(jobs.map((j) => j.eventId)), accepted);
    assert.equal(accepted.size, 14);
    for (const job of jobs) {
      assert.ok(job.status === "done" || (job.status === "ignored" && /^superseded: /.test(job.note ?? "")),
        `job ${job.eventId} ended ${job.status}: ${job.lastError ?? job.note}\n${second.run.stderr().slice(-3000)}`);
    }
    assert.ok(jobs.some((j) => j.interrupted > 0), "the job cut short by the kill ran again");

    // the fleet: exactly the 10 customers, healthy, on the right plans, audit clean
    const listed = await fleet(ctx.root, ["list", "--env", "staging", "--json"]);
    assert.equal(listed.code, 0, show(listed));
    const rows = JSON.parse(listed.stdout) as { customer: string; plan: string; health: string }[];
    assert.deepEqual(rows.map((r) => r.customer).sort(), [...IDS].sort());
    for (const r of rows) {
      assert.equal(r.health, "healthy", `${r.customer}: ${r.health}`);
      assert.equal(r.plan, UPGRADED.has(IDS.indexOf(r.customer)) ? "standard" : "starter", r.customer);
    }
    // this test's containers: others on this engine (a demo's, say) are not this test's to judge
    const audit = await fleet(ctx.root, ["audit", "--env", "staging"]);
    assert.doesNotMatch(audit.stdout, /hf-staging-(wh\d|edge-wh)\S* .*FAIL/, show(audit));
    for (const id of IDS) assert.match(audit.stdout, new RegExp(`hf-staging-${id}-[0-9a-f]{8} .*PASS`));
    assert.match(audit.stdout, /hf-staging-edge-wh .*PASS/);
    assert.doesNotMatch(listed.stdout, /intruder/);

    second.run.child.kill("SIGTERM");
    assert.equal((await second.run.exited).code, 0);
  });
});
