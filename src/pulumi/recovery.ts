/**
 * After a crash in the middle of `pulumi up` (kill -9, power loss), a stack is left locked by a
 * process that is gone, and its state may list operations that never finished. Before running a
 * stack, fleet (which holds its own lock on the stack) clears both, safely:
 *
 *  - a Pulumi lock of this host whose process is gone is removed; one whose `pulumi` is still
 *    running (an interrupted fleet's orphaned child finishing its work) is waited for; a lock of
 *    another host is reported, never touched;
 *  - interrupted creates are reconciled with the engine: a container or network that was created
 *    but never recorded is removed (nothing of the customer's lives in them: data is in the volume,
 *    which is never removed and is adopted again by name), then `pulumi refresh` reads the real state
 *    of everything else and drops the pending operations. Whether there are any is read from the
 *    backend's state (stackState.ts), so a stack with nothing interrupted costs no Pulumi process.
 *
 *  - a metadata file that a killed pulumi left empty is removed (repairMetadataFiles).
 *
 * Only the diy (file://) backend keeps locks as files; on Pulumi Cloud, `pulumi cancel` is the tool.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type Dockerode from "dockerode";
import { pulumiOutput, type Log } from "./progress";
import { openStack, type FleetStack } from "./workspace";

interface PulumiLock { pid: number; username?: string; hostname?: string; timestamp?: string }

interface PendingOperation {
  type: string;
  resource: { urn: string; type: string; inputs?: Record<string, unknown> };
}

interface Deployment {
  resources?: { id?: string; type: string }[];
  pending_operations?: PendingOperation[];
}

const CONTAINER = "docker:index/container:Container";
const NETWORK = "docker:index/network:Network";

/** Lock files of one stack in a file backend: .pulumi/locks/<org>/<project>/<stack>/<id>.json. */
export function pulumiLockFiles(backendDir: string, stack: string): string[] {
  const root = path.join(backendDir, ".pulumi", "locks");
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (!fs.existsSync(dir) || depth > 4) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const sub = path.join(dir, e.name);
      if (e.name === stack) out.push(...fs.readdirSync(sub).filter((f) => f.endsWith(".json")).map((f) => path.join(sub, f)));
      else walk(sub, depth + 1);
    }
  };
  walk(root, 0);
  return out;
}

/**
 * The file backend (gocloud's fileblob) keeps each file's metadata beside it in `<file>.attrs`, and
 * writes it in place (truncated, then written), not aside and renamed as it writes the files
 * themselves. A pulumi killed between the two leaves an empty `.attrs`, and from then on every read
 * of that file fails: for the checkpoint, `failed to load checkpoint: EOF` on every command of the
 * stack. What it holds (content type, checksum) fileblob does without when the file is missing, so
 * this removes the ones of `stack` (its checkpoint and backup, locks, history) that do not parse.
 * Returns the files removed.
 */
export function repairMetadataFiles(backendDir: string, stack: string): string[] {
  const root = path.join(backendDir, ".pulumi");
  const removed: string[] = [];
  const walk = (dir: string, depth: number, mine: boolean): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // gone meanwhile, or never made
    }
    for (const e of entries) {
      const file = path.join(dir, e.name);
      if (e.isDirectory()) {
        // locks/<org>/<project>/<stack>/, history/<project>/<stack>/, backups/<project>/<stack>/
        if (depth < 4) walk(file, depth + 1, mine || e.name === stack);
        continue;
      }
      // stacks/<project>/<stack>.json.attrs (and .json.bak, .json.gz, ...): named after the stack
      if (!e.name.endsWith(".attrs") || !(mine || e.name.startsWith(`${stack}.json`))) continue;
      try {
        JSON.parse(fs.readFileSync(file, "utf8"));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        fs.rmSync(file, { force: true });
        removed.push(file);
      }
    }
  };
  walk(root, 0, false);
  return removed;
}

/** Whether pid is a running `pulumi` process on this host (a reused pid running something else is not). */
export function pulumiRunning(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").some((arg) => path.basename(arg).startsWith("pulumi"));
  } catch {
    return false;
  }
}

/** Removes this stack's Pulumi locks whose process is gone; waits (bounded) for one still running. */
export async function clearStaleLocks(backendUrl: string, stack: string, log: Log, waitSeconds = 300): Promise<void> {
  if (!backendUrl.startsWith("file://")) return;
  const backendDir = backendUrl.slice("file://".length);
  for (const file of repairMetadataFiles(backendDir, stack)) {
    log(`stack ${stack}: removed ${path.relative(backendDir, file)}, a metadata file an interrupted pulumi left unreadable (the file it describes is whole)`);
  }
  for (const file of pulumiLockFiles(backendDir, stack)) {
    let lock: PulumiLock;
    try {
      lock = JSON.parse(fs.readFileSync(file, "utf8")) as PulumiLock;
    } catch {
      continue; // gone already, or being written by a live pulumi
    }
    if (lock.hostname && lock.hostname !== os.hostname()) {
      throw new Error(`stack '${stack}' is locked by pid ${lock.pid} on host ${lock.hostname} since ${lock.timestamp}: ` +
        `if nothing runs there any more, remove ${file} and run this again`);
    }
    const deadline = Date.now() + waitSeconds * 1000;
    let said = 0;
    while (pulumiRunning(lock.pid)) {
      if (Date.now() > deadline) {
        throw new Error(`stack '${stack}' is still locked by a running pulumi (pid ${lock.pid}) after ${waitSeconds}s: ` +
          "let it finish, or stop it (kill " + lock.pid + ") and run this again");
      }
      if (Date.now() - said > 10_000) {
        log(`stack ${stack}: waiting for pulumi pid ${lock.pid} (left running by an interrupted command) to finish`);
        said = Date.now();
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    if (fs.existsSync(file)) {
      fs.rmSync(file, { force: true });
      fs.rmSync(`${file}.attrs`, { force: true }); // its metadata (the file backend's)
      log(`stack ${stack}: cleared a Pulumi lock left by pid ${lock.pid} (since ${lock.timestamp}), which is no longer running`);
    }
  }
}

/** Names of the Docker objects an interrupted create may have made without recording them. */
export function interruptedCreates(deployment: Deployment): { containers: string[]; networks: string[]; other: string[] } {
  const out = { containers: [] as string[], networks: [] as string[], other: [] as string[] };
  for (const op of deployment.pending_operations ?? []) {
    if (op.type !== "creating") continue;
    const name = op.resource.inputs?.name;
    if (op.resource.type === CONTAINER && typeof name === "string") out.containers.push(name);
    else if (op.resource.type === NETWORK && typeof name === "string") out.networks.push(name);
    else out.other.push(op.resource.urn);
  }
  return out;
}

/** Reconciles the operations a crash interrupted, then refreshes; does nothing when there are none. */
export async function resolvePendingOperations(fleetStack: FleetStack, engine: Dockerode, log: Log): Promise<boolean> {
  const stack = await openStack(fleetStack.ctx, fleetStack.target, false, fleetStack.passphrase);
  const deployment = (await stack.exportStack()).deployment as Deployment;
  const pending = deployment.pending_operations ?? [];
  if (pending.length === 0) return false;
  log(`stack ${stack.name}: ${pending.length} operation(s) were interrupted (${pending.map((p) => `${p.type} ${p.resource.urn.split("::").pop()}`).join(", ")}); ` +
    "reconciling with the engine before going on");
  const recorded = new Set((deployment.resources ?? []).map((r) => r.id).filter(Boolean));
  const { containers, networks } = interruptedCreates(deployment);
  for (const name of containers) {
    const info = await engine.getContainer(name).inspect().catch(() => undefined);
    if (info && !recorded.has(info.Id)) {
      log(`stack ${stack.name}: removing container ${name}, created by the interrupted run but never recorded (its data volume stays)`);
      await engine.getContainer(info.Id).remove({ force: true, v: false });
    }
  }
  for (const name of networks) {
    const info = await engine.getNetwork(name).inspect().catch(() => undefined) as { Id: string; Containers?: object } | undefined;
    if (info && !recorded.has(info.Id) && Object.keys(info.Containers ?? {}).length === 0) {
      log(`stack ${stack.name}: removing network ${name}, created by the interrupted run but never recorded`);
      await engine.getNetwork(info.Id).remove();
    }
  }
  await stack.refresh({ clearPendingCreates: true, onOutput: pulumiOutput(stack.name, log), color: "never" });
  return true;
}
