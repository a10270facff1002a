/**
 * Cross-process locks under .fleet/locks, held with flock(2) through util-linux `flock`.
 *
 * The kernel owns the lock: it is released the moment its holder exits, however it exits (kill -9
 * included), so there is no stale lock to detect and no window in which two processes both take one
 * over. Each lock is a child `flock <file> cat` whose stdin is a pipe from this process: when this
 * process ends, `cat` reads end-of-file and the lock goes with it.
 *
 * A holder may say what it holds a lock for (`purpose`); a caller may wait out holders of some
 * purposes instead of failing at once: a deployment waits for a backup of its customer (seconds).
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
/** a backup holds a customer's stack lock with this purpose (seconds: while it pauses the customer) */
export const BACKUP_LOCK_PURPOSE = "backup";

const FLOCK_CONFLICT = 75;

/**
 * Who holds a lock (written beside it once taken). `purpose` says what for, when the holder said so:
 * a `backup` holds a customer's stack lock for seconds, and a deployment waits for it rather than fail.
 */
interface Owner { pid: number; since: string; command: string; purpose?: string }

export interface LockOptions {
  /** what the lock is taken for, recorded for whoever meets it */
  purpose?: string;
  /** when the lock is held for one of these purposes, wait up to that many seconds instead of failing at once */
  waitWhileHeldFor?: Record<string, number>;
}

/**
 * What deployments and removals of a stack take its lock with: a backup of the customer is waited
 * for (up to 15 minutes: the longest pause, backup.maxPauseSeconds, and the job around it).
 */
export const WAIT_FOR_BACKUPS: LockOptions = { waitWhileHeldFor: { [BACKUP_LOCK_PURPOSE]: 900 } };

function ownerOf(file: string): Owner | undefined {
  try {
    return JSON.parse(fs.readFileSync(`${file}.owner`, "utf8")) as Owner;
  } catch {
    return undefined;
  }
}

function lockFile(projectDir: string, name: string): string {
  const dir = path.join(projectDir, ".fleet", "locks");
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, `${name}.lock`);
}

function describeOwner(file: string): string {
  const o = ownerOf(file);
  return o ? `pid ${o.pid} since ${o.since}: ${o.command}${o.purpose ? ` (${o.purpose})` : ""}` : "holder unknown";
}

/** Takes the lock, waiting up to waitSeconds (0: fail at once). Resolves with the release function. */
async function acquire(projectDir: string, name: string, waitSeconds: number, opts: LockOptions = {}): Promise<() => Promise<void>> {
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
      const purpose = ownerOf(file)?.purpose;
      const patience = purpose !== undefined && waitSeconds === 0 ? opts.waitWhileHeldFor?.[purpose] : undefined;
      if (patience) return acquire(projectDir, name, patience, { ...opts, waitWhileHeldFor: undefined });
      const waited = waitSeconds > 0 ? ` (waited ${waitSeconds}s)` : "";
      throw new StackBusyError(`another fleet operation holds '${name}'${waited} (${describeOwner(file)}); wait for it to finish and run this again`);
    }
    throw new Error(`flock on ${file} failed (exit ${code}): ${stderr.trim()}`);
  }
  const owner: Owner = { pid: process.pid, since: new Date().toISOString(), command: process.argv.slice(1).join(" "), purpose: opts.purpose };
  fs.writeFileSync(`${file}.owner`, JSON.stringify(owner));
  return async () => {
    child.stdin!.end();
    await exited;
  };
}

/**
 * Runs fn holding the lock; fails at once with StackBusyError when another process holds it (unless
 * it holds it for a purpose `opts.waitWhileHeldFor` waits out).
 */
export async function withLock<T>(projectDir: string, name: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const release = await acquire(projectDir, name, 0, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** Like withLock, but waits its turn (for short critical sections such as writing a stack file). */
export async function withWaitingLock<T>(projectDir: string, name: string, fn: () => Promise<T>, timeoutSeconds = 120,
  opts: LockOptions = {}): Promise<T> {
  const release = await acquire(projectDir, name, timeoutSeconds, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}
