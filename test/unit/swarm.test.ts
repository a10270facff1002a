/**
 * target: swarm as pure functions: config, the service spec (with its ulimits and log driver), node
 * choice, base verification, the audit of a task, encrypted overlays, the live service against fleet's spec.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type Dockerode from "dockerode";
import { runChecks, SWARM_TASK_LABEL, type Probes } from "../../src/audit/checks";
import { ConfigError } from "../../src/config/errors";
import { checkCustomerInEnvironment, parseEnvironmentConfig } from "../../src/config/load";
import { chooseNode } from "../../src/targets/swarm/target";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { serviceSpec } from "../../src/hardening/serviceSpec";
import { baseMismatch, isRepoDigest } from "../../src/program/imageCheck";
import { clusterEnvironment, type Cluster } from "../../demo/swarmCluster";
import { overlayNetworkName, placementConstraint, SECRET_KEY_FILE, toSwarmServiceSpec } from "../../src/swarm/serviceSpec";
import { isEncrypted, overlayCheck, OVERLAY_CHECK_ID } from "../../src/audit/overlay";
import { labelledSpec, liveDrift, liveView, SPEC_HASH_LABEL, specHash } from "../../src/swarm/deploy";
import { rawEnvironment } from "../support/fixtures";

const DIGEST = `sha256:${"a".repeat(64)}`;
const cluster: Cluster = {
  name: "hfsw", manager: "unix:///run/hf-swarm/hfsw/node1.sock", registry: "10.231.0.11:5000",
  // as scripts/swarm-cluster.sh makes it: node 4 is a sandbox node (default runtime runsc)
  nodes: [1, 2, 3, 4].map((i) => ({ name: `hfsw-${i}`, host: `unix:///run/hf-swarm/hfsw/node${i}.sock`, address: `10.231.0.1${i}`, namespace: `hfsw-${i}`,
    ...(i === 4 ? { sandbox: "gvisor" as const } : {}) })),
  bases: {
    "python-base": `10.231.0.11:5000/hardened-fleet/python-base@${DIGEST}`,
    "python-builder": `10.231.0.11:5000/hardened-fleet/python-builder@${DIGEST}`,
    "edge-base": `10.231.0.11:5000/hardened-fleet/edge-base@${DIGEST}`,
    "log-base": `10.231.0.11:5000/hardened-fleet/log-base@${DIGEST}`,
  },
};
const env = parseEnvironmentConfig(clusterEnvironment(cluster, "swarm"));
const swarmEnv = env.target === "swarm" ? env : assert.fail("the cluster's environment is target: swarm");

function problemOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return assert.fail("expected a ConfigError");
}

describe("swarm config", () => {
  it("the cluster's environment parses: target swarm, its nodes (the sandbox node marked), its registry, bases pinned by registry digest", () => {
    assert.equal(env.target, "swarm");
    assert.deepEqual(env.swarm!.nodes.map((n) => `${n.name} ${n.sandbox}`), ["hfsw-1 none", "hfsw-2 none", "hfsw-3 none", "hfsw-4 gvisor"]);
    assert.deepEqual(Object.entries(env.plans).map(([name, p]) => `${name} ${p.sandbox}`), ["starter none", "standard none", "sandboxed gvisor"]);
    assert.equal(env.registry!.address, "10.231.0.11:5000");
    assert.ok(isRepoDigest(env.image.mode === "build" ? env.image.base : ""));
  });

  it("docker stays the default target, and needs neither swarm nor registry", () => {
    assert.equal(parseEnvironmentConfig(rawEnvironment("staging")).target, "docker");
  });

  it("target swarm without nodes or registry is refused, naming both fixes", () => {
    const raw = clusterEnvironment(cluster, "swarm") as Record<string, unknown>;
    delete raw.swarm;
    delete raw.registry;
    const message = problemOf(() => parseEnvironmentConfig(raw));
    assert.match(message, /swarm.*is required with target: swarm: list the nodes/s);
    assert.match(message, /registry.*is required with target: swarm/s);
  });

  it("swarm settings on a one-host environment, a node named twice and a bad engine address are refused", () => {
    const onHost = { ...rawEnvironment("staging"), swarm: { nodes: [{ name: "n1", host: "unix:///x.sock" }] } };
    assert.match(problemOf(() => parseEnvironmentConfig(onHost)), /only for target: swarm/);
    const twice = clusterEnvironment(cluster, "swarm");
    twice.swarm!.nodes = [{ name: "a", host: "unix:///a.sock" }, { name: "a", host: "unix:///b.sock" }];
    assert.match(problemOf(() => parseEnvironmentConfig(twice)), /names a more than once/);
    const badHost = clusterEnvironment(cluster, "swarm");
    badHost.swarm!.nodes = [{ name: "a", host: "node1:2375" }];
    assert.match(problemOf(() => parseEnvironmentConfig(badHost)), /must be a Docker engine address/);
  });

  it("a swarm customer needs a node of its environment; a one-host customer may not have one", () => {
    assert.match(problemOf(() => checkCustomerInEnvironment({ id: "acme", environment: "swarm", plan: "starter" }, env)),
      /node.*is required with target: swarm.*fleet provision/s);
    assert.match(problemOf(() => checkCustomerInEnvironment({ id: "acme", environment: "swarm", plan: "starter", node: "elsewhere" }, env)),
      /must be one of the nodes of environment 'swarm'.*hfsw-1, hfsw-2, hfsw-3, hfsw-4/s);
    const staging = parseEnvironmentConfig(rawEnvironment("staging"));
    assert.match(problemOf(() => checkCustomerInEnvironment({ id: "acme", environment: "staging", plan: "starter", node: "hfsw-1" }, staging)),
      /only for target: swarm/);
  });
});

describe("swarm service spec", () => {
  const spec = serviceSpec(env, { id: "acme", environment: "swarm", plan: "starter", node: "hfsw-2" }, `10.231.0.11:5000/hardened-fleet/customer-app@${DIGEST}`);
  const service = toSwarmServiceSpec(spec, { node: "hfsw-2", secret: { id: "sec1", name: "hf-swarm-acme-app-secret-key" }, monitorSeconds: 5 }) as any;
  const container = service.TaskTemplate.ContainerSpec;

  it("carries every hardening property of the container", () => {
    assert.equal(container.User, "1000:1000");
    assert.deepEqual(container.CapabilityDrop, ["ALL"]);
    assert.deepEqual(container.CapabilityAdd, []);
    assert.equal(container.ReadOnly, true);
    const tmp = container.Mounts.find((m: any) => m.Target === "/tmp");
    assert.deepEqual(tmp, { Type: "tmpfs", Target: "/tmp", TmpfsOptions: { SizeBytes: 32 * 1024 * 1024, Mode: 0o1777 } });
    assert.deepEqual(service.TaskTemplate.Resources.Limits, { NanoCPUs: 250_000_000, MemoryBytes: 128 * 1024 * 1024, Pids: 64 });
    assert.deepEqual(container.Healthcheck.Test, spec.healthcheck.test);
    assert.equal(container.Healthcheck.Interval, 2_000_000_000);
    assert.deepEqual(service.Labels, spec.labels);
    assert.deepEqual(service.TaskTemplate.Networks, [{ Target: "hf-swarm-acme-edge" }]);
    // the plan's nofile and no nproc (it counts per host UID); the environment's log rotation
    assert.deepEqual(container.Ulimits, [{ Name: "nofile", Soft: 1024, Hard: 1024 }]);
    assert.deepEqual(service.TaskTemplate.LogDriver, { Name: "json-file", Options: { "max-size": "10m", "max-file": "3" } });
  });

  it("ulimits and the log driver follow the plan and the environment's logging settings, as the container's do", () => {
    const raw = clusterEnvironment(cluster, "swarm") as any;
    raw.logging = { maxSize: "20m", maxFile: 5 };
    const larger = serviceSpec(parseEnvironmentConfig(raw), { id: "acme", environment: "swarm", plan: "standard", node: "hfsw-2" }, spec.image);
    const placed = toSwarmServiceSpec(larger, { node: "hfsw-2", secret: { id: "sec1", name: "n" }, monitorSeconds: 5 }) as any;
    assert.deepEqual(placed.TaskTemplate.ContainerSpec.Ulimits, [{ Name: "nofile", Soft: 2048, Hard: 2048 }]);
    assert.deepEqual(placed.TaskTemplate.LogDriver, { Name: "json-file", Options: { "max-size": "20m", "max-file": "5" } });
    // the same settings the docker target gives the container
    const hc = toEngineCreateOptions(larger, {}).HostConfig!;
    assert.deepEqual(placed.TaskTemplate.ContainerSpec.Ulimits, hc.Ulimits);
    assert.deepEqual(placed.TaskTemplate.LogDriver, { Name: hc.LogConfig!.Type, Options: hc.LogConfig!.Config });
  });

  it("keeps the secret key out of the environment: a Swarm secret file readable by 1000 only", () => {
    assert.ok(container.Env.every((e: string) => !e.startsWith("APP_SECRET_KEY=")));
    assert.ok(container.Env.includes(`APP_SECRET_KEY_FILE=${SECRET_KEY_FILE}`));
    assert.deepEqual(container.Secrets, [{ File: { Name: "app_secret_key", UID: "1000", GID: "1000", Mode: 0o400 }, SecretID: "sec1", SecretName: "hf-swarm-acme-app-secret-key" }]);
  });

  it("one replica pinned to its node, its data volume by name, no published port, found by name (dnsrr)", () => {
    assert.equal(service.Name, "hf-swarm-acme");
    assert.deepEqual(service.Mode, { Replicated: { Replicas: 1 } });
    assert.deepEqual(service.TaskTemplate.Placement.Constraints, [placementConstraint("hfsw-2")]);
    assert.equal(placementConstraint("hfsw-2"), "node.labels.hardened-fleet.node==hfsw-2");
    const data = container.Mounts.find((m: any) => m.Type === "volume");
    assert.equal(data.Source, "hf-swarm-acme-data");
    assert.equal(data.Target, "/data");
    assert.deepEqual(service.EndpointSpec, { Mode: "dnsrr" });
  });

  it("updates start the new task first, watch it for the monitor period and roll back when it fails", () => {
    assert.deepEqual(service.UpdateConfig, { Parallelism: 1, Delay: 0, Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: "start-first", FailureAction: "rollback" });
    assert.equal(service.RollbackConfig.FailureAction, "pause");
  });
});

describe("placement and promotion", () => {
  const customer = (id: string, node?: string) => ({ id, environment: "swarm", plan: "starter", node });

  it("a new customer goes to the least loaded node of its plan's kind, the first listed on a tie", () => {
    const env = swarmEnv;
    assert.equal(chooseNode(env, []), "hfsw-1");
    assert.equal(chooseNode(env, [customer("a", "hfsw-1")]), "hfsw-2");
    assert.equal(chooseNode(env, [customer("a", "hfsw-1"), customer("b", "hfsw-2")]), "hfsw-3");
    assert.equal(chooseNode(env, [customer("a", "hfsw-1"), customer("b", "hfsw-1"), customer("c", "hfsw-2"), customer("d", "hfsw-3")]), "hfsw-2");
    // six in a row spread two per ordinary node; the sandbox node gets none of them, and every sandboxed customer
    const placed: ReturnType<typeof customer>[] = [];
    for (let i = 0; i < 6; i++) placed.push(customer(`c${i}`, chooseNode(env, placed)));
    assert.deepEqual(["hfsw-1", "hfsw-2", "hfsw-3", "hfsw-4"].map((n) => placed.filter((c) => c.node === n).length), [2, 2, 2, 0]);
    assert.equal(chooseNode(env, placed, "gvisor"), "hfsw-4");
  });

  it("prod promotes only an image built from the base it pins", () => {
    const pinned = cluster.bases["python-base"]!;
    assert.equal(baseMismatch(pinned, pinned), undefined);
    assert.match(baseMismatch(`10.231.0.11:5000/hardened-fleet/python-base@sha256:${"b".repeat(64)}`, pinned)!,
      /built from base .*bbbb.*but this environment pins .*aaaa.*\(image.base\): rebuild staging on the pinned base/);
    assert.match(baseMismatch(undefined, pinned)!, /\(no base label\)/);
    assert.equal(isRepoDigest(`sha256:${"a".repeat(64)}`), false);
  });
});

describe("the audit of a Swarm task", () => {
  const spec = serviceSpec(env, { id: "acme", environment: "swarm", plan: "starter", node: "hfsw-1" }, `reg/app@${DIGEST}`);
  const image = { Config: { User: "1000:1000", Healthcheck: { Test: ["CMD", "/healthcheck"] } } } as unknown as Dockerode.ImageInspectInfo;
  // what the engine reports for a task container: no SecurityOpt (set daemon-wide), tmpfs as a mount, restart left to Swarm
  const task = {
    Name: "/hf-swarm-acme.1.x", Image: spec.image,
    Config: { User: "1000:1000", Labels: { ...spec.labels, [SWARM_TASK_LABEL]: "t1" }, Healthcheck: { Test: spec.healthcheck.test } },
    HostConfig: {
      CapDrop: ["ALL"], CapAdd: null, SecurityOpt: null, ReadonlyRootfs: true,
      Mounts: [{ Type: "volume", Source: spec.data.volume, Target: "/data" }, { Type: "tmpfs", Target: "/tmp" }],
      Memory: spec.memoryBytes, MemorySwap: 2 * spec.memoryBytes, NanoCpus: 250_000_000, PidsLimit: 64,
      RestartPolicy: { Name: "", MaximumRetryCount: 0 }, NetworkMode: "default",
    },
    State: { Running: true, Health: { Status: "healthy" } },
    NetworkSettings: { Networks: { "hf-swarm-acme-edge": {} } },
    Mounts: [{ Type: "volume", Name: spec.data.volume, Destination: "/data" }],
  } as unknown as Dockerode.ContainerInspectInfo;
  const probes = (nnp: string, tmpOpts: string, swapTotalKb = 0): Probes => ({
    procStatus: `Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t${nnp}\n`,
    foreignFiles: "", buildLeftovers: "", setuidFiles: "", shells: "",
    mounts: `overlay / overlay ro,relatime 0 0\ntmpfs /tmp tmpfs ${tmpOpts} 0 0\n`,
    swapTotalKb,
  });
  const failed = (p: Probes) => runChecks(task, image, p).filter((c) => !c.ok);

  it("passes with no-new-privileges from the daemon and a noexec tmpfs, both read from the process", () => {
    const results = runChecks(task, image, probes("1", "rw,nosuid,nodev,noexec,size=32768k,mode=1777"));
    assert.deepEqual(results.filter((c) => !c.ok).map((c) => `${c.id}: ${c.detail}`), []);
    assert.equal(results.find((c) => c.id === "no-new-privileges")!.detail, "set daemon-wide, NoNewPrivs 1");
  });

  it("fails on a node whose daemon does not set no-new-privileges, saying so", () => {
    const [nnp] = failed(probes("0", "rw,noexec"));
    assert.equal(nnp!.id, "no-new-privileges");
    assert.match(nnp!.detail, /NoNewPrivs 0: set no-new-privileges in this node's daemon config/);
  });

  it("fails on a node with swap, which a Swarm service cannot limit (the engine gives a task twice its memory)", () => {
    const [limits] = failed(probes("1", "rw,noexec", 1048576));
    assert.equal(limits!.id, "limits");
    assert.match(limits!.detail, /the node has 1048576 kB of swap.*turn swap off on swarm nodes/);
  });

  it("fails a tmpfs the process sees without noexec", () => {
    const [ro] = failed(probes("1", "rw,nosuid,nodev,size=32768k"));
    assert.equal(ro!.id, "read-only-root");
    assert.match(ro!.detail, /tmpfs \/tmp is not noexec/);
  });
});

describe("encrypted overlays", () => {
  const enc = { Name: "hf-swarm-a-edge-ipsec", Driver: "overlay", Options: { encrypted: "", "com.docker.network.driver.overlay.vxlanid_list": "4097" } };
  const clear = { Name: "hf-swarm-b-edge", Driver: "overlay", Options: { "com.docker.network.driver.overlay.vxlanid_list": "4098" } };
  const bridge = { Name: "hf-swarm-edge-net", Driver: "bridge", Options: {} };

  it("an encrypted overlay passes; a bridge is not an overlay", () => {
    assert.equal(isEncrypted(enc), true);
    assert.equal(isEncrypted({ ...enc, Options: { encrypted: "true" } }), true);
    assert.deepEqual(overlayCheck([enc, bridge]), { id: OVERLAY_CHECK_ID, ok: true, detail: "encrypted: hf-swarm-a-edge-ipsec" });
    assert.equal(overlayCheck([bridge]).ok, true);
  });

  it("an unencrypted overlay fails, naming it and both fixes", () => {
    const r = overlayCheck([enc, clear, bridge]);
    assert.equal(r.ok, false);
    assert.match(r.detail, /^hf-swarm-b-edge carries customer traffic between nodes unencrypted: .*fleet up.*swarm.unencryptedOverlays/);
    assert.equal(overlayCheck([{ ...clear, Options: null }]).ok, false);
  });

  it("a waiver with a reason passes it, and the detail still says it is unencrypted and why", () => {
    const r = overlayCheck([clear], { reason: "the kernel has no ESP" });
    assert.equal(r.ok, true);
    assert.equal(r.detail, "NOT encrypted (hf-swarm-b-edge), waived by swarm.unencryptedOverlays: the kernel has no ESP");
  });

  it("swarm.unencryptedOverlays needs a reason: an empty or missing one is refused, naming the field", () => {
    const withReason = (reason: unknown) => {
      const raw = clusterEnvironment(cluster, "swarm") as any;
      raw.swarm.unencryptedOverlays = reason === undefined ? {} : { reason };
      return raw;
    };
    assert.equal(parseEnvironmentConfig(withReason("the nodes' kernel has no ESP")).swarm!.unencryptedOverlays!.reason, "the nodes' kernel has no ESP");
    assert.match(problemOf(() => parseEnvironmentConfig(withReason(""))), /swarm\.unencryptedOverlays\.reason.*must say why customer traffic may cross between nodes unencrypted/s);
    assert.match(problemOf(() => parseEnvironmentConfig(withReason("   "))), /swarm\.unencryptedOverlays\.reason/);
    assert.match(problemOf(() => parseEnvironmentConfig(withReason(undefined))), /swarm\.unencryptedOverlays\.reason.*must say why/s);
    assert.equal(env.swarm!.unencryptedOverlays, undefined, "encrypted unless waived");
  });

  it("the test cluster's environment waives encryption only when its kernel probe found no IPsec", () => {
    const without = parseEnvironmentConfig(clusterEnvironment({ ...cluster, ipsec: { ok: false, detail: "Requested AEAD algorithm not found." } }, "swarm"));
    assert.match(without.swarm!.unencryptedOverlays!.reason, /kernel cannot do IPsec ESP \(Requested AEAD algorithm not found\.\)/);
    const withIpsec = parseEnvironmentConfig(clusterEnvironment({ ...cluster, ipsec: { ok: true, detail: "works" } }, "swarm"));
    assert.equal(withIpsec.swarm!.unencryptedOverlays, undefined);
  });

  it("an encrypted overlay has a name of its own (a network's options cannot change), and the service joins it", () => {
    assert.equal(overlayNetworkName("hf-swarm-acme-edge", true), "hf-swarm-acme-edge-ipsec");
    assert.equal(overlayNetworkName("hf-swarm-acme-edge", false), "hf-swarm-acme-edge");
    const spec = serviceSpec(env, { id: "acme", environment: "swarm", plan: "starter", node: "hfsw-1" }, `reg/app@${DIGEST}`);
    const placed = (network?: string) => toSwarmServiceSpec(spec, { node: "hfsw-1", secret: { id: "s", name: "n" }, monitorSeconds: 5, network }) as any;
    assert.deepEqual(placed("hf-swarm-acme-edge-ipsec").TaskTemplate.Networks, [{ Target: "hf-swarm-acme-edge-ipsec" }]);
    assert.deepEqual(placed().TaskTemplate.Networks, [{ Target: "hf-swarm-acme-edge" }]);
  });
});

describe("the live service against fleet's spec", () => {
  const spec = serviceSpec(env, { id: "acme", environment: "swarm", plan: "starter", node: "hfsw-1" }, `reg/app@${DIGEST}`);
  const desired = toSwarmServiceSpec(spec, { node: "hfsw-1", secret: { id: "s", name: "n" }, monitorSeconds: 5 }) as Record<string, any>;
  // what the manager reports: fleet's labelled spec with Swarm's own additions (defaults, network IDs)
  const deployed = () => {
    const live = structuredClone(labelledSpec(desired)) as Record<string, any>;
    live.TaskTemplate.ForceUpdate = 0;
    live.TaskTemplate.Runtime = "container";
    live.TaskTemplate.Networks = [{ Target: "x8kq2network1d" }];
    delete live.UpdateConfig.Delay;
    return live;
  };

  it("the spec fleet deployed, as Swarm reports it, shows no drift; the hash ignores key order", () => {
    assert.deepEqual(liveDrift(deployed(), desired), []);
    const reordered = Object.fromEntries(Object.entries(desired).reverse());
    assert.equal(specHash(reordered), specHash(desired));
    assert.equal(labelledSpec(desired).Labels[SPEC_HASH_LABEL], specHash(desired));
  });

  it("a service scaled to 0 (a fleet move killed midway), moved, re-imaged, changed by hand or gone is drift", () => {
    const scaled = deployed();
    scaled.Mode = { Replicated: { Replicas: 0 } };
    assert.deepEqual(liveDrift(scaled, desired), ["replicas 0, wanted 1"]);
    const moved = deployed();
    moved.TaskTemplate.Placement.Constraints = [placementConstraint("hfsw-2")];
    assert.match(liveDrift(moved, desired).join(), /placement .*hfsw-2.*wanted .*hfsw-1/);
    const imaged = deployed();
    imaged.TaskTemplate.ContainerSpec.Image = "reg/other@sha256:" + "b".repeat(64);
    assert.match(liveDrift(imaged, desired).join(), /^image reg\/other/);
    const byHand = deployed();
    byHand.TaskTemplate.ContainerSpec.Env = ["X=1"];
    byHand.Labels = { ...byHand.Labels, [SPEC_HASH_LABEL]: "0".repeat(32) };
    assert.deepEqual(liveDrift(byHand, desired), ["a spec other than fleet's (changed outside fleet)"]);
    const unlabelled = deployed();
    delete unlabelled.Labels[SPEC_HASH_LABEL];
    assert.deepEqual(liveDrift(unlabelled, desired), ["a spec fleet has not labelled yet"]);
    assert.deepEqual(liveDrift(undefined, desired), ["the service does not exist"]);
  });

  it("read (refresh) stores what runs: the stored spec with the live replicas, so the next diff sees the change", () => {
    assert.equal(JSON.stringify(liveView(desired, deployed())), JSON.stringify(desired));
    const scaled = deployed();
    scaled.Mode = { Replicated: { Replicas: 0 } };
    const view = liveView(desired, scaled) as any;
    assert.deepEqual(view.Mode, { Replicated: { Replicas: 0 } });
    assert.notEqual(JSON.stringify(view), JSON.stringify(desired));
    const unlabelled = deployed();
    delete unlabelled.Labels[SPEC_HASH_LABEL];
    assert.equal((liveView(desired, unlabelled) as any).Labels[SPEC_HASH_LABEL], "none");
  });
});
