/** The DeployTarget of each target (src/targets): what can be checked without an engine, one test per target and method. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type Dockerode from "dockerode";
import { parseEnvironmentConfig } from "../../src/config/load";
import type { CustomerConfig, EnvironmentConfig } from "../../src/config/schema";
import { serviceSpec } from "../../src/hardening/serviceSpec";
import { swarmServiceName } from "../../src/swarm/serviceSpec";
import { customerTargetKind, deployTargetFor } from "../../src/targets";
import { DockerTarget } from "../../src/targets/docker/target";
import { SwarmTarget } from "../../src/targets/swarm/target";
import { dockerProgram } from "../../src/targets/docker/program";
import { swarmProgram } from "../../src/targets/swarm/program";
import { rawEnvironment, configError } from "../support/fixtures";

const IMAGE = `sha256:${"a".repeat(64)}`;
const docker = parseEnvironmentConfig(rawEnvironment("staging"));
const swarm = parseEnvironmentConfig({
  ...rawEnvironment("staging"), name: "swarm", target: "swarm", registry: { address: "10.0.0.5:5000" },
  swarm: { nodes: ["n1", "n2", "n3"].map((n) => ({ name: n, host: `unix:///run/test/${n}.sock` })) },
});
const customer = (id: string, environment: string, node?: string): CustomerConfig => ({ id, environment, plan: "starter", node });

/** A stand-in engine: only what a test gives it; anything else it is asked fails the test. */
function fakeEngine(parts: Partial<Record<keyof Dockerode, unknown>> = {}): Dockerode {
  return new Proxy(parts, {
    get: (target, key) => (key in target ? target[key as keyof typeof target] : assert.fail(`the engine was asked ${String(key)}`)),
  }) as unknown as Dockerode;
}

function targets(engine = fakeEngine()) {
  return { docker: deployTargetFor(docker, undefined, () => engine), swarm: deployTargetFor(swarm, "unix:///run/test/n1.sock", () => engine) };
}

describe("deployTargetFor", () => {
  it("gives a docker environment the docker target and a swarm environment the swarm target", () => {
    const t = targets();
    assert.ok(t.docker instanceof DockerTarget);
    assert.equal(t.docker.kind, "docker");
    assert.ok(t.swarm instanceof SwarmTarget);
    assert.equal(t.swarm.kind, "swarm");
    assert.equal(t.swarm.config, swarm);
  });

  it("config: target is a discriminated union; swarm has its nodes and registry by type", () => {
    const narrowed = (env: EnvironmentConfig): string[] => (env.target === "swarm" ? env.swarm.nodes.map((n) => n.name) : []);
    assert.deepEqual(narrowed(swarm), ["n1", "n2", "n3"]);
    assert.deepEqual(narrowed(docker), []);
  });

  it("a customer's target follows from its own config: only a swarm customer has a node", () => {
    assert.equal(customerTargetKind(customer("acme", "staging")), "docker");
    assert.equal(customerTargetKind(customer("acme", "swarm", "n2")), "swarm");
  });
});

describe("docker target", () => {
  it("placement: one host, no node", () => {
    assert.equal(targets().docker.placement(undefined, [customer("a", "staging")]), undefined);
  });

  it("a customer's data is on the host's engine, the only engine there is", async () => {
    const engine = fakeEngine();
    const t = targets(engine).docker;
    assert.equal(t.dataEngine(customer("acme", "staging")), engine);
    assert.deepEqual(t.engines(), [{ engine }]);
    assert.equal(await t.findDataHome("acme", IMAGE), undefined);
    await t.prepareOneShot(engine, IMAGE); // nothing to pull: the fake engine fails on any call
  });

  it("volume holders: the host when it has the volume, nobody otherwise", async () => {
    const has = fakeEngine({ getVolume: () => ({ inspect: async () => ({}) }) });
    assert.deepEqual(await targets(has).docker.volumeHolders("v", undefined), [{ engine: has }]);
    const none = fakeEngine({ getVolume: () => ({ inspect: async () => { throw Object.assign(new Error("no such volume"), { statusCode: 404 }); } }) });
    assert.deepEqual(await targets(none).docker.volumeHolders("v", undefined), []);
  });

  it("status: the container's own health and runtime, its state when stopped, 'not deployed' without one", async () => {
    const state = (State: unknown, HostConfig: unknown = {}) => fakeEngine({ getContainer: () => ({ inspect: async () => ({ State, HostConfig }) }) });
    assert.deepEqual(await targets(state({ Running: true, Health: { Status: "healthy" } }, { Runtime: "runsc" })).docker.status("c"), { health: "healthy", runtime: "runsc" });
    assert.deepEqual(await targets(state({ Running: true })).docker.status("c"), { health: "running", runtime: "runc" });
    assert.deepEqual(await targets(state({ Running: true, Paused: true, Health: { Status: "healthy" } }, { Runtime: "runc" })).docker.status("c"), { health: "paused", runtime: "runc" });
    assert.deepEqual(await targets(state({ Running: false, Status: "exited" }, { Runtime: "runsc" })).docker.status("c"), { health: "exited", runtime: "-" });
    const gone = fakeEngine({ getContainer: () => ({ inspect: async () => { throw new Error("no such container"); } }) });
    assert.deepEqual(await targets(gone).docker.status("c"), { health: "not deployed", runtime: "-" });
  });

  it("a sandboxed plan is refused before anything is made when the engine lacks its runtime; other plans do not ask", async () => {
    const withRuntimes = (...names: string[]) => fakeEngine({ info: async () => ({ Runtimes: Object.fromEntries(names.map((n) => [n, { path: n }])) }) });
    await targets(withRuntimes("runc", "runsc")).docker.checkRuntime("sandboxed", "gvisor", undefined);
    await targets().docker.checkRuntime("starter", "none", undefined); // the fake engine fails on any call
    await assert.rejects(targets(withRuntimes("io.containerd.runc.v2", "runc")).docker.checkRuntime("sandboxed", "gvisor", undefined),
      /plan 'sandboxed' runs its customers in a gvisor sandbox, and the engine of environment 'staging' has no runtime runsc \(its runtimes: io\.containerd\.runc\.v2, runc\): register runsc in that engine's daemon\.json "runtimes".*Nothing was created/);
  });

  it("the gate fails with the reason when the container cannot be audited", async () => {
    const gone = fakeEngine({ getContainer: () => ({ inspect: async () => { throw new Error("no such container: c"); } }) });
    assert.match((await targets(gone).docker.gate("c"))!, /no such container: c/);
  });

  it("the edge sends a customer's requests to its container", () => {
    const spec = serviceSpec(docker, customer("acme", "staging"), IMAGE);
    assert.equal(dockerProgram.edgeUpstream(spec), spec.containerName);
  });

  it("logs come from the customer's container", () => {
    const engine = fakeEngine();
    assert.deepEqual(targets(engine).docker.logSource("acme", "hf-staging-acme-1234"), {
      collectors: [{ engine }], collector: "hf-staging-edge-logs", customer: "acme",
      fallback: { kind: "container", engine, name: "hf-staging-acme-1234" },
    });
  });

  it("a move is refused: one host has no other node", async () => {
    const t = targets().docker;
    assert.match(configError(() => t.checkMove("n2")).message, /--env: runs on one host \(target: docker\): there is no other node to move to/);
    await assert.rejects(t.moveToNode({} as never, () => {}), /runs on one host/);
    // a restore on another node (fleet restore --node) too
    assert.match(configError(() => t.nodeEngineFor("n2")).message, /--node: is for target: swarm; 'staging' runs on one host/);
  });
});

describe("swarm target", () => {
  it("placement: a customer keeps its node, goes to its data, else to the least loaded node", () => {
    const t = targets().swarm;
    const others = [customer("a", "swarm", "n1"), customer("b", "swarm", "n2")];
    assert.equal(t.placement(customer("x", "swarm", "n1"), others), "n1");
    assert.equal(t.placement(undefined, others, "n2"), "n2");
    assert.equal(t.placement(undefined, others), "n3");
    assert.equal(t.placement(undefined, []), "n1");
  });

  it("a customer's data is on its node's engine; every node's engine is scanned", () => {
    const t = targets().swarm as SwarmTarget;
    const socket = (e: Dockerode) => (e as unknown as { modem: { socketPath?: string } }).modem.socketPath;
    assert.equal(socket(t.dataEngine(customer("acme", "swarm", "n2"))), "/run/test/n2.sock");
    assert.deepEqual(t.engines().map((e) => [e.node, socket(e.engine)]),
      [["n1", "/run/test/n1.sock"], ["n2", "/run/test/n2.sock"], ["n3", "/run/test/n3.sock"]]);
    assert.throws(() => t.nodeEngine("n9"), /environment 'swarm' has no node 'n9' in swarm.nodes/);
  });

  it("the edge sends a customer's requests to its service", () => {
    const spec = serviceSpec(swarm, customer("acme", "swarm", "n1"), IMAGE);
    assert.equal(swarmProgram.edgeUpstream(spec), swarmServiceName(spec));
    assert.notEqual(swarmServiceName(spec), spec.containerName);
  });

  it("logs come from every node's collector (a moved customer left lines on the node it left), else the service through the manager", () => {
    const engine = fakeEngine();
    const source = targets(engine).swarm.logSource("acme", "hf-swarm-acme");
    assert.deepEqual(source.collectors.map((c) => c.node), ["n1", "n2", "n3"]);
    assert.equal(source.collector, "hf-swarm-edge-logs");
    assert.deepEqual(source.fallback, { kind: "service", engine, name: "hf-swarm-acme" });
  });

  it("a move goes to a node of the environment only", () => {
    const t = targets().swarm;
    t.checkMove("n2");
    const err = configError(() => t.checkMove("n9"));
    assert.match(err.message, /--to: must be one of the nodes of 'swarm' \(swarm.nodes\): n1, n2, n3 \(found "n9"\)/);
    // fleet restore --node: the same nodes, and the engine of the one named
    assert.match(configError(() => t.nodeEngineFor("n9")).message, /--node: must be one of the nodes of 'swarm'/);
    assert.equal((t.nodeEngineFor("n3") as unknown as { modem: { socketPath?: string } }).modem.socketPath, "/run/test/n3.sock");
  });
});
