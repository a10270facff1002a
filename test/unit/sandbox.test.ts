/**
 * Sandboxed plans (sandbox: gvisor) as pure functions: the plan option, the container's runtime and
 * PIDs limit in both mappings (Pulumi inputs, Engine API options), the Swarm service's constraints,
 * node choice and the node/plan check, the audit's runtime rule, and the in-sandbox probe's script
 * (run with this machine's Python: it must print probe.ts's sections).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import type Dockerode from "dockerode";
import { toContainerArgs } from "../../components/containerArgs";
import { runChecks, SWARM_TASK_LABEL } from "../../src/audit/checks";
import { parseProbeOutput } from "../../src/audit/probe";
import { sandboxInterpreter, sandboxProbeScript } from "../../src/audit/sandboxProbe";
import { checkCustomerInEnvironment, parseEnvironmentConfig } from "../../src/config/load";
import type { SwarmEnvironmentConfig } from "../../src/config/schema";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { cgroupPidsLimit, defaultRuntimeMismatch, expectedRuntime, isSandboxRuntime, LABEL_SANDBOX, missingRuntime, SANDBOX_PIDS_OVERHEAD, sandboxRuntime, sandboxUlimits } from "../../src/hardening/sandbox";
import { containerSlot, serviceSpec } from "../../src/hardening/serviceSpec";
import { placementConstraints, toSwarmServiceSpec } from "../../src/swarm/serviceSpec";
import { chooseNode } from "../../src/targets/swarm/target";
import { rawEnvironment, configError } from "../support/fixtures";

const IMAGE = `sha256:${"a".repeat(64)}`;

function withSandboxPlan(raw: Record<string, any>): Record<string, any> {
  raw.plans.sandboxed = { memoryMb: 256, cpus: 0.5, pids: 128, nofile: 2048, tmpfsMb: 64, sandbox: "gvisor" };
  return raw;
}
const env = parseEnvironmentConfig(withSandboxPlan(rawEnvironment("staging")));

describe("the plan option", () => {
  it("defaults to none; gvisor is the one sandbox; anything else is refused naming the field", () => {
    assert.equal(env.plans.standard!.sandbox, "none");
    assert.equal(env.plans.sandboxed!.sandbox, "gvisor");
    const raw = withSandboxPlan(rawEnvironment("staging"));
    raw.plans.sandboxed.sandbox = "kata";
    const err = configError(() => parseEnvironmentConfig(raw));
    assert.match(err.message, /plans\.sandboxed\.sandbox.*must be one of none, gvisor/s);
    const small = withSandboxPlan(rawEnvironment("staging"));
    small.plans.sandboxed.memoryMb = 64;
    assert.match(configError(() => parseEnvironmentConfig(small)).message, /plans\.sandboxed\.memoryMb.*must be at least 128 \(MiB\) in a sandboxed plan/s);
  });

  it("maps to runsc; the PIDs cgroup gets the sandbox's own threads on top of the plan's pids", () => {
    assert.equal(sandboxRuntime("none"), undefined);
    assert.equal(sandboxRuntime("gvisor"), "runsc");
    assert.equal(cgroupPidsLimit(128, "none"), 128);
    assert.equal(cgroupPidsLimit(128, "gvisor"), 2 * 128 + SANDBOX_PIDS_OVERHEAD);
    assert.deepEqual(sandboxUlimits(128, "none"), []);
    assert.deepEqual(sandboxUlimits(128, "gvisor"), [{ name: "nproc", soft: 128, hard: 128 }]);
    assert.ok(isSandboxRuntime("runsc"));
    assert.ok(!isSandboxRuntime("runc") && !isSandboxRuntime(undefined) && !isSandboxRuntime("constructor"));
    assert.equal(expectedRuntime({ [LABEL_SANDBOX]: "gvisor" }), "runsc");
    assert.equal(expectedRuntime({}), "runc");
    assert.equal(expectedRuntime({ [LABEL_SANDBOX]: "toString" }), "runc", "own keys only");
  });
});

describe("a sandboxed customer's container", () => {
  const plain = serviceSpec(env, { id: "acme", environment: "staging", plan: "standard" }, IMAGE);
  const boxed = serviceSpec(env, { id: "acme", environment: "staging", plan: "sandboxed" }, IMAGE);

  it("runs under runsc in both mappings, labelled with its sandbox, every other setting as hardened as before", () => {
    assert.equal(boxed.runtime, "runsc");
    assert.equal(boxed.labels[LABEL_SANDBOX], "gvisor");
    assert.equal(toContainerArgs(boxed).runtime, "runsc");
    assert.equal(toEngineCreateOptions(boxed, {}).HostConfig!.Runtime, "runsc");
    assert.equal(toEngineCreateOptions(boxed, {}).HostConfig!.PidsLimit, 2 * 128 + SANDBOX_PIDS_OVERHEAD);
    assert.deepEqual(toEngineCreateOptions(boxed, {}).HostConfig!.Ulimits, [{ Name: "nofile", Soft: 2048, Hard: 2048 }, { Name: "nproc", Soft: 128, Hard: 128 }]);
    assert.deepEqual(toEngineCreateOptions(plain, {}).HostConfig!.Ulimits, [{ Name: "nofile", Soft: 2048, Hard: 2048 }], "never under runc");
    for (const key of ["user", "capDrop", "capAdd", "securityOpt", "readOnlyRootfs", "tmpfs", "memoryBytes", "cpus", "healthcheck", "data", "secretFile", "publish"] as const) {
      assert.deepEqual(boxed[key], plain[key], key);
    }
  });

  it("an unsandboxed plan's spec has no runtime and no sandbox label, so its slot is what it was before sandboxes", () => {
    assert.equal("runtime" in plain, false);
    assert.equal(plain.labels[LABEL_SANDBOX], undefined);
    assert.equal(toContainerArgs(plain).runtime, undefined);
    assert.equal(toEngineCreateOptions(plain, {}).HostConfig!.Runtime, undefined);
    assert.notEqual(boxed.containerName, plain.containerName, "a plan change between them is a new container beside the old one");
    const { containerName, ...rest } = boxed;
    assert.equal(containerName, `hf-staging-acme-${containerSlot(rest)}`);
  });
});

describe("an engine's runtimes", () => {
  it("a sandboxed plan needs its runtime registered; a plan without sandbox needs nothing", () => {
    assert.equal(missingRuntime("gvisor", ["io.containerd.runc.v2", "runc", "runsc"]), undefined);
    assert.equal(missingRuntime("none", []), undefined);
    assert.equal(missingRuntime("gvisor", ["io.containerd.runc.v2", "runc"]), "has no runtime runsc (its runtimes: io.containerd.runc.v2, runc)");
    assert.equal(missingRuntime("gvisor", []), "has no runtime runsc (its runtimes: none listed)");
  });
});

describe("sandboxed plans on a swarm", () => {
  const raw = withSandboxPlan(rawEnvironment("staging"));
  const nodes = [{ name: "n1", host: "unix:///n1.sock" }, { name: "n2", host: "unix:///n2.sock" }, { name: "box", host: "unix:///box.sock", sandbox: "gvisor" }];
  const swarmRaw = { ...raw, target: "swarm", registry: { address: "10.0.0.1:5000" }, swarm: { nodes } };
  const parsed = parseEnvironmentConfig(swarmRaw);
  const swarm = parsed.target === "swarm" ? parsed : assert.fail("target: swarm");
  const c = (id: string, plan: string, node?: string) => ({ id, environment: "staging", plan, node });

  it("a sandboxed plan's customers go to sandbox nodes only, and the others never do", () => {
    assert.equal(chooseNode(swarm, [], "gvisor"), "box");
    assert.equal(chooseNode(swarm, [c("a", "sandboxed", "box")], "gvisor"), "box");
    assert.equal(chooseNode(swarm, []), "n1");
    assert.equal(chooseNode(swarm, [c("a", "standard", "n1")]), "n2");
    assert.equal(chooseNode(swarm, [c("a", "standard", "n1"), c("b", "standard", "n2")]), "n1", "box is never chosen for an unsandboxed plan");
  });

  it("without a sandbox node a sandboxed customer is refused, saying how to make one", () => {
    const none: SwarmEnvironmentConfig = { ...swarm, swarm: { ...swarm.swarm, nodes: swarm.swarm.nodes.filter((n) => n.sandbox === "none") } };
    assert.throws(() => chooseNode(none, [], "gvisor"),
      /runs its customers in a gvisor sandbox, and environment 'staging' has no sandbox node: mark a node whose engine's default runtime is runsc with sandbox: gvisor in swarm\.nodes.*Nothing was created/);
  });

  it("a customer on a node of the other kind is refused before anything is made, naming the nodes that fit", () => {
    assert.doesNotThrow(() => checkCustomerInEnvironment(c("a", "sandboxed", "box"), swarm));
    assert.doesNotThrow(() => checkCustomerInEnvironment(c("a", "standard", "n2"), swarm));
    assert.match(configError(() => checkCustomerInEnvironment(c("a", "sandboxed", "n1"), swarm)).message,
      /customer\.node.*node 'n1' is not a sandbox node, and plan 'sandboxed' runs its customers in a gvisor sandbox: use one of box/s);
    assert.match(configError(() => checkCustomerInEnvironment(c("a", "standard", "box"), swarm)).message,
      /node 'box' is a gvisor sandbox node, and plan 'standard' is not sandboxed: use one of n1, n2/);
  });

  it("a node's engine must default to what its mark says: runsc on a sandbox node, no sandbox elsewhere", () => {
    assert.equal(defaultRuntimeMismatch("gvisor", "runsc"), undefined);
    assert.equal(defaultRuntimeMismatch("none", "runc"), undefined);
    assert.equal(defaultRuntimeMismatch("none", "crun"), undefined, "another runtime that is no sandbox is the operator's choice");
    assert.match(defaultRuntimeMismatch("gvisor", "runc")!, /is marked sandbox: gvisor in swarm\.nodes, but its engine's default runtime is runc, not runsc: its customers would not be sandboxed/);
    assert.match(defaultRuntimeMismatch("none", "runsc")!, /is not a sandbox node in swarm\.nodes, but its engine's default runtime is runsc/);
  });

  it("a sandboxed service is constrained to its node and to a sandbox node; the others keep their one constraint", () => {
    const boxed = serviceSpec(swarm, c("a", "sandboxed", "box"), IMAGE);
    const plain = serviceSpec(swarm, c("b", "standard", "n1"), IMAGE);
    assert.deepEqual(placementConstraints(boxed, "box"), ["node.labels.hardened-fleet.node==box", "node.labels.hardened-fleet.sandbox==gvisor"]);
    assert.deepEqual(placementConstraints(plain, "n1"), ["node.labels.hardened-fleet.node==n1"]);
    const service = toSwarmServiceSpec(boxed, { node: "box", secret: { id: "s", name: "s" }, monitorSeconds: 5 }) as any;
    assert.deepEqual(service.TaskTemplate.Placement.Constraints, placementConstraints(boxed, "box"));
    assert.equal(service.TaskTemplate.Resources.Limits.Pids, 2 * 128 + SANDBOX_PIDS_OVERHEAD);
  });
});

describe("the audit's runtime rule", () => {
  const base = serviceSpec(env, { id: "acme", environment: "staging", plan: "sandboxed" }, IMAGE);
  const inspect = (labels: Record<string, string>, runtime: string) => ({
    Name: "/c", Id: "x", Image: IMAGE, Config: { User: "1000:1000", Labels: labels, Image: IMAGE, Healthcheck: { Test: ["CMD", "/opt/venv/bin/python", "/app/healthcheck.py"] } },
    HostConfig: { Runtime: runtime, CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges:true"], ReadonlyRootfs: true, Tmpfs: { "/tmp": "noexec" } },
    State: { Running: false, Health: { Status: "healthy" } }, Mounts: [], NetworkSettings: { Networks: {} },
  }) as unknown as Dockerode.ContainerInspectInfo;
  const image = { Config: { User: "1000:1000", Healthcheck: { Test: ["CMD", "x"] }, Labels: {} } } as unknown as Dockerode.ImageInspectInfo;
  const rule = (c: Dockerode.ContainerInspectInfo) => runChecks(c, image, undefined).find((r) => r.id === "runtime")!;

  it("passes the runtime the plan names, and fails the other one, naming both", () => {
    assert.equal(rule(inspect(base.labels, "runsc")).ok, true);
    const { [LABEL_SANDBOX]: _, ...plainLabels } = base.labels;
    assert.equal(rule(inspect(plainLabels, "runc")).ok, true);
    const escaped = rule(inspect(base.labels, "runc"));
    assert.equal(escaped.ok, false);
    assert.match(escaped.detail, /runs under runc, but its plan's sandbox \(gvisor\) needs runsc/);
    const task = rule(inspect({ ...plainLabels, [SWARM_TASK_LABEL]: "t1" }, "runsc"));
    assert.match(task.detail, /runs under runsc, but its plan is not sandboxed \(runc\): a Swarm task runs under its node's default runtime/);
  });
});

describe("the audit's limits and seccomp rules in a sandbox", () => {
  it("allows the nproc ulimit under runsc (the sandbox's own kernel counts it), and still refuses it under runc", () => {
    const c = (runtime: string) => ({
      Config: { Labels: {} }, State: { Running: false }, Mounts: [], NetworkSettings: { Networks: {} }, HostConfig: { Runtime: runtime, Memory: 1, MemorySwap: 1, NanoCpus: 1, PidsLimit: 320, Ulimits: [{ Name: "nproc", Soft: 128, Hard: 128 }] },
    }) as unknown as Dockerode.ContainerInspectInfo;
    const limits = (x: Dockerode.ContainerInspectInfo) => runChecks(x, { Config: { Labels: {} } } as never, undefined).find((r) => r.id === "limits")!;
    assert.equal(limits(c("runsc")).ok, true, limits(c("runsc")).detail);
    assert.match(limits(c("runc")).detail, /ulimit nproc 128: counted per host UID/);
  });

  it("seccomp: a sandbox's app runs unfiltered in gVisor's kernel, which gVisor filters; unconfined still fails", () => {
    const probes = { procStatus: "Seccomp:\t0\n", foreignFiles: "", buildLeftovers: "", setuidFiles: "", shells: "" };
    const c = (runtime: string, opts: string[] = []) => ({
      Config: { Labels: {} }, State: { Running: true }, Mounts: [], NetworkSettings: { Networks: {} }, HostConfig: { Runtime: runtime, SecurityOpt: opts },
    }) as unknown as Dockerode.ContainerInspectInfo;
    const seccomp = (x: Dockerode.ContainerInspectInfo) => runChecks(x, { Config: { Labels: {} } } as never, probes).find((r) => r.id === "seccomp")!;
    assert.deepEqual(seccomp(c("runsc")), { id: "seccomp", ok: true, detail: "its calls go to the sandbox's kernel, filtered by gVisor's own" });
    assert.equal(seccomp(c("runc")).ok, false, "Seccomp 0 under runc is no filter");
    assert.equal(seccomp(c("runsc", ["seccomp=unconfined"])).ok, false);
  });
});

describe("the in-sandbox probe", () => {
  it("uses the healthcheck's Python, and refuses a healthcheck without one", () => {
    assert.equal(sandboxInterpreter({ Config: { Healthcheck: { Test: ["CMD", "/opt/venv/bin/python", "/app/hc.py"] } } } as never), "/opt/venv/bin/python");
    assert.equal(sandboxInterpreter({ Config: { Healthcheck: { Test: ["CMD-SHELL", "curl -f localhost"] } } } as never), undefined);
  });

  it("its script, run by Python, prints the sections probe.ts's parser reads: shells, setuid files, build tools, data owned by others", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-sandbox-probe-"));
    for (const d of ["root", "data", "root/usr/bin", "root/bin", "root/var/lib/apt/lists"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
    fs.writeFileSync(path.join(dir, "root/usr/bin/python3"), "");
    fs.writeFileSync(path.join(dir, "root/usr/bin/dash"), "");
    fs.symlinkSync("dash", path.join(dir, "root/bin/sh"));
    fs.writeFileSync(path.join(dir, "root/usr/bin/gcc"), "");
    fs.writeFileSync(path.join(dir, "root/var/lib/apt/lists/debian_Packages"), "");
    fs.writeFileSync(path.join(dir, "root/usr/bin/su"), "");
    fs.chmodSync(path.join(dir, "root/usr/bin/su"), 0o4755);
    fs.writeFileSync(path.join(dir, "data/mine"), "");
    // the script reads its own process as /proc/1: here that is this machine's init, enough to see the sections
    const out = execFileSync("python3", ["-I", "-S", "-c", sandboxProbeScript([path.join(dir, "data")], path.join(dir, "root"))], { encoding: "utf8" });
    const probes = parseProbeOutput(out, 1);
    assert.match(probes.procStatus, /^Name:/m);
    assert.equal(probes.rootError, undefined);
    assert.deepEqual(probes.shells.trim().split("\n").sort(), ["/bin/sh", "/usr/bin/dash"]);
    assert.equal(probes.setuidFiles, "/usr/bin/su\n");
    assert.deepEqual(probes.buildLeftovers.trim().split("\n").sort(), ["/usr/bin/gcc", "/var/lib/apt/lists/debian_Packages"]);
    // made by this process: foreign unless it runs as 1000:1000
    if (process.getuid?.() !== 1000) assert.match(probes.foreignFiles, /\/data\/mine$/m);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
