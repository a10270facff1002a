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
 *
 * Secrets reach no child: `fleet up` and `fleet serve` run with canary values in STRIPE_WEBHOOK_SECRET,
 * FLEET_JOBS_TOKEN and HF_REGISTRY_PASSWORD, and every process but fleet's own (pulumi, the language
 * host, the program, the plugins, the dynamic providers) is watched every 50 ms: no canary may appear.
 * Payments act only on their own customer: a stranger's checkout naming a paying customer is refused,
 * and that customer's container and plan are unchanged; `fleet list --json` shows each binding.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { randomBytes } from "node:crypto";
import { JobQueue } from "../../src/webhooks/queue";
import { fleet, killLeftovers, orphanedPlugins, show, startedGroups, startFleet, type LongRun } from "../support/cli";
import { customerNames } from "../../src/hardening/names";
import { customerContainer, engine, removeCustomers } from "../support/engine";
import { copyProject, useEdge } from "../support/projectCopy";
import { watchEnvirons, type EnvironWatch } from "./environPoller";
import { checkoutCompleted, deliver, getJson, sign, subscriptionUpdated, type TestEvent } from "./support";

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

// canaries: unique to this run, so no other process on this host can hold them by chance
const tag = randomBytes(8).toString("hex");
const SECRETS = {
  STRIPE_WEBHOOK_SECRET: `whsec_canary${tag}`, FLEET_JOBS_TOKEN: `jobs-canary-${tag}`,
  HF_REGISTRY_PASSWORD: `registry-canary-${tag}`, HF_REGISTRY_USERNAME: "registry-user",
};
const CANARIES = [SECRETS.STRIPE_WEBHOOK_SECRET, SECRETS.FLEET_JOBS_TOKEN, SECRETS.HF_REGISTRY_PASSWORD];

/** Stops the watch and asserts that no canary reached a process and that it saw pulumi's. */
const watches: EnvironWatch[] = [];
function watch(): EnvironWatch {
  const w = watchEnvirons(CANARIES);
  watches.push(w);
  return w;
}

async function noSecretsLeaked(watch: EnvironWatch, what: string): Promise<string> {
  const { leaks, pulumiProcesses, polls } = await watch.stop();
  assert.deepEqual(leaks.slice(0, 5), [], `${what}: fleet's secrets reached child processes`);
  assert.ok(pulumiProcesses.size >= 1, `${what}: the watch saw no pulumi process in ${polls} polls`);
  return `${what}: ${polls} polls, ${pulumiProcesses.size} pulumi processes seen, none holding a secret: ` +
    [...pulumiProcesses].map((p) => p.split(" ")[1]?.split("/").pop()).filter((v, i, a) => a.indexOf(v) === i).join(", ");
}

describe("fleet serve on the real engines: a burst of payments, a kill -9, a restart", { timeout: 20 * 60_000 }, () => {
  const ctx = copyProject();
  const db = path.join(ctx.root, ".fleet", "webhooks", "queue.db");
  const env = SECRETS;
  let upWatched = "";
  const pluginsBefore = orphanedPlugins();
  const cleanDocker = () => removeCustomers([...IDS, "whkept"].map((id): [string, string] => ["staging", id]), [["staging", "edge-wh"]]);

  const serve = async (): Promise<{ run: LongRun; base: string }> => {
    const run = startFleet(ctx.root, ["serve", "--env", "staging", "--listen", "127.0.0.1:0", "--db", db, "--concurrency", "2",
      "--retry-delay", "2"], env);
    for (const w of watches) w.addRoot(run.child.pid!); // before it can be polled: its own environ holds the secrets
    const m = await run.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\/webhooks\/stripe/);
    return { run, base: m[1]! };
  };
  const counts = async (base: string) => (await getJson(`${base}/healthz`)).json.queue as Record<string, number>;

  before(async () => {
    await cleanDocker();
    useEdge(ctx.root, "staging", "edge-wh", 19300, 19301);
    // `fleet up` from a shell that holds the secrets: none reaches pulumi or anything it starts
    const upWatch = watch();
    const known = new Set(startedGroups);
    const running = fleet(ctx.root, ["up", "staging"], { env: SECRETS });
    upWatch.addRoot([...startedGroups].find((pid) => !known.has(pid))!);
    const up = await running;
    assert.equal(up.code, 0, show(up));
    upWatched = await noSecretsLeaked(upWatch, "fleet up staging");
  });

  after(async () => {
    for (const w of watches) await w.stop();
    killLeftovers(pluginsBefore);
    await cleanDocker();
    fs.rmSync(ctx.root, { recursive: true, force: true });
  });

  it("ends with exactly the 10 paying customers healthy on their plans; a forged event and a stranger's checkout change nothing; no secret reaches a child", async (t) => {
    const accepted = new Set<string>();
    t.diagnostic(upWatched);
    const serveWatch = watch();
    const post = async (base: string, event: TestEvent) => {
      const d = sign(event, { secret: SECRETS.STRIPE_WEBHOOK_SECRET });
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
    const stale = sign(checkout(1), { secret: SECRETS.STRIPE_WEBHOOK_SECRET, timestamp: Math.floor(Date.now() / 1000) - 3600 });
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

    t.diagnostic(await noSecretsLeaked(serveWatch, "fleet serve's deployments"));

    // a stranger's payment link naming wh1 (a paying customer) on a bigger plan: refused, wh1 untouched
    const before = await customerContainer("staging", "wh1");
    assert.ok(before, "wh1 runs");
    const stranger = checkoutCompleted("evt_wh_stranger", T0 + 900, "wh1", "standard", "paid", { stripeCustomer: "cus_mallory", subscription: "sub_mallory" });
    const answer = await post(second.base, stranger);
    // a data volume kept by a CLI deprovision, bound to nobody: a checkout naming it does not take it over
    await engine.createVolume({ Name: customerNames("staging", "whkept").dataVolume });
    const kept = await post(second.base, checkoutCompleted("evt_wh_kept", T0 + 901, "whkept", "starter"));
    for (;;) {
      const q = await counts(second.base);
      if (q.queued === 0 && q.running === 0) break;
      await sleep(200);
    }
    const refusedJob = await getJson(`${second.base}/jobs?status=refused`, { authorization: `Bearer ${SECRETS.FLEET_JOBS_TOKEN}` });
    const refused = refusedJob.json.jobs as { id: number; eventId: string; lastError: string }[];
    assert.deepEqual(refused.map((j) => [j.id, j.eventId]), [[answer.json.job, "evt_wh_stranger"], [kept.json.job, "evt_wh_kept"]]);
    assert.match(refused[0]!.lastError, /staging\/wh1 is bound to Stripe customer cus_wh1 .*this event comes from cus_mallory/);
    assert.match(refused[1]!.lastError, /staging\/whkept exists but is bound to no Stripe customer/);
    assert.equal(await customerContainer("staging", "whkept"), undefined);
    const afterRefusal = await customerContainer("staging", "wh1");
    assert.equal(afterRefusal?.Id, before.Id, "wh1's container was replaced");
    assert.equal(afterRefusal?.HostConfig.Memory, before.HostConfig.Memory, "wh1's limits changed");

    // the fleet: exactly the 10 customers, healthy, on the right plans (wh1 still starter), audit clean, each bound to its payer
    const listed = await fleet(ctx.root, ["list", "--env", "staging", "--json"]);
    assert.equal(listed.code, 0, show(listed));
    const rows = JSON.parse(listed.stdout) as { customer: string; plan: string; health: string; binding: { stripeCustomer: string; subscription: string } | null }[];
    assert.deepEqual(rows.map((r) => r.customer).sort(), [...IDS].sort());
    for (const r of rows) {
      assert.deepEqual([r.binding?.stripeCustomer, r.binding?.subscription], [`cus_${r.customer}`, `sub_${r.customer}`], r.customer);
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
