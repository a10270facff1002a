/**
 * `fleet serve` as a real process whose job kills it (SIGKILL) every time it runs: each run is counted
 * as an attempt when it starts (durably, in the queue file, before the operation), so after a kill and
 * a restart the interrupted run counts, and the job stops as failed after --max-attempts runs instead
 * of crash-looping; the server then stays up. Test-only operations (crashingOperations.ts): nothing
 * is deployed, no Docker, no Pulumi.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { JobQueue, type Job } from "../../src/webhooks/queue";
import { checkoutCompleted, deliver, getJson, JOBS_TOKEN, SECRET, sign } from "./support";

const root = path.resolve(__dirname, "..", "..");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "hf-serve-attempts-"));
const db = path.join(work, "queue.db");
const opsLog = path.join(work, "ops.log");
const groups = new Set<number>();

interface Served {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** the base URL once it listens */
  listening: Promise<string>;
}

function serve(): Served {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(root, "src", "cli", "main.ts"),
    "serve", "--env", "staging", "--listen", "127.0.0.1:0", "--db", db, "--max-attempts", "2", "--retry-delay", "1"], {
    cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true,
    env: { ...process.env, FLEET_PROJECT_DIR: work, STRIPE_WEBHOOK_SECRET: SECRET, FLEET_JOBS_TOKEN: JOBS_TOKEN,
      FLEET_SERVE_TEST_OPERATIONS: path.join(root, "test", "webhooks", "crashingOperations.ts"), FAKE_OPS_LOG: opsLog },
  });
  groups.add(child.pid!);
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })));
  const listening = new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (c: Buffer) => {
      stdout += c.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\/webhooks\/stripe/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then(({ code, signal }) => reject(new Error(`fleet serve ended (${code ?? signal}) before listening:\n${stderr}`)));
  });
  listening.catch(() => {});
  return { child, stderr: () => stderr, exited, listening };
}

function job(eventId: string): Job {
  const q = JobQueue.open(db, { readOnly: true });
  try {
    return q.jobForEvent(eventId)!;
  } finally {
    q.close();
  }
}

const starts = () => (fs.existsSync(opsLog) ? fs.readFileSync(opsLog, "utf8").split("\n").filter(Boolean).length : 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("fleet serve: a job that kills the process", { timeout: 120_000 }, () => {
  // a staging-tier environment: test-mode events may act on it
  fs.copyFileSync(path.join(root, "Pulumi.staging.yaml"), path.join(work, "Pulumi.staging.yaml"));
  after(() => {
    for (const pgid of groups) {
      try { process.kill(-pgid, "SIGKILL"); } catch { /* gone */ }
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("counts each interrupted run when it starts and stops as failed after --max-attempts, then serves on", async () => {
    const event = checkoutCompleted("evt_ar_crash", 1_790_000_000, "ar-crash", "starter");
    Object.assign(event.data.object, { customer: "cus_ArCrash", subscription: "sub_ArCrash" });

    // run 1: accepted, claimed (attempt 1 on disk before the operation), then the process dies
    const first = serve();
    const d = sign(event);
    assert.equal((await deliver(await first.listening, d.body, d.signature)).status, 200);
    assert.equal((await first.exited).signal, "SIGKILL", first.stderr());
    let j = job(event.id);
    assert.deepEqual([j.status, j.attempts, j.interrupted], ["running", 1, 0], "the run was counted before it began");
    assert.equal(starts(), 1);

    // run 2, after a restart: the interrupted run still counts; this one is the last allowed
    const second = serve();
    assert.equal((await second.exited).signal, "SIGKILL", second.stderr());
    j = job(event.id);
    assert.deepEqual([j.status, j.attempts, j.interrupted], ["running", 2, 1]);
    assert.equal(starts(), 2);

    // third start: the job is failed with the reason, never run again; the server stays up
    const third = serve();
    const base = await third.listening;
    await sleep(1500); // longer than the retry delay and poll: a third run would have happened by now
    const health = await getJson(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(starts(), 2, "the job ran again after its last attempt");
    j = job(event.id);
    assert.equal(j.status, "failed");
    assert.deepEqual([j.attempts, j.interrupted], [2, 2]);
    assert.match(j.lastError ?? "", /^the process ended \(crash, kill -9, power loss\) while attempt 2 ran\n {2}\(gave up after 2 attempts, 2 of them interrupted: fix the cause, then 'fleet jobs --retry \d+'\)/);
    assert.equal(third.child.exitCode, null, "serve is still running");
    third.child.kill("SIGTERM");
    assert.equal((await third.exited).code, 0, third.stderr());
  });
});
