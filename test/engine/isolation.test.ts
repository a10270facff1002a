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
import type Dockerode from "dockerode";
import type { EnvironmentConfig } from "../../src/config/schema";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { serviceSpec, type ServiceSpec } from "../../src/hardening/serviceSpec";
import { engine, prepareSpec, removeQuietly, waitHealthy } from "../support/engine";
import { buildStagingImage } from "../support/image";
import { canFork, healthRunsSince, startThreads } from "../support/processes";

const TAG = "hf-h1/customer-app:isolation-test";
/** the old default nproc was 256 (staging's plans had 128 and 256): the hog goes well past it, within its own PIDs limit */
const OLD_NPROC = 256;
const HOG_THREADS = 600;
const HOG_PIDS = 1024;

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
    for (const spec of specs) {
      await prepareSpec(spec, "i".repeat(48));
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
