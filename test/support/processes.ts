/**
 * What the isolation tests do inside a customer's container through the Engine API (exec of the
 * app's own Python): start threads up to a limit and hold them, try a fork, read the healthcheck's
 * runs. Shared by test/engine/isolation.test.ts (runc) and test/engine/sandbox.test.ts (runsc).
 */
import { PassThrough } from "node:stream";
import type Dockerode from "dockerode";
import { execIn } from "../../src/engine/exec";

/** Starts `threads` sleeping threads in the hog's app runtime; resolves with how many started, the exec staying alive. */
export async function startThreads(container: Dockerode.Container, threads: number): Promise<number> {
  const script = [
    "import threading, time",
    "threading.stack_size(256 * 1024)",
    "stop = threading.Event()",
    "n = 0",
    `for _ in range(${threads}):`,
    "    try:",
    "        threading.Thread(target=stop.wait, daemon=True).start()",
    "        n += 1",
    "    except RuntimeError:",
    "        break",
    "print(f'started {n}', flush=True)",
    "time.sleep(120)",
  ].join("\n");
  const exec = await container.exec({ Cmd: ["/opt/venv/bin/python", "-c", script], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  container.modem.demuxStream(stream, out, out);
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`the hog's threads did not start: ${text}`)), 60_000);
    out.on("data", (c: Buffer) => {
      text += c.toString("utf8");
      const m = /started (\d+)/.exec(text);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    stream.on("end", () => { clearTimeout(timer); reject(new Error(`the hog's exec ended: ${text}`)); });
  });
}

/** Whether a new process of the customer can fork: an exec (itself a new process of UID 1000) that runs a subprocess. */
export async function canFork(container: Dockerode.Container): Promise<{ ok: boolean; detail: string }> {
  try {
    const r = await execIn(container, ["/opt/venv/bin/python", "-c", "import subprocess, sys; print(subprocess.run([sys.executable, '-c', '']).returncode)"], 20_000);
    return { ok: r.exitCode === 0 && r.stdout.trim() === "0", detail: `exit ${r.exitCode}: ${r.stdout.trim()} ${r.stderr.trim().slice(-300)}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

export type HealthLog = { Start: string; ExitCode: number; Output: string }[];

/** The healthcheck runs that started after `since`, once there are at least `count` (or the timeout passed). */
export async function healthRunsSince(container: Dockerode.Container, since: number, count: number, timeoutMs = 30_000): Promise<HealthLog> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = ((await container.inspect()).State.Health?.Log ?? []) as HealthLog;
    const runs = log.filter((e) => Date.parse(e.Start) > since);
    if (runs.length >= count || Date.now() > deadline) return runs;
    await new Promise((r) => setTimeout(r, 500));
  }
}
