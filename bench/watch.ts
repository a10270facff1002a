/**
 * The watcher in numbers, next to its floor, in one run on this machine: 50 customers behind their
 * edge proxy, probed every 15 s (the default interval).
 *
 *  - `fleet watch` as an operator runs it (scripts/fleet.sh, a separate process): probes through the
 *    edge over HTTPS with the CA, engine events, container stats, the store, metrics;
 *  - the floor: a bare process that only sends the same 50 HTTPS requests through the edge every 15 s,
 *    with the same connections (kept between rounds, new every minute): node's https, the CA, no state.
 *
 * Each is measured over BENCH_WATCH_SECONDS (default 180: twelve rounds) after its first round: CPU
 * time of the process (/proc/<pid>/stat) as a share of one core, and its resident memory at the end.
 * The Docker daemon's own work (stats, events) is not in either. Nothing here is a test.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseCustomerTarget } from "../src/config/targets";
import { edgeRootCertificate } from "../src/fleet/edge";
import { loadEnvironment, provisionCustomer } from "../src/fleet/operations";
import { mapBounded } from "../src/fleet/rollout";
import { findToolchain } from "../src/pulumi/toolchain";
import { formatTable } from "../src/table";
import { removeCustomers } from "../test/support/engine";
import { copyProject, dropEncryptionSalt, editEnvironment, useEdge } from "../test/support/projectCopy";
import { mustRun } from "./measure";

const N = Number(process.env.BENCH_WATCH_CUSTOMERS ?? 50);
const WINDOW = Number(process.env.BENCH_WATCH_SECONDS ?? 180);
const INTERVAL = 15;
const PASSPHRASE = "hardened-fleet-bench";
const EDGE = "edge-bw";
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ctx = copyProject();
const ids = Array.from({ length: N }, (_, i) => `bw${String(i + 1).padStart(2, "0")}`);
const tc = findToolchain();
const env: NodeJS.ProcessEnv = { ...process.env, FLEET_PROJECT_DIR: ctx.root, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
  HARDENED_FLEET_PULUMI_BIN: tc.bin, ...(tc.home ? { PULUMI_HOME: tc.home } : {}) };
const TICK = 100; // USER_HZ: clock ticks per second in /proc, 100 on Linux

/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function measure(child: ChildProcess, what: string): Promise<{ cpuShare: number; rss: number }> {
  const pid = child.pid!;
  const c0 = cpuSeconds(pid);
  const t0 = Date.now();
  say(`${what}: measuring for ${WINDOW}s`);
  await sleep(WINDOW * 1000);
  const cpu = cpuSeconds(pid) - c0;
  const rss = rssMb(pid);
  return { cpuShare: cpu / ((Date.now() - t0) / 1000), rss };
}

// the same connection policy as the watcher's: kept between rounds, new ones every minute
const FLOOR = `
const https = require("node:https");
const [address, port, ca, interval, ...hosts] = JSON.parse(process.argv[1]);
let agent, since = 0;
const probe = (host) => new Promise((resolve) => {
  const req = https.request({ host: address, port, path: "/healthz", servername: host, headers: { host: host + ":" + port }, agent, timeout: 5000 },
    (res) => { res.resume(); res.on("end", resolve); });
  req.on("error", resolve); req.on("timeout", () => req.destroy()); req.end();
});
const round = async () => {
  if (Date.now() - since >= 60000) { if (agent) agent.destroy(); agent = new https.Agent({ keepAlive: true, maxSockets: 2, ca }); since = Date.now(); }
  await Promise.all(hosts.map(probe)); process.stdout.write("round\\n");
};
round(); setInterval(round, interval * 1000);
`;

async function main(): Promise<void> {
  await removeCustomers(ids.map((id): [string, string] => ["staging", id]), [["staging", EDGE]]);
  useEdge(ctx.root, "staging", EDGE, 19700, 19701);
  dropEncryptionSalt(ctx.root, "staging");
  editEnvironment(ctx.root, "staging", (e) => {
    e.localDemo = false;
    e.watch = { intervalSeconds: INTERVAL, timeoutSeconds: 5 };
    e.plans.bench = { memoryMb: 96, cpus: 0.25, pids: 32, nofile: 256, tmpfsMb: 8 };
  });
  process.env.PULUMI_CONFIG_PASSPHRASE = PASSPHRASE;
  const fleet = (args: string[]) => mustRun([path.join(ctx.root, "scripts", "fleet.sh"), ...args], { cwd: ctx.root, env });
  await fleet(["up", "staging"]);
  const environment = loadEnvironment(ctx, "staging");
  say(`provisioning ${N} customers`);
  let done = 0;
  await mapBounded(ids, 3, async (id) => {
    await provisionCustomer(environment, parseCustomerTarget(id, "staging"), "bench", () => {});
    if (++done % 10 === 0) say(`${done} of ${N} provisioned`);
  });

  // the watcher, as an operator runs it
  const watcher = spawn(path.join(ctx.root, "scripts", "fleet.sh"), ["watch", "--env", "staging", "--listen", "127.0.0.1:0"],
    { cwd: ctx.root, env, stdio: ["ignore", "pipe", "pipe"] });
  let werr = "";
  watcher.stderr!.on("data", (c: Buffer) => { werr += c.toString(); });
  const watched = await (async () => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      await sleep(2000);
      const r = await mustRun([path.join(ctx.root, "scripts", "fleet.sh"), "status", "--env", "staging", "--json"], { cwd: ctx.root, env }).catch(() => undefined);
      const rows = r ? (JSON.parse(r.stdout) as { subject: string; status: string }[]) : [];
      const up = rows.filter((x) => ids.includes(x.subject) && x.status === "up").length;
      if (up === N) return up;
      if (Date.now() > deadline) throw new Error(`only ${up} of ${N} customers up in the watcher's view:\n${werr.slice(-2000)}`);
    }
  })();
  say(`the watcher sees ${watched} customers up`);
  const ours = await measure(watcher, "fleet watch");
  watcher.kill("SIGTERM");

  // the floor: the same requests, nothing else
  const ca = await edgeRootCertificate(environment);
  const hosts = ids.map((id) => `${id}.${environment.config.edge.domain}`);
  const floor = spawn(process.execPath, ["-e", FLOOR, JSON.stringify([environment.config.edge.address, environment.config.edge.httpsPort, ca, INTERVAL, ...hosts])],
    { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve) => floor.stdout!.once("data", () => resolve()));
  const bare = await measure(floor, "floor");
  floor.kill("SIGTERM");

  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  console.log(`\nThe watcher: ${N} customers probed every ${INTERVAL} s, measured over ${WINDOW} s (${os.cpus().length} cores)\n`);
  console.log(formatTable(["process", "CPU (share of one core)", "resident memory"], [
    ["fleet watch (probes, events, stats, store, metrics)", pct(ours.cpuShare), `${ours.rss.toFixed(0)} MiB`],
    ["floor: the same HTTPS probes alone", pct(bare.cpuShare), `${bare.rss.toFixed(0)} MiB`],
  ]));
}

main().catch((err: Error) => { console.error(err.stack ?? err.message); process.exitCode = 1; }).finally(async () => {
  await removeCustomers(ids.map((id): [string, string] => ["staging", id]), [["staging", EDGE]]);
  fs.rmSync(ctx.root, { recursive: true, force: true });
});
