/**
 * Sandboxed customers on the real engine (runsc, docs/sandbox.md): each runs in a gVisor kernel of
 * its own, which counts the nproc ulimit for that customer alone. A "hog" starting threads is stopped
 * by its own limit (the plan's pids), while a sandboxed neighbour still forks and stays healthy, and a
 * new customer still starts. The containers are made from the same ServiceSpec -> Engine API mapping
 * the components deploy; the audit passes them, probing from inside the sandbox.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type Dockerode from "dockerode";
import { auditContainer } from "../../src/audit/audit";
import type { EnvironmentConfig } from "../../src/config/schema";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { serviceSpec, type ServiceSpec } from "../../src/hardening/serviceSpec";
import { engine, prepareSpec, removeQuietly, waitHealthy } from "../support/engine";
import { buildStagingImage } from "../support/image";
import { canFork, healthRunsSince, startThreads } from "../support/processes";

const TAG = "hf-h1/customer-app:sandbox-test";
/** more threads than the plan's pids (the sandbox's nproc): the hog's own kernel stops it */
const HOG_THREADS = 2000;

describe("sandboxed customers: one's threads never stop another's fork (real engine, runsc)", { timeout: 10 * 60_000 }, () => {
  let env: EnvironmentConfig;
  const specs = new Map<string, ServiceSpec>();
  const containers = new Map<string, Dockerode.Container>();
  let started = 0;
  let hogStartedAt = 0;
  let image = "";

  const cleanUp = async () => {
    for (const spec of specs.values()) {
      await removeQuietly({ containers: [spec.containerName], networks: [spec.networkName], volumes: [spec.dataVolumeName, spec.secretFile!.volume] });
    }
  };

  async function startCustomer(id: string): Promise<Dockerode.Container> {
    const spec = serviceSpec(env, { id, environment: "staging", plan: "sandboxed" }, image);
    specs.set(id, spec);
    await prepareSpec(spec, "s".repeat(48));
    const c = await engine.createContainer(toEngineCreateOptions(spec, {}));
    await c.start();
    containers.set(id, c);
    return c;
  }

  before(async () => {
    let imageId: string;
    ({ env, imageId } = await buildStagingImage(TAG));
    assert.equal(env.plans.sandboxed?.sandbox, "gvisor", "staging has the sandboxed plan");
    image = imageId;
    for (const id of ["sbx-hog", "sbx-neighbour"]) await startCustomer(id);
    const health = await Promise.all([...containers.values()].map((c) => waitHealthy(c, 90_000)));
    assert.deepEqual(health, ["healthy", "healthy"], "the two sandboxed customers start healthy");
    hogStartedAt = Date.now();
    started = await startThreads(containers.get("sbx-hog")!, HOG_THREADS);
  });

  after(cleanUp);

  it("each runs under runsc, with the plan's pids as its nproc and the host's PIDs cgroup as the backstop", async () => {
    for (const id of ["sbx-hog", "sbx-neighbour"]) {
      const hc = (await containers.get(id)!.inspect()).HostConfig;
      assert.equal(hc.Runtime, "runsc", id);
      assert.deepEqual((hc.Ulimits ?? []).find((u) => u.Name === "nproc"), { Name: "nproc", Soft: 128, Hard: 128 }, id);
      assert.equal(hc.PidsLimit, 2 * 128 + 64, id);
    }
  });

  it(`the hog's threads stop at its own limit (${HOG_THREADS} asked, the plan's 128 at most), and it cannot fork then`, async () => {
    assert.ok(started < 128 && started >= 64, `the hog started ${started} threads`);
    const fork = await canFork(containers.get("sbx-hog")!);
    assert.equal(fork.ok, false, `fork in the hog succeeded: ${fork.detail}`);
  });

  it("the sandboxed neighbour still forks, and its healthcheck stays healthy, while the hog holds its threads", async () => {
    const fork = await canFork(containers.get("sbx-neighbour")!);
    assert.ok(fork.ok, `fork in the neighbour failed: ${fork.detail}`);
    const runs = await healthRunsSince(containers.get("sbx-neighbour")!, hogStartedAt, 2);
    assert.ok(runs.length >= 2, `only ${runs.length} healthcheck runs since the hog started`);
    assert.deepEqual(runs.filter((r) => r.ExitCode !== 0).map((r) => r.Output.slice(0, 200)), []);
  });

  it("a new sandboxed customer still starts healthy, and the audit passes it, probed from inside its sandbox", async () => {
    const late = await startCustomer("sbx-late");
    assert.equal(await waitHealthy(late, 90_000), "healthy");
    const a = await auditContainer(engine, (await late.inspect()).Id);
    assert.deepEqual(a.checks.filter((c) => !c.ok), [], "every check passes");
    assert.equal(a.checks.find((c) => c.id === "runtime")!.detail, "runsc (gvisor sandbox)");
  });
});
