/**
 * The log collector in numbers, next to its floor, in one run on this machine. A customer's container
 * writes BENCH_LOG_LINES lines (default 20000, 200 bytes each) to its output as fast as it can:
 *
 *  - through the collector, as every customer's lines go (Docker's syslog driver, UDP, rsyslog): the
 *    time until the last line is in the customer's file, the lines that arrived, and the CPU time the
 *    collector's container spent on them (its cgroup, from the engine's stats);
 *  - the floor: the same lines from the same image in a container with the engine's own json-file
 *    driver (what customers had before): the time until `docker logs` has the last line.
 *
 * Nothing here is a test.
 */
import * as path from "node:path";
import type Dockerode from "dockerode";
import { execIn } from "../src/engine/exec";
import { logCollectorNames } from "../src/hardening/names";
import { formatTable } from "../src/table";
import { customerContainer, engine, removeCustomers } from "../test/support/engine";
import { copyProject, dropEncryptionSalt, useEdge } from "../test/support/projectCopy";
import { findToolchain } from "../src/pulumi/toolchain";
import { mustRun } from "./measure";

const LINES = Number(process.env.BENCH_LOG_LINES ?? 20000);
const PASSPHRASE = "hardened-fleet-bench";
const EDGE = "edge-bl";
const ID = "bl-a";
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ctx = copyProject();
const tc = findToolchain();
const env: NodeJS.ProcessEnv = { ...process.env, FLEET_PROJECT_DIR: ctx.root, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
  HARDENED_FLEET_PULUMI_BIN: tc.bin, ...(tc.home ? { PULUMI_HOME: tc.home } : {}) };
const WRITE = `import sys\nout = open("/proc/1/fd/1", "w")\nfor i in range(${LINES}):\n    out.write("bench-line %06d %s\\n" % (i, "x" * 184))\nout.flush()`;

async function cpuNanos(container: Dockerode.Container): Promise<number> {
  const s = (await container.stats({ stream: false })) as unknown as { cpu_stats: { cpu_usage: { total_usage: number } } };
  return s.cpu_stats.cpu_usage.total_usage;
}

/** Polls `count` until it reaches LINES or stops growing for 10 s; the seconds it took and the count. */
async function until(count: () => Promise<number>, t0: number): Promise<{ seconds: number; lines: number }> {
  let last = -1;
  let still = Date.now();
  for (;;) {
    const n = await count();
    if (n >= LINES) return { seconds: (Date.now() - t0) / 1000, lines: n };
    if (n !== last) { last = n; still = Date.now(); }
    if (Date.now() - still > 10_000) return { seconds: (still - t0) / 1000, lines: n };
    await sleep(100);
  }
}

async function main(): Promise<void> {
  await removeCustomers([["staging", ID]], [["staging", EDGE]]);
  useEdge(ctx.root, "staging", EDGE, 19950, 19951);
  dropEncryptionSalt(ctx.root, "staging");
  const fleet = (args: string[]) => mustRun([path.join(ctx.root, "scripts", "fleet.sh"), ...args], { cwd: ctx.root, env });
  await fleet(["up", "staging"]);
  await fleet(["provision", ID, "--env", "staging"]);
  const info = await customerContainer("staging", ID);
  if (!info) throw new Error(`${ID} has no container`);
  const customer = engine.getContainer(info.Id);
  const collector = engine.getContainer(logCollectorNames("staging", EDGE).container);

  say(`${LINES} lines through the collector`);
  const c0 = await cpuNanos(collector);
  const t0 = Date.now();
  await execIn(customer, ["python3", "-c", WRITE], 300_000);
  const count = async () => Number((await execIn(collector, ["bash", "-c", `grep -c bench-line /logs/${ID}/current.log || true`])).stdout.trim() || 0);
  const ours = await until(count, t0);
  const cpu = ((await cpuNanos(collector)) - c0) / 1e9;

  say(`${LINES} lines into json-file (the floor)`);
  const floor = await engine.createContainer({ Image: info.Image, User: "1000:1000", Entrypoint: ["python3", "-c", "import time; time.sleep(3600)"],
    HostConfig: { LogConfig: { Type: "json-file", Config: {} }, NetworkMode: "none", ReadonlyRootfs: true, CapDrop: ["ALL"] } });
  try {
    await floor.start();
    const f0 = Date.now();
    await execIn(floor, ["python3", "-c", WRITE], 300_000);
    const bare = await until(async () => {
      const out = (await floor.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
      return (out.toString("latin1").match(/bench-line/g) ?? []).length;
    }, f0);

    console.log(`\nThe log collector: ${LINES} lines of 200 bytes written at once by one customer\n`);
    console.log(formatTable(["path", "lines kept", "seconds to the last line", "lines per second", "collector CPU"], [
      ["through the collector (syslog driver, UDP, rsyslog, per-customer file)", `${ours.lines} of ${LINES}`, ours.seconds.toFixed(2),
        Math.round(ours.lines / ours.seconds).toString(), `${cpu.toFixed(2)} s`],
      ["floor: the engine's json-file (docker logs)", `${bare.lines} of ${LINES}`, bare.seconds.toFixed(2),
        Math.round(bare.lines / bare.seconds).toString(), "-"],
    ]));
  } finally {
    await floor.remove({ force: true });
  }
}

main().catch((err: Error) => { console.error(err.stack ?? err.message); process.exitCode = 1; }).finally(async () => {
  await removeCustomers([["staging", ID]], [["staging", EDGE]]);
});
