/** The fleet's flock locks, across real processes: exclusive, released by kill -9, waited for when asked. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { StackBusyError, withLock, withWaitingLock } from "../../src/project/lock";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-lock-"));
const lockModule = path.resolve(__dirname, "../../src/project/lock.ts");

/** A separate node process that takes the lock (for `purpose`, when given), says so, and holds it until killed. */
function holder(name: string, purpose?: string) {
  const code = `require(${JSON.stringify(lockModule)}).withLock(${JSON.stringify(dir)}, ${JSON.stringify(name)}, () => { console.log("held"); return new Promise(() => {}); }` +
    `${purpose ? `, { purpose: ${JSON.stringify(purpose)} }` : ""})`;
  const child = spawn(process.execPath, ["--import", "tsx", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  // a holder that ends before it holds the lock (a module that does not load) fails the test instead of hanging it
  const held = new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`the lock holder exited (${code}) before it held the lock`)));
  });
  return { child, held };
}

describe("fleet locks", () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a holder of a purpose the caller waits out (a backup) is waited for; others are refused at once", async () => {
    const h = holder("stack.staging-bk", "backup");
    await h.held;
    try {
      await assert.rejects(withLock(dir, "stack.staging-bk", async () => "no", { waitWhileHeldFor: { restore: 60 } }), (err: unknown) => {
        assert.ok(err instanceof StackBusyError);
        assert.match(err.message, /\(backup\)/, "the holder's purpose is named");
        return true;
      });
      const released = setTimeout(() => h.child.kill("SIGKILL"), 1500);
      const t0 = Date.now();
      assert.equal(await withLock(dir, "stack.staging-bk", async () => "waited", { waitWhileHeldFor: { backup: 60 } }), "waited");
      clearTimeout(released);
      assert.ok(Date.now() - t0 >= 1000, "it waited for the backup to end");
    } finally {
      h.child.kill("SIGKILL");
    }
  });

  it("a second process is refused at once while the first holds the lock, naming the holder", async () => {
    const h = holder("stack.staging-acme");
    await h.held;
    try {
      await assert.rejects(withLock(dir, "stack.staging-acme", async () => "no"), (err: unknown) => {
        assert.ok(err instanceof StackBusyError);
        assert.match(err.message, new RegExp(`another fleet operation holds 'stack.staging-acme' \\(pid ${h.child.pid} since `));
        return true;
      });
      // a lock of another name is free
      assert.equal(await withLock(dir, "stack.staging-globex", async () => "ok"), "ok");
    } finally {
      h.child.kill("SIGKILL");
    }
  });

  it("kill -9 of the holder frees the lock at once: no stale lock to detect", async () => {
    const h = holder("stack.prod-acme");
    await h.held;
    h.child.kill("SIGKILL");
    await new Promise((r) => h.child.once("exit", r));
    assert.equal(await withWaitingLock(dir, "stack.prod-acme", async () => "taken", 5), "taken");
  });

  it("a waiting lock serializes concurrent holders in one process", async () => {
    const order: string[] = [];
    const job = (n: string) => withWaitingLock(dir, "ports.staging", async () => {
      order.push(`${n}+`);
      await new Promise((r) => setTimeout(r, 50));
      order.push(`${n}-`);
    }, 10);
    await Promise.all([job("a"), job("b"), job("c")]);
    for (let i = 0; i < order.length; i += 2) assert.equal(order[i]!.slice(0, 1), order[i + 1]!.slice(0, 1), order.join(" "));
  });
  it("the lock's flock and its shell get none of fleet's environment (no secret of fleet's reaches them)", async () => {
    process.env.HF_LOCK_TEST_SECRET = "lock-canary-secret";
    try {
      const environs = await withLock(dir, "stack.staging-env", async () => {
        // this process's descendants while it holds the lock: flock, and the shell (cat) under it
        const parent = new Map<number, number>();
        for (const pid of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
          try {
            const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
            parent.set(Number(pid), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
          } catch { /* gone */ }
        }
        const mine = (pid: number): boolean => pid === process.pid || (pid > 1 && mine(parent.get(pid) ?? 0));
        return [...parent.keys()].filter((pid) => pid !== process.pid && mine(pid)).map((pid) => {
          try {
            return fs.readFileSync(`/proc/${pid}/environ`, "utf8");
          } catch {
            return "";
          }
        });
      });
      assert.ok(environs.length >= 2, "the lock's flock and shell processes were not found");
      for (const environ of environs) assert.doesNotMatch(environ, /lock-canary-secret|HF_LOCK_TEST_SECRET/);
    } finally {
      delete process.env.HF_LOCK_TEST_SECRET;
    }
  });
});
