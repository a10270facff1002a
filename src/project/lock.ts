/**
 * Cross-process locks under .fleet/locks, held with flock(2) through util-linux `flock`.
 *
 * The kernel owns the lock: it is released the moment its holder exits, however it exits (kill -9
 * included), so there is no stale lock to detect and no window in which two processes both take one
 * over. Each lock is a child `flock <file> cat` whose stdin is a pipe from this process: when this
 * process ends, `cat` reads end-of-file and the lock goes with it.
 *
 * Lock names have a kind prefix, so a lock of one kind never meets another's: `stack.<stack>` (one
 * operation per Pulumi stack), `customers.<environment>` (the customer stack files of an environment), `rollout`, `build`
 * (compiling the program).
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export class StackBusyError extends Error {}

export const stackLock = (stack: string) => `stack.${stack}`;
/** the customer stack files of one environment: written one at a time */
export const customersLock = (environment: string) => `customers.${environment}`;
export const ROLLOUT_LOCK = "rollout";
export const BUILD_LOCK = "build";

const FLOCK_CONFLICT = 75;

interface Owner { pid: number; since: string; command: string }

function lockFile(projectDir: string, name: string): string {
  const dir = path.join(projectDir, ".fleet", "locks");
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, `${name}.lock`);
}

function describeOwner(file: string): string {
  try {
    const o = JSON.parse(fs.readFileSync(`${file}.owner`, "utf8")) as Owner;
    return `pid ${o.pid} since ${o.since}: ${o.command}`;
  } catch {
    return "holder unknown";
  }
}

/** Takes the lock, waiting up to waitSeconds (0: fail at once). Resolves with the release function. */
async function acquire(projectDir: string, name: string, waitSeconds: number): Promise<() => Promise<void>> {
  const file = lockFile(projectDir, name);
  const wait = waitSeconds > 0 ? ["-w", String(waitSeconds)] : ["-n"];
  const child: ChildProcess = spawn("flock", ["-E", String(FLOCK_CONFLICT), ...wait, file, "sh", "-c", "echo locked; exec cat >/dev/null"],
    // flock, sh and cat need nothing of fleet's environment (the default search path finds them)
    { stdio: ["pipe", "pipe", "pipe"], env: {} });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => { stderr += c.toString(); });
  const locked = await new Promise<boolean>((resolve, reject) => {
    child.once("error", (err) => reject(new Error(`cannot run flock (util-linux) for the fleet lock '${name}': ${err.message}`)));
    child.stdout!.once("data", () => resolve(true));
    void exited.then(() => resolve(false));
  });
  if (!locked) {
    const code = await exited;
    if (code === FLOCK_CONFLICT) {
      const waited = waitSeconds > 0 ? ` (waited ${waitSeconds}s)` : "";
      throw new StackBusyError(`another fleet operation holds '${name}'${waited} (${describeOwner(file)}); wait for it to finish and run this again`);
    }
    throw new Error(`flock on ${file} failed (exit ${code}): ${stderr.trim()}`);
  }
  const owner: Owner = { pid: process.pid, since: new Date().toISOString(), command: process.argv.slice(1).join(" ") };
  fs.writeFileSync(`${file}.owner`, JSON.stringify(owner));
  return async () => {
    child.stdin!.end();
    await exited;
  };
}

/** Runs fn holding the lock; fails at once with StackBusyError when another process holds it. */
export async function withLock<T>(projectDir: string, name: string, fn: () => Promise<T>): Promise<T> {
  const release = await acquire(projectDir, name, 0);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** Like withLock, but waits its turn (for short critical sections such as writing a stack file). */
export async function withWaitingLock<T>(projectDir: string, name: string, fn: () => Promise<T>, timeoutSeconds = 120): Promise<T> {
  const release = await acquire(projectDir, name, timeoutSeconds);
  try {
    return await fn();
  } finally {
    await release();
  }
}
