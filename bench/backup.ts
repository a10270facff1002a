/**
 * Backups in numbers, each next to its floor, in one run on this machine: a customer with 100 MB in
 * 1,000 files (random bytes: nothing compresses or deduplicates), its repository in a directory of
 * this host (the demo's kind of backup.repository).
 *
 *  1. `fleet backup` of it, first (an empty repository) and incremental (10 files changed), with how
 *     long the customer was paused, next to restic itself on the host reading the volume's directory
 *     into a repository of its own (no container, no pause, no records);
 *  2. `fleet restore --into` (restore, --verify, listing checked) next to `restic restore` on the host;
 *  3. `fleet restore` of the customer itself (scratch restore, checks, safety snapshot, swap, restart
 *     until healthy), which has no floor but the pieces above.
 *
 * Every fleet command runs as an operator runs it (scripts/fleet.sh, a separate process). Times are
 * min / median / max over BENCH_RUNS runs (default 3). Nothing here is a test: nothing is asserted.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import Dockerode from "dockerode";
import { BACKUP_IMAGE, resticBinDir } from "../src/backup/toolImage";
import { customerNames } from "../src/hardening/names";
import { findToolchain } from "../src/pulumi/toolchain";
import { formatTable } from "../src/table";
import { removeCustomers, removeQuietly } from "../test/support/engine";
import { copyProject, dropEncryptionSalt, editEnvironment, useEdge } from "../test/support/projectCopy";
import { formatSpread, mustRun, spread, type Timed } from "./measure";

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const PASSPHRASE = "hardened-fleet-bench";
const ID = "bbk";
const engine = new Dockerode();
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const ctx = copyProject();
const repository = path.join(ctx.root, ".fleet", "restic");
const floorRepo = path.join(ctx.root, ".fleet", "restic-floor");
const volume = customerNames("staging", ID).dataVolume;
// the copy has no toolchain/ of its own: the checkout's toolchain, found once
const tc = findToolchain();
const env: NodeJS.ProcessEnv = { ...process.env, FLEET_PROJECT_DIR: ctx.root, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
  HARDENED_FLEET_PULUMI_BIN: tc.bin, ...(tc.home ? { PULUMI_HOME: tc.home } : {}) };
const fleet = (args: string[]) => mustRun([path.join(ctx.root, "scripts", "fleet.sh"), ...args], { cwd: ctx.root, env });
const restic = (args: string[]) => mustRun([path.join(resticBinDir(), "restic"), "--no-cache", "-r", floorRepo, ...args],
  { env: { ...process.env, RESTIC_PASSWORD: "bench-floor" } });

/** Runs `sh -c script` as 1000 with the customer's volume at /data. */
async function inVolume(script: string): Promise<void> {
  const c = await engine.createContainer({ Image: BACKUP_IMAGE, User: "1000:1000", Entrypoint: [], Cmd: ["sh", "-c", script],
    HostConfig: { NetworkMode: "none", Mounts: [{ Type: "volume", Source: volume, Target: "/data" }] } });
  try {
    await c.start();
    const { StatusCode } = (await c.wait()) as { StatusCode: number };
    if (StatusCode !== 0) throw new Error(`${script} exited ${StatusCode}`);
  } finally {
    await c.remove({ force: true });
  }
}

const pauseOf = (r: Timed) => Number(/paused (\d+) ms/.exec(r.stdout)?.[1] ?? NaN);

interface Pair { ours: Timed[]; floor: Timed[] }

function row(what: string, p: Pair, floorWhat: string, withPause = false): string[] {
  const ratio = spread(p.ours.map((s) => s.wall)).median / spread(p.floor.map((s) => s.wall)).median;
  return [what, formatSpread(p.ours.map((s) => s.wall)), withPause ? formatSpread(p.ours.map(pauseOf), 0) : "-",
    floorWhat, formatSpread(p.floor.map((s) => s.wall)), `${ratio.toFixed(2)}x`];
}

async function main(): Promise<void> {
  dropEncryptionSalt(ctx.root, "staging");
  useEdge(ctx.root, "staging", "edge-bkbench", 18660, 18661);
  editEnvironment(ctx.root, "staging", (e) => { e.backup = { repository, schedule: "24h" }; });
  say(`project copy ${ctx.root}; ${RUNS} run(s) each`);
  await fleet(["up", "staging"]);
  await fleet(["backup", "init", "--env", "staging"]);
  await fleet(["provision", ID, "--env", "staging"]);
  await inVolume("mkdir -p /data/bench && for i in $(seq 1 1000); do head -c 104858 /dev/urandom > /data/bench/f$i; done");
  const dir = ((await engine.getVolume(volume).inspect()) as { Mountpoint: string }).Mountpoint;
  say(`${ID}: 1,000 files of 100 KiB in ${volume}`);

  const first: Pair = { ours: [], floor: [] };
  const incremental: Pair = { ours: [], floor: [] };
  const restoreInto: Pair = { ours: [], floor: [] };
  const live: Timed[] = [];
  for (let run = 0; run < RUNS; run++) {
    fs.rmSync(path.join(repository, ID), { recursive: true, force: true });
    fs.rmSync(floorRepo, { recursive: true, force: true });
    await restic(["init"]);
    first.ours.push(await fleet(["backup", ID, "--env", "staging"]));
    first.floor.push(await restic(["backup", "--host", "floor", dir]));
    await inVolume("for i in $(seq 1 10); do head -c 104858 /dev/urandom > /data/bench/f$i; done");
    incremental.ours.push(await fleet(["backup", ID, "--env", "staging"]));
    incremental.floor.push(await restic(["backup", "--host", "floor", dir]));
    const target = `bkbench-into-${run}`;
    await removeQuietly({ volumes: [target] });
    restoreInto.ours.push(await fleet(["restore", ID, "--env", "staging", "--into", target]));
    await removeQuietly({ volumes: [target] });
    const floorTarget = path.join(ctx.root, ".fleet", `floor-restore-${run}`);
    restoreInto.floor.push(await restic(["restore", "latest", "--target", floorTarget]));
    fs.rmSync(floorTarget, { recursive: true, force: true });
    live.push(await fleet(["restore", ID, "--env", "staging"]));
    say(`run ${run + 1}/${RUNS} done`);
  }
  console.log([
    `## Backups of a customer with 100 MB in 1,000 files, next to restic on the host (${RUNS} runs each; seconds as min / median / max)`, "",
    formatTable(["operation", "wall s", "customer paused ms", "floor", "floor wall s", "median ratio"], [
      row("fleet backup, first (empty repository)", first, "restic backup <volume dir> (host, first)", true),
      row("fleet backup, incremental (10 files changed)", incremental, "restic backup <volume dir> (host, again)", true),
      row("fleet restore --into <new volume> (verified)", restoreInto, "restic restore latest --target <dir> (host)"),
      ["fleet restore (scratch, checks, safety snapshot, swap, restart, healthy)", formatSpread(live.map((s) => s.wall)), "-", "-", "-", "-"],
    ]), ""].join("\n"));
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}).finally(async () => {
  await removeCustomers([["staging", ID]], [["staging", "edge-bkbench"]]);
  execFileSync("rm", ["-rf", ctx.root]);
});
