/**
 * One operation per stack at a time, across processes: an exclusive lock file under .fleet/locks.
 * A second operation on the same stack fails at once with who holds it; a lock whose process is
 * gone is taken over.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export class StackBusyError extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function acquire(projectDir: string, name: string): () => void {
  const dir = path.join(projectDir, ".fleet", "locks");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.lock`);
  const body = JSON.stringify({ pid: process.pid, since: new Date().toISOString() });
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, body, { flag: "wx" });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let holder: { pid?: number; since?: string } = {};
      try { holder = JSON.parse(fs.readFileSync(file, "utf8")); } catch { /* being written */ }
      if (attempt > 0 || holder.pid === undefined || alive(holder.pid)) {
        throw new StackBusyError(`another fleet operation on '${name}' is running (pid ${holder.pid ?? "?"} since ${holder.since ?? "?"}); wait for it to finish and run this again`);
      }
      fs.rmSync(file, { force: true }); // its process is gone: take the lock over
    }
  }
}

/** Runs fn holding the lock; fails at once with StackBusyError when someone else holds it. */
export async function withLock<T>(projectDir: string, name: string, fn: () => Promise<T>): Promise<T> {
  const release = acquire(projectDir, name);
  try {
    return await fn();
  } finally {
    release();
  }
}

/** Like withLock, but waits its turn (for short critical sections such as port allocation). */
export async function withWaitingLock<T>(projectDir: string, name: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let release: (() => void) | undefined;
  while (!release) {
    try {
      release = acquire(projectDir, name);
    } catch (err) {
      if (!(err instanceof StackBusyError) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    release();
  }
}
