/**
 * How fast fleet operations are, each next to its floor, in one run on this machine:
 *
 *  1. provisioning a new customer to healthy  vs  the same hardened container by hand (docker CLI);
 *  2. a no-op `fleet up <env>-<customer>`     vs  `pulumi up --skip-preview` on the same stack;
 *  3. `fleet list` and the rollout's stack discovery for 1 and for 20 customers, with the number of
 *     Pulumi processes each starts;
 *  4. `fleet rollout` for 1, 5, 10 and 20 prod customers, waves moved concurrently (the default)
 *     vs one customer at a time (`--concurrency 1`);
 *  5. how fast `fleet serve` answers Stripe while provisionings run behind it, next to when it is idle;
 *  6. the edge proxy: the latency it adds next to direct access, and failed requests through it
 *     during a plan change, a rollout and a deploy whose healthcheck fails (bench/edge.ts).
 *
 * Every fleet command runs as an operator runs it (scripts/fleet.sh: the compiled CLI) in a separate
 * process, in a throwaway copy of the project with its own file backend, on the real engines. Times
 * are min / median / max over BENCH_RUNS runs (default 3); CPU is that of the command and everything
 * it waited for. Nothing here is a test: the numbers are printed, never asserted.
 *   npm run bench          BENCH_RUNS=5 BENCH_ROLLOUT_SIZES=1,5 npm run bench
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Dockerode from "dockerode";
import { readStacks } from "../src/pulumi/stackState";
import { parseCustomerTarget } from "../src/config/targets";
import { environmentImage, loadEnvironment, provisionCustomer, type Environment } from "../src/fleet/operations";
import { mapBounded } from "../src/fleet/rollout";
import { findToolchain } from "../src/pulumi/toolchain";
import { pulumiEnv } from "../src/pulumi/workspace";
import { writeSecretFile } from "../src/engine/secretFile";
import { serviceSpec } from "../src/hardening/serviceSpec";
import { formatTable } from "../src/table";
import * as http from "node:http";
import * as https from "node:https";
import { startFleet } from "../test/support/cli";
import { removeCustomers } from "../test/support/engine";
import { copyProject, customerUrlIn, dropEncryptionSalt, useEdge } from "../test/support/projectCopy";
import { failedDuring, latency, type LoadCount } from "./edge";
import { checkoutCompleted, deliver, getJson, invoiceEvent, SECRET, sign } from "../test/webhooks/support";
import { dockerRunArgs, networkCreateArgs, volumeCreateArgs } from "./floor";
import { formatSpread, mustRun, percentile, spread, timed, type Sample } from "./measure";

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const SIZES = (process.env.BENCH_ROLLOUT_SIZES ?? "1,5,10,20").split(",").map(Number).filter((n) => n > 0);
const ROLLOUT_RUNS = Math.max(1, Number(process.env.BENCH_ROLLOUT_RUNS ?? RUNS));
const PASSPHRASE = "hardened-fleet-bench";
const engine = new Dockerode();
const quiet = () => {};
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

const ctx = copyProject();
const counter = path.join(ctx.root, ".fleet", "pulumi-processes");

/**
 * A bin directory like the toolchain's whose `pulumi` counts its starts (one line each in `counter`)
 * before it runs the real one; everything else is linked as it is.
 */
function countingToolchain(): string {
  const real = findToolchain().bin;
  const dir = path.join(ctx.root, ".fleet", "counting-bin");
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(real)) if (f !== "pulumi") fs.symlinkSync(path.join(real, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, "pulumi"), `#!/bin/sh\necho "$*" >> '${counter}'\nexec '${path.join(real, "pulumi")}' "$@"\n`, { mode: 0o755 });
  return dir;
}

const tc = findToolchain();
const fleetEnv: NodeJS.ProcessEnv = {
  ...process.env,
  FLEET_PROJECT_DIR: ctx.root,
  PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
  HARDENED_FLEET_PULUMI_BIN: countingToolchain(),
  ...(tc.home ? { PULUMI_HOME: tc.home } : {}),
};

interface FleetSample extends Sample { pulumis: number }

async function fleet(args: string[]): Promise<FleetSample> {
  fs.writeFileSync(counter, "");
  const r = await mustRun([path.join(ctx.root, "scripts", "fleet.sh"), ...args], { cwd: ctx.root, env: fleetEnv });
  return { wall: r.wall, cpu: r.cpu, pulumis: fs.readFileSync(counter, "utf8").split("\n").filter(Boolean).length };
}

/** The project copy: its own ports and the bench passphrase; every other setting as committed. */
function prepareCopy(): void {
  process.env.PULUMI_CONFIG_PASSPHRASE = PASSPHRASE;
  process.env.HARDENED_FLEET_PULUMI_BIN = tc.bin;
  if (tc.home) process.env.PULUMI_HOME = tc.home;
  for (const env of ["staging", "prod"]) dropEncryptionSalt(ctx.root, env);
  useEdge(ctx.root, "staging", "edge-bench", 18600, 18601);
  useEdge(ctx.root, "prod", "edge-bench", 18602, 18603);
}

/** staging and prod, each loaded once (after prepareCopy has set their ports) and passed to what needs them */
const loaded = new Map<string, Environment>();
function environment(name: "staging" | "prod"): Environment {
  if (!loaded.has(name)) loaded.set(name, loadEnvironment(ctx, name));
  return loaded.get(name)!;
}

/** A customer provisioned in-process, as the exported API does it. */
const provisionIn = (env: "staging" | "prod", id: string) => provisionCustomer(environment(env), parseCustomerTarget(id, env), undefined, quiet);

const created: { env: string; id: string }[] = [];

const removeCustomer = (env: string, id: string) => removeCustomers([[env, id]]);

async function waitHealthy(name: string): Promise<void> {
  for (;;) {
    const info = await engine.getContainer(name).inspect();
    if (info.State.Health?.Status === "healthy") return;
    if (!info.State.Running) throw new Error(`${name} stopped: ${info.State.Status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** 1. The same hardened container by hand: network, volume, docker run, poll until healthy. */
async function floorProvision(id: string, image: string, keep = false, publishPort?: number): Promise<Sample> {
  const env = environment("staging").config;
  const base = serviceSpec(env, { id, environment: "staging", plan: Object.keys(env.plans)[0]! }, image);
  // published only to measure direct access next to the proxy (section 6); a customer publishes nothing
  const spec = publishPort ? { ...base, publish: [{ hostIp: "127.0.0.1", hostPort: publishPort, containerPort: base.port }] } : base;
  created.push({ env: "staging", id });
  const t0 = process.hrtime.bigint();
  let cpu = 0;
  for (const args of [networkCreateArgs(spec), volumeCreateArgs(spec)]) {
    cpu += (await mustRun(["docker", ...args])).cpu;
  }
  // the key as a file on its own volume, as fleet writes it (never in the environment)
  await writeSecretFile(engine, spec.secretFile!, "x".repeat(48), { image: spec.image, labels: spec.identityLabels });
  cpu += (await mustRun(["docker", ...dockerRunArgs(spec)])).cpu;
  await waitHealthy(spec.containerName);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!keep) await removeCustomer("staging", id);
  return { wall, cpu };
}

async function benchProvision(): Promise<string[][]> {
  const image = await environmentImage(ctx, "staging");
  const floor: Sample[] = [];
  const ours: FleetSample[] = [];
  // warm-up, not measured: the first run in a new copy also fills Node's code cache and the engine's
  created.push({ env: "staging", id: "bwarm" });
  await fleet(["provision", "bwarm", "--env", "staging"]);
  await fleet(["deprovision", "bwarm", "--env", "staging", "--purge-data", "--yes"]);
  await floorProvision("bfloor0", image);
  for (let i = 1; i <= RUNS; i++) {
    say(`provision, run ${i} of ${RUNS}`);
    floor.push(await floorProvision(`bfloor${i}`, image));
    created.push({ env: "staging", id: `bprov${i}` });
    ours.push(await fleet(["provision", `bprov${i}`, "--env", "staging"]));
    await fleet(["deprovision", `bprov${i}`, "--env", "staging", "--purge-data", "--yes"]);
  }
  return [
    row("provision a new customer to healthy", ours, floor, "by hand: docker network/volume create, docker run (every flag), poll health"),
  ];
}

/** 2. A no-op `fleet up` next to a direct `pulumi up --skip-preview` of the same stack, alternating. */
async function benchNoop(): Promise<string[][]> {
  created.push({ env: "staging", id: "bnoop" });
  await provisionIn("staging", "bnoop");
  const stack = "staging-bnoop";
  const direct = { ...process.env, ...pulumiEnv(ctx, PASSPHRASE) };
  const floor: Sample[] = [];
  const ours: FleetSample[] = [];
  await fleet(["up", stack]); // warm-up, not measured
  for (let i = 1; i <= RUNS; i++) {
    say(`no-op up, run ${i} of ${RUNS}`);
    const first = i % 2 === 1;
    if (first) ours.push(await fleet(["up", stack]));
    floor.push(await mustRun([path.join(tc.bin, "pulumi"), "up", "-s", stack, "--skip-preview", "--yes"], { cwd: ctx.root, env: direct }));
    if (!first) ours.push(await fleet(["up", stack]));
  }
  return [row(`fleet up ${stack} (nothing to change)`, ours, floor, `pulumi up -s ${stack} --skip-preview --yes`)];
}

function row(what: string, ours: FleetSample[], floor: Sample[], floorWhat: string): string[] {
  const ratio = spread(ours.map((s) => s.wall)).median / spread(floor.map((s) => s.wall)).median;
  return [what, formatSpread(ours.map((s) => s.wall)), formatSpread(ours.map((s) => s.cpu)), String(spread(ours.map((s) => s.pulumis)).median),
    floorWhat, formatSpread(floor.map((s) => s.wall)), formatSpread(floor.map((s) => s.cpu)), `${ratio.toFixed(2)}x`];
}

/** Provisions prod customers up to n (setup, not measured), a few at a time. */
async function growProd(n: number): Promise<void> {
  const have = created.filter((c) => c.env === "prod").length;
  const ids = Array.from({ length: Math.max(0, n - have) }, (_, i) => `brol${String(have + i + 1).padStart(2, "0")}`);
  if (ids.length) say(`provisioning ${ids.length} prod customer(s) for ${n}`);
  for (const id of ids) created.push({ env: "prod", id });
  await mapBounded(ids, 2, (id) => provisionIn("prod", id));
}

/** 3. fleet list and stack discovery. */
async function benchListing(n: number, env: string): Promise<string[]> {
  const list: FleetSample[] = [];
  const discovery: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    list.push(await fleet(["list", "--env", env]));
    const t0 = process.hrtime.bigint();
    await readStacks(ctx);
    discovery.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return [String(n), formatSpread(list.map((s) => s.wall), 2), formatSpread(list.map((s) => s.cpu), 2),
    String(spread(list.map((s) => s.pulumis)).median), formatSpread(discovery, 1)];
}

/** 4. Rollouts that move every customer (the app's VERSION alternates, so every container is replaced). */
async function benchRollout(): Promise<string[][]> {
  const versionFile = path.join(ctx.root, "examples", "customer-app", "VERSION");
  let flip = 0;
  const release = () => fs.writeFileSync(versionFile, `9.${++flip % 2}.0\n`);
  const rolloutOnce = async (concurrency: number) => {
    release();
    return fleet(["rollout", "--concurrency", String(concurrency)]);
  };
  const concurrency = Math.max(2, os.availableParallelism());
  const rows: string[][] = [];
  for (const [k, n] of SIZES.entries()) {
    await growProd(n);
    // warm-up, not measured: both versions built once
    if (k === 0) for (let w = 0; w < 2; w++) await rolloutOnce(concurrency);
    const seq: FleetSample[] = [];
    const par: FleetSample[] = [];
    for (let i = 1; i <= ROLLOUT_RUNS; i++) {
      say(`rollout of ${n} prod customer(s), run ${i} of ${ROLLOUT_RUNS}`);
      seq.push(await rolloutOnce(1));
      par.push(await rolloutOnce(concurrency));
    }
    const ratio = spread(seq.map((s) => s.wall)).median / spread(par.map((s) => s.wall)).median;
    rows.push([String(n), formatSpread(par.map((s) => s.wall)), formatSpread(par.map((s) => s.cpu)),
      formatSpread(seq.map((s) => s.wall)), formatSpread(seq.map((s) => s.cpu)), `${ratio.toFixed(2)}x`]);
  }
  return rows;
}

/** 5. Webhook answers (signed `invoice.paid` deliveries, recorded and ignored) idle, then while 5 checkouts provision. */
async function benchWebhooks(): Promise<string[][]> {
  const serve = startFleet(ctx.root, ["serve", "--env", "staging", "--listen", "127.0.0.1:0", "--db", path.join(ctx.root, ".fleet", "bench-queue.db"),
    "--concurrency", "2"], { STRIPE_WEBHOOK_SECRET: SECRET });
  const base = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\/webhooks\/stripe/))[1]!;
  let n = 0;
  const created0 = Math.floor(Date.now() / 1000);
  const ping = async (): Promise<number> => {
    const d = sign(invoiceEvent(`evt_bench_ping_${n++}`, created0, "invoice.paid"));
    const answer = await deliver(base, d.body, d.signature);
    if (answer.status !== 200) throw new Error(`fleet serve answered ${answer.status}: ${JSON.stringify(answer.json)}`);
    return answer.ms;
  };
  try {
    say("webhooks: idle");
    for (let i = 0; i < 20; i++) await ping(); // warm-up
    const idle: number[] = [];
    for (let i = 0; i < 200; i++) idle.push(await ping());
    say("webhooks: while 5 customers provision");
    for (let i = 0; i < 5; i++) {
      created.push({ env: "staging", id: `bhook${i}` });
      const d = sign(checkoutCompleted(`evt_bench_checkout_${i}`, created0, `bhook${i}`, "starter"));
      await deliver(base, d.body, d.signature);
    }
    const busy: number[] = [];
    const t0 = Date.now();
    for (;;) {
      busy.push(await ping());
      const q = (await getJson(`${base}/healthz`)).json.queue as Record<string, number>;
      if ((q.queued ?? 0) === 0 && (q.running ?? 0) === 0) break;
      if (Date.now() - t0 > 10 * 60_000) throw new Error(`the webhook jobs did not finish: ${JSON.stringify(q)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const q = (await getJson(`${base}/healthz`)).json.queue as Record<string, number>;
    if ((q.failed ?? 0) > 0) throw new Error(`webhook jobs failed: ${JSON.stringify(q)}\n${serve.stderr().slice(-3000)}`);
    const row = (what: string, ms: number[]) => [what, String(ms.length), percentile(ms, 50).toFixed(1), percentile(ms, 99).toFixed(1), Math.max(...ms).toFixed(1)];
    return [row("idle", idle), row(`while 5 checkouts provision (${((Date.now() - t0) / 1000).toFixed(0)} s)`, busy)];
  } finally {
    serve.child.kill("SIGTERM");
    await serve.exited;
  }
}

/** 6a. GET /healthz through the edge proxy next to the same app reached directly, per kind of connection. */
async function benchEdgeLatency(): Promise<string[][]> {
  say("edge proxy: latency");
  await floorProvision("bdirect", await environmentImage(ctx, "staging"), true, 18640);
  const direct = "http://127.0.0.1:18640/healthz";
  const proxied = `${customerUrlIn(ctx.root, "staging", "bnoop")}/healthz`;
  const rows: string[][] = [];
  for (const [kind, agents] of [
    ["kept-alive connection", [new http.Agent({ keepAlive: true, maxSockets: 1 }), new https.Agent({ keepAlive: true, maxSockets: 1 })]],
    ["new connection per request", [false, false]],
  ] as const) {
    const d = await latency(direct, agents[0]);
    const p = await latency(proxied, agents[1]);
    const ms = (x: number) => x.toFixed(2);
    rows.push([kind, ms(d.p50), ms(d.p99), ms(p.p50), ms(p.p99), ms(p.p50 - d.p50)]);
  }
  await removeCustomer("staging", "bdirect");
  return rows;
}

/** 6b. Requests through the proxy during each kind of update, and how many failed. */
async function benchEdgeFailures(): Promise<string[][]> {
  const staging = `${customerUrlIn(ctx.root, "staging", "bnoop")}/`;
  const prod = `${customerUrlIn(ctx.root, "prod", "brol01")}/`;
  const rows: string[][] = [];
  const measure = async (what: string, urls: string[], during: () => Promise<unknown>) => {
    say(`edge proxy: requests during ${what}`);
    const t0 = Date.now();
    const c: LoadCount = await failedDuring(urls, during);
    rows.push([what, ((Date.now() - t0) / 1000).toFixed(0), String(c.requests), String(c.failed), c.failures.join("; ") || "-"]);
  };
  await measure("a plan change (fleet provision bnoop --plan standard)", [staging],
    () => fleet(["provision", "bnoop", "--env", "staging", "--plan", "standard"]));
  const versionFile = path.join(ctx.root, "examples", "customer-app", "VERSION");
  fs.writeFileSync(versionFile, "9.5.0\n");
  await measure("a rollout through staging and prod (fleet rollout)", [staging, prod], () => fleet(["rollout"]));
  const appPy = path.join(ctx.root, "examples", "customer-app", "app.py");
  const good = fs.readFileSync(appPy, "utf8");
  fs.writeFileSync(appPy, good.replace('if path == "/healthz":', 'if path == "/healthz" and False:'));
  fs.writeFileSync(versionFile, "9.6.0-broken\n");
  try {
    await fleet(["up", "staging"]);
    await measure("a deploy whose healthcheck fails (fleet up staging-bnoop: fails, rolls back)", [staging], async () => {
      const r = await timed([path.join(ctx.root, "scripts", "fleet.sh"), "up", "staging-bnoop"], { cwd: ctx.root, env: fleetEnv });
      if (r.code === 0) throw new Error("the broken version deployed: the bench expected it to fail");
    });
  } finally {
    fs.writeFileSync(appPy, good);
    fs.writeFileSync(versionFile, "9.5.0\n");
    await fleet(["up", "staging"]);
  }
  return rows;
}

async function cleanUp(): Promise<void> {
  // the proxies go first (removeCustomers): a network a proxy is still connected to cannot be removed
  await removeCustomers(created.map((c): [string, string] => [c.env, c.id]), [["staging", "edge-bench"], ["prod", "edge-bench"]]);
  fs.rmSync(ctx.root, { recursive: true, force: true });
}

/** Prints a table as soon as it is measured (a long run keeps what it has if stopped later). */
function print(title: string, head: string[], rows: string[][]): void {
  console.log([`## ${title}`, "", formatTable(head, rows), ""].join("\n"));
}

async function main(): Promise<void> {
  prepareCopy();
  const cores = os.availableParallelism();
  say(`project copy ${ctx.root}; ${RUNS} run(s) each, rollouts ${ROLLOUT_RUNS}; ${cores} CPU core(s)`);
  await fleet(["up", "staging"]);
  print(`Fleet operations next to their floors (${cores} cores, ${RUNS} runs each; seconds as min / median / max)`,
    ["operation", "wall s", "CPU s", "pulumi procs", "floor", "floor wall s", "floor CPU s", "median ratio"],
    [...await benchProvision(), ...await benchNoop()]);
  print("fleet serve: answers to signed Stripe deliveries (HTTP round trip on 127.0.0.1, ms)",
    ["while", "deliveries", "p50 ms", "p99 ms", "max ms"], await benchWebhooks());
  await fleet(["up", "prod"]);
  await growProd(1);
  print("edge proxy: GET /healthz through it (HTTPS, certificate checked) next to the same app reached directly (HTTP, published on 127.0.0.1 for this only), ms",
    ["connection", "direct p50", "direct p99", "through the proxy p50", "through the proxy p99", "added p50"], await benchEdgeLatency());
  print("edge proxy: requests through it while updates run (one client per customer, back to back)",
    ["update", "seconds", "requests", "failed", "first failures"], await benchEdgeFailures());
  const listOne = await benchListing(1, "prod");
  const concurrency = Math.max(2, cores);
  print(`fleet rollout: every prod customer moves to a new image (${ROLLOUT_RUNS} run(s) each; waves of 5 after a canary; 1 staging customer gated first)`,
    ["prod customers", `concurrent (${concurrency}) wall s`, "CPU s", "one at a time wall s", "CPU s", "speed-up"], await benchRollout());
  await growProd(20);
  print("fleet list and the rollout's stack discovery (prod customers)",
    ["customers", "fleet list wall s", "fleet list CPU s", "pulumi procs", "stack discovery ms (in process)"], [listOne, await benchListing(20, "prod")]);
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}).finally(() => cleanUp());
