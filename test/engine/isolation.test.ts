/**
 * One customer's processes never limit another's, on the real engine. Every customer runs as UID 1000,
 * and RLIMIT_NPROC (the nproc ulimit) counts the processes and threads of a UID on the whole host: a
 * "hog" customer starting threads up to its own PIDs limit used to make fork fail in every customer
 * whose nproc was lower than that host-wide count. fleet sets no nproc; the per-container PIDs cgroup
 * bounds each customer. The containers are made from the same ServiceSpec -> Engine API mapping the
 * components deploy; a control container with the old nproc ulimit shows the hog really is enough to
 * break a customer that has one.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PassThrough } from "node:stream";
import type Dockerode from "dockerode";
import type { EnvironmentConfig } from "../../src/config/schema";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { execIn } from "../../src/engine/exec";
import { serviceSpec, type ServiceSpec } from "../../src/hardening/serviceSpec";
import { engine, removeQuietly, waitHealthy, writeKeyFile } from "../support/engine";
import { buildStagingImage } from "../support/image";

const TAG = "hf-h1/customer-app:isolation-test";
/** the old default nproc was 256 (staging's plans had 128 and 256): the hog goes well past it, within its own PIDs limit */
const OLD_NPROC = 256;
const HOG_THREADS = 600;
const HOG_PIDS = 1024;

/** Starts `threads` sleeping threads in the hog's app runtime; resolves with how many started, the exec staying alive. */
async function startThreads(container: Dockerode.Container, threads: number): Promise<number> {
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
async function canFork(container: Dockerode.Container): Promise<{ ok: boolean; detail: string }> {
  try {
    const r = await execIn(container, ["/opt/venv/bin/python", "-c", "import subprocess, sys; print(subprocess.run([sys.executable, '-c', '']).returncode)"], 20_000);
    return { ok: r.exitCode === 0 && r.stdout.trim() === "0", detail: `exit ${r.exitCode}: ${r.stdout.trim()} ${r.stderr.trim().slice(-300)}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

type HealthLog = { Start: string; ExitCode: number; Output: string }[];

/** The healthcheck runs that started after `since`, once there are at least `count` (or the timeout passed). */
async function healthRunsSince(container: Dockerode.Container, since: number, count: number, timeoutMs = 30_000): Promise<HealthLog> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = ((await container.inspect()).State.Health?.Log ?? []) as HealthLog;
    const runs = log.filter((e) => Date.parse(e.Start) > since);
    if (runs.length >= count || Date.now() > deadline) return runs;
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe("one customer's threads never stop another's fork (no nproc: the PIDs limit per container)", () => {
  let env: EnvironmentConfig;
  const specs: ServiceSpec[] = [];
  const containers = new Map<string, Dockerode.Container>();
  let started = 0;
  let hogStartedAt = 0;

  const cleanUp = async () => {
    for (const spec of specs) await removeQuietly({ containers: [spec.containerName], networks: [spec.networkName], volumes: [spec.dataVolumeName, spec.secretFile!.volume] });
  };

  before(async () => {
    let imageId: string;
    ({ env, imageId } = await buildStagingImage(TAG));
    // a plan whose PIDs limit is above the old default nproc: its customer may run that many threads
    const plans = { ...env.plans, hog: { ...env.plans.starter!, memoryMb: 512, pids: HOG_PIDS } };
    const withHog: EnvironmentConfig = { ...env, plans };
    for (const [id, plan] of [["iso-hog", "hog"], ["iso-victim", "starter"], ["iso-control", "starter"]] as const) {
      specs.push(serviceSpec(withHog, { id, environment: "staging", plan }, imageId));
    }
    await cleanUp();
    for (const spec of specs) {
      await engine.createNetwork({ Name: spec.networkName, Labels: spec.identityLabels });
      await engine.createVolume({ Name: spec.dataVolumeName, Labels: spec.identityLabels });
      await writeKeyFile(spec, "i".repeat(48));
      const opts = toEngineCreateOptions(spec, {});
      // the control: the same customer with the nproc ulimit fleet used to set
      if (spec.customerId === "iso-control") opts.HostConfig!.Ulimits = [...(opts.HostConfig!.Ulimits ?? []), { Name: "nproc", Soft: OLD_NPROC, Hard: OLD_NPROC }];
      const c = await engine.createContainer(opts);
      await c.start();
      containers.set(spec.customerId, c);
    }
    const health = await Promise.all([...containers.values()].map((c) => waitHealthy(c, 60_000)));
    assert.deepEqual(health, ["healthy", "healthy", "healthy"], "the three customers start healthy");
    hogStartedAt = Date.now();
    started = await startThreads(containers.get("iso-hog")!, HOG_THREADS);
  });

  after(cleanUp);

  it("fleet's customers carry no nproc ulimit; each has its own PIDs limit", async () => {
    for (const id of ["iso-hog", "iso-victim"]) {
      const hc = (await containers.get(id)!.inspect()).HostConfig;
      assert.deepEqual((hc.Ulimits ?? []).map((u) => u.Name).filter((n) => n === "nproc"), [], id);
      assert.ok((hc.PidsLimit ?? 0) > 0, `${id}: PidsLimit ${hc.PidsLimit}`);
    }
  });

  it(`the hog runs ${HOG_THREADS} threads, more than the old nproc (${OLD_NPROC}), within its own PIDs limit (${HOG_PIDS})`, () => {
    assert.equal(started, HOG_THREADS);
  });

  it("another customer still forks, and its healthcheck stays healthy, while the hog's threads run", async () => {
    const fork = await canFork(containers.get("iso-victim")!);
    assert.ok(fork.ok, `fork in iso-victim failed: ${fork.detail}`);
    const runs = await healthRunsSince(containers.get("iso-victim")!, hogStartedAt, 2);
    assert.ok(runs.length >= 2, `only ${runs.length} healthcheck runs since the hog started`);
    assert.deepEqual(runs.filter((r) => r.ExitCode !== 0).map((r) => r.Output.slice(0, 200)), []);
    assert.equal((await containers.get("iso-victim")!.inspect()).State.Health?.Status, "healthy");
  });

  it(`control: the same customer with the old nproc ulimit (${OLD_NPROC}) cannot fork, and its healthcheck fails`, async () => {
    const fork = await canFork(containers.get("iso-control")!);
    assert.equal(fork.ok, false, `fork in iso-control succeeded: ${fork.detail}`);
    const runs = await healthRunsSince(containers.get("iso-control")!, hogStartedAt, 1);
    assert.ok(runs.length >= 1 && runs.every((r) => r.ExitCode !== 0), JSON.stringify(runs));
  });
});
