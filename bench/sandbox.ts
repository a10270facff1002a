/**
 * What a sandboxed plan costs, side by side in one run: customers of the plan `standard` (runc, the
 * floor) and of the plan `sandboxed` (the same limits, in gVisor's runsc), provisioned by the fleet
 * CLI in a throwaway copy of the project on the real engines, alternating:
 *  - provision time to healthy (`fleet provision`, a separate process);
 *  - request latency p50 / p99 of GET / through the edge proxy (HTTPS, kept-alive connection);
 *  - requests per second with 8 concurrent clients for 5 s through the proxy;
 *  - memory of the idle customer (the engine's stats: usage less page cache) and host tasks (PIDs cgroup).
 * A benchmark, not a test: nothing is asserted.
 *   npm run bench -- sandbox        BENCH_SANDBOX_CUSTOMERS=3 npm run bench -- sandbox
 */
import * as https from "node:https";
import * as fs from "node:fs";
import Dockerode from "dockerode";
import { formatTable } from "../src/table";
import { fleet, killLeftovers, orphanedPlugins } from "../test/support/cli";
import { customerContainer, removeCustomers } from "../test/support/engine";
import { copyProject, customerUrlIn, dropEncryptionSalt, editEnvironment, useEdge } from "../test/support/projectCopy";
import { latency, timedGet } from "./edge";
import { formatSpread } from "./measure";

const PER_PLAN = Math.max(1, Number(process.env.BENCH_SANDBOX_CUSTOMERS ?? 2));
const ENV = "staging";
const EDGE = "edge-bsb";
const PASSPHRASE = "hardened-fleet-bench";
const PLANS = [["standard", "runc"], ["sandboxed", "runsc"]] as const;
const engine = new Dockerode();
const say = (line: string) => process.stderr.write(`[bench sandbox] ${line}\n`);

/** Requests per second of `url` with `clients` kept-alive clients for `seconds`. */
async function throughput(url: string, clients: number, seconds: number): Promise<number> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: clients });
  const end = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (Date.now() < end) {
      const r = await timedGet(url, agent);
      if (r.status === 200) done++;
    }
  }));
  agent.destroy();
  return done / seconds;
}

/** Memory in use (less page cache) and host tasks of a running container, from one stats read. */
async function footprint(name: string): Promise<{ mib: number; tasks: number }> {
  const s = await engine.getContainer(name).stats({ stream: false }) as unknown as {
    memory_stats: { usage?: number; stats?: { cache?: number; inactive_file?: number } }; pids_stats: { current?: number };
  };
  const cache = s.memory_stats.stats?.inactive_file ?? s.memory_stats.stats?.cache ?? 0;
  return { mib: ((s.memory_stats.usage ?? 0) - cache) / 1048576, tasks: s.pids_stats.current ?? 0 };
}

async function main(): Promise<void> {
  const ctx = copyProject();
  const root = ctx.root;
  const env = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  const pluginsBefore = orphanedPlugins();
  const customers = PLANS.flatMap(([plan]) => Array.from({ length: PER_PLAN }, (_, i) => `bsb-${plan.slice(0, 4)}-${i}`));
  const ok = async (args: string[]) => {
    const r = await fleet(root, args, { env, timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`fleet ${args.join(" ")} exited ${r.code}: ${r.stderr.slice(-2000)}`);
    return r;
  };
  try {
    dropEncryptionSalt(root, ENV);
    useEdge(root, ENV, EDGE, 18740, 18741);
    editEnvironment(root, ENV, (e) => { e.app.healthcheck.intervalSeconds = 2; e.app.healthcheck.startPeriodSeconds = 2; });
    await removeCustomers(customers.map((c) => [ENV, c]), [[ENV, EDGE]]);
    say("fleet up staging (image, edge proxy)");
    await ok(["up", ENV]);
    const provision: Record<string, number[]> = { standard: [], sandboxed: [] };
    for (let i = 0; i < PER_PLAN; i++) {
      for (const [plan] of PLANS) {
        const id = `bsb-${plan.slice(0, 4)}-${i}`;
        const t0 = Date.now();
        await ok(["provision", id, "--env", ENV, "--plan", plan]);
        provision[plan]!.push((Date.now() - t0) / 1000);
        say(`provisioned ${id} (${plan}) in ${provision[plan]!.at(-1)!.toFixed(1)} s`);
      }
    }
    await new Promise((r) => setTimeout(r, 10_000)); // idle a little before the memory read
    const rows: string[][] = [];
    const stats: Record<string, { p50: number[]; p99: number[]; rps: number[]; mib: number[]; tasks: number[] }> = {};
    for (const [plan] of PLANS) stats[plan] = { p50: [], p99: [], rps: [], mib: [], tasks: [] };
    for (let i = 0; i < PER_PLAN; i++) {
      for (const [plan] of PLANS) {
        const id = `bsb-${plan.slice(0, 4)}-${i}`;
        const c = await customerContainer(ENV, id);
        const f = await footprint(c!.Name.replace(/^\//, ""));
        stats[plan]!.mib.push(f.mib);
        stats[plan]!.tasks.push(f.tasks);
        const url = `${customerUrlIn(root, ENV, id)}/`;
        const l = await latency(url, new https.Agent({ keepAlive: true, maxSockets: 1 }), 300);
        stats[plan]!.p50.push(l.p50);
        stats[plan]!.p99.push(l.p99);
        stats[plan]!.rps.push(await throughput(url, 8, 5));
        say(`${id}: p50 ${l.p50.toFixed(1)} ms, ${stats[plan]!.rps.at(-1)!.toFixed(0)} req/s, ${f.mib.toFixed(0)} MiB`);
      }
    }
    const [floor, boxed] = PLANS.map(([plan]) => plan);
    const row = (what: string, key: keyof (typeof stats)[string] | "provision", digits: number) => {
      const of = (plan: string) => (key === "provision" ? provision[plan]! : stats[plan]![key]);
      rows.push([what, formatSpread(of(boxed!), digits), formatSpread(of(floor!), digits)]);
    };
    row("provision to healthy, s", "provision", 1);
    row("GET / through the proxy, p50 ms", "p50", 2);
    row("GET / through the proxy, p99 ms", "p99", 2);
    row("requests per second (8 clients)", "rps", 0);
    row("memory of an idle customer, MiB", "mib", 1);
    row("host tasks of an idle customer", "tasks", 0);
    console.log(`\nsandboxed (runsc, plan 'sandboxed') next to its floor (runc, plan 'standard', the same limits); ${PER_PLAN} customers each, min / median / max\n`);
    console.log(formatTable(["measure", "runsc (sandboxed)", "floor: runc (standard)"], rows));
  } finally {
    await removeCustomers(customers.map((c) => [ENV, c]), [[ENV, EDGE]]).catch(() => {});
    killLeftovers(pluginsBefore);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
