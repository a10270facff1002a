/** The image's PID 1 (src/image/assets/supervise.py), run as a real process with the machine's python3. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { describe, it } from "node:test";

const script = path.resolve(__dirname, "../../src/image/assets/supervise.py");

function run(cmd: string[]): { exit: Promise<number | null>; started: Promise<void>; pid: number } {
  const child = spawn("python3", [script, ...cmd], { stdio: ["ignore", "pipe", "inherit"] });
  const started = new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { exit, started, pid: child.pid! };
}

describe("supervise.py", () => {
  it("stopped by TERM, it exits 143 even when the command exits 0 on TERM (so on-failure restarts it after an engine restart)", async () => {
    const p = run(["sh", "-c", "trap 'exit 0' TERM; echo up; while :; do sleep 0.1; done"]);
    await p.started;
    process.kill(p.pid, "SIGTERM");
    assert.equal(await p.exit, 143);
  });

  it("passes the signal on: the command sees TERM and can shut down cleanly", async () => {
    const p = run(["sh", "-c", "trap 'echo got-term >&2; exit 0' TERM; echo up; while :; do sleep 0.1; done"]);
    await p.started;
    process.kill(p.pid, "SIGTERM");
    assert.equal(await p.exit, 143);
  });

  it("otherwise exits with the command's own status", async () => {
    assert.equal(await run(["sh", "-c", "echo up; exit 0"]).exit, 0);
    assert.equal(await run(["sh", "-c", "echo up; exit 3"]).exit, 3);
  });
});
