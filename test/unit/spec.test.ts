/** The pure ServiceSpec and its two mappings (Pulumi inputs, Engine API options) agree. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { parseEnvironmentConfig } from "../../src/config/load";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { secretFileTar } from "../../src/engine/secretFile";
import { REPLACE_ON_CHANGES, toContainerArgs } from "../../components/containerArgs";
import { edgeProxySpec } from "../../src/edge/edgeSpec";
import { customerNames, customerStackName, edgeNames, legacyCustomerNetwork } from "../../src/hardening/names";
import { containerSlot, serviceIdentity, serviceSpec, tmpfsOptions, type ContainerSpec } from "../../src/hardening/serviceSpec";
import { rawEnvironment } from "../support/fixtures";

const env = parseEnvironmentConfig(rawEnvironment("staging"));
const IMAGE = "sha256:" + "a".repeat(64);
const spec = serviceSpec(env, { id: "acme", environment: "staging", plan: "standard" }, IMAGE);

/** Both mappings of a spec, side by side. */
function mapped(s: ContainerSpec) {
  const p = toContainerArgs(s);
  const e = toEngineCreateOptions(s, {});
  return { p, e, hc: e.HostConfig! };
}

describe("service spec", () => {
  it("names every Docker object after environment and customer", () => {
    assert.deepEqual(customerNames("staging", "acme"), {
      container: "hf-staging-acme", network: "hf-staging-acme-edge", dataVolume: "hf-staging-acme-data", secretsVolume: "hf-staging-acme-secrets", hostname: "acme" });
    assert.equal(legacyCustomerNetwork("staging", "acme"), "hf-staging-acme-net");
    assert.deepEqual(edgeNames("staging", "edge"), { container: "hf-staging-edge", network: "hf-staging-edge-net", dataVolume: "hf-staging-edge-data" });
    assert.equal(customerStackName("prod", "acme"), "prod-acme");
    const identity = serviceIdentity("staging", "acme");
    assert.equal(identity.containerPrefix, "hf-staging-acme");
    assert.equal(identity.networkName, "hf-staging-acme-edge");
    assert.equal(identity.identityLabels["io.hardened-fleet.role"], "customer-service");
  });

  it("the container is named <prefix>-<slot>, the slot being 8 hex digits of the rest of the spec", () => {
    assert.match(spec.containerName, /^hf-staging-acme-[0-9a-f]{8}$/);
    const { containerName, ...rest } = spec;
    assert.equal(containerName, `${spec.containerPrefix}-${containerSlot(rest)}`);
    assert.equal(spec.networkName, "hf-staging-acme-edge");
    assert.equal(spec.dataVolumeName, "hf-staging-acme-data");
  });

  it("the slot is the same for the same spec, whatever else changes in the config", () => {
    assert.equal(serviceSpec(env, { id: "acme", environment: "staging", plan: "standard" }, IMAGE).containerName, spec.containerName);
    assert.equal(containerSlot({ a: 1, b: [2] }), containerSlot({ a: 1, b: [2] }));
    // the port of a stack file from before the edge proxy is ignored
    assert.equal(serviceSpec(env, { id: "acme", environment: "staging", plan: "standard", port: 18101 }, IMAGE).containerName, spec.containerName);
    // settings that are not the container's: rollout waves, the edge's ports, another plan's limits
    const raw = rawEnvironment("staging");
    raw.rollout.waveSize = 7;
    raw.edge.httpsPort = 9443;
    raw.plans.starter.memoryMb = 512;
    assert.equal(serviceSpec(parseEnvironmentConfig(raw), { id: "acme", environment: "staging", plan: "standard" }, IMAGE).containerName,
      spec.containerName);
  });

  it("the slot changes with the image, the plan and the plan's limits: a new container beside the old", () => {
    const names = new Set([spec.containerName]);
    const add = (name: string, what: string) => {
      assert.ok(!names.has(name), `${what} kept the slot ${name}`);
      assert.ok(name.startsWith("hf-staging-acme-"), name);
      names.add(name);
    };
    add(serviceSpec(env, { id: "acme", environment: "staging", plan: "standard" }, "sha256:" + "b".repeat(64)).containerName, "another image");
    add(serviceSpec(env, { id: "acme", environment: "staging", plan: "starter" }, IMAGE).containerName, "another plan");
    for (const [key, value] of [["memoryMb", 384], ["cpus", 0.75], ["pids", 200], ["nofile", 4096]] as const) {
      const raw = rawEnvironment("staging");
      raw.plans.standard[key] = value;
      add(serviceSpec(parseEnvironmentConfig(raw), { id: "acme", environment: "staging", plan: "standard" }, IMAGE).containerName, `plan ${key}`);
    }
    const raw = rawEnvironment("staging");
    raw.app.healthcheck.retries = 5;
    add(serviceSpec(parseEnvironmentConfig(raw), { id: "acme", environment: "staging", plan: "standard" }, IMAGE).containerName, "healthcheck");
  });

  it("tmpfs is noexec, nosuid, nodev and sized; non-/tmp scratch is owned by 1000", () => {
    assert.equal(tmpfsOptions("/tmp", 64), "rw,noexec,nosuid,nodev,size=64m,mode=1777");
    assert.equal(tmpfsOptions("/run/app", 8), "rw,noexec,nosuid,nodev,size=8m,uid=1000,gid=1000,mode=0700");
  });

  it("a customer publishes no host port: its app's port is only reached on its network", () => {
    assert.equal(spec.port, 8000);
    assert.deepEqual(spec.publish, []);
    const { p, e, hc } = mapped(spec);
    assert.deepEqual(p.ports, []);
    assert.deepEqual(hc.PortBindings, {});
    assert.deepEqual(e.ExposedPorts, { "8000/tcp": {} });
    assert.ok(e.Env!.includes("PORT=8000"));
  });

  it("the secret key is a file on its own read-only volume in both mappings, its path (never the key) in the env", () => {
    const { p, e, hc } = mapped(spec);
    assert.deepEqual(spec.secretFile, { volume: "hf-staging-acme-secrets", dir: "/run/secrets", fileName: "app_secret_key", envVar: "APP_SECRET_KEY_FILE" });
    assert.ok(p.envs.includes("APP_SECRET_KEY_FILE=/run/secrets/app_secret_key"));
    assert.ok(e.Env!.includes("APP_SECRET_KEY_FILE=/run/secrets/app_secret_key"));
    assert.deepEqual([...p.envs, ...e.Env!].filter((v) => v.startsWith("APP_SECRET_KEY=")), []);
    assert.deepEqual(p.volumes, [
      { volumeName: "hf-staging-acme-data", containerPath: "/data" },
      { volumeName: "hf-staging-acme-secrets", containerPath: "/run/secrets", readOnly: true },
    ]);
    assert.deepEqual(hc.Mounts, [
      { Type: "volume", Source: "hf-staging-acme-data", Target: "/data" },
      { Type: "volume", Source: "hf-staging-acme-secrets", Target: "/run/secrets", ReadOnly: true },
    ]);
  });

  it("the key file's archive makes the directory 1000:1000 0500 and the file 1000:1000 0400", () => {
    const listing = execFileSync("tar", ["-tvf", "-", "--numeric-owner"], { input: secretFileTar(spec.secretFile!, "k".repeat(48)), encoding: "utf8" });
    const rows = listing.trim().split("\n").map((l) => l.split(/\s+/));
    assert.deepEqual(rows.map((r) => [r[0], r[1], r[2], r.at(-1)]), [
      ["dr-x------", "1000/1000", "0", "secrets/"],
      ["-r--------", "1000/1000", "48", "secrets/app_secret_key"],
    ]);
  });

  it("an unknown plan is an error, not a default", () => {
    assert.throws(() => serviceSpec(env, { id: "a", environment: "staging", plan: "gold" }, "x:1"), /plan 'gold'/);
    // keys every object has are not plans: no spec with undefined limits
    for (const plan of ["constructor", "toString", "__proto__"]) {
      assert.throws(() => serviceSpec(env, { id: "a", environment: "staging", plan }, "x:1"), new RegExp(`plan '${plan}' is not defined`));
    }
  });

  for (const [what, s] of [["a customer", spec], ["the edge proxy", edgeProxySpec(env, IMAGE)]] as const) {
    it(`${what}: no nproc ulimit (it counts per host UID, shared by every customer); the PIDs limit bounds it; its own cgroup namespace`, () => {
      assert.deepEqual(s.ulimits.map((u) => u.name), ["nofile"]);
      assert.ok(s.pidsLimit > 0);
      const { p, hc } = mapped(s);
      assert.deepEqual(hc.Ulimits!.map((u) => u.Name), ["nofile"]);
      assert.deepEqual((p.ulimits as { name: string }[]).map((u) => u.name), ["nofile"]);
      assert.equal((hc as { CgroupnsMode?: string }).CgroupnsMode, "private");
      assert.equal(p.cgroupnsMode, "private");
    });
  }

  for (const [what, s] of [["a customer", spec], ["the edge proxy", edgeProxySpec(env, IMAGE)]] as const) {
    it(`Pulumi inputs and Engine API options carry the same settings (${what})`, () => {
      const { p, e, hc } = mapped(s);
      assert.equal(p.name, e.name);
      assert.equal(p.user, e.User);
      assert.deepEqual((p.capabilities as { drops: string[] }).drops, hc.CapDrop);
      assert.deepEqual((p.capabilities as { adds: string[] }).adds, hc.CapAdd);
      assert.deepEqual(p.securityOpts, hc.SecurityOpt);
      assert.equal(p.readOnly, hc.ReadonlyRootfs);
      assert.deepEqual(p.tmpfs, hc.Tmpfs);
      assert.equal((p.memory as number) * 1024 * 1024, hc.Memory);
      assert.equal((p.memorySwap as number) * 1024 * 1024, hc.MemorySwap);
      assert.equal(Number(p.cpus) * 1e9, hc.NanoCpus);
      assert.equal(s.pidsLimit, hc.PidsLimit);
      assert.equal(p.maxRetryCount, hc.RestartPolicy?.MaximumRetryCount);
      assert.deepEqual((p.healthcheck as { tests: string[] }).tests, e.Healthcheck?.Test);
      assert.equal(p.logDriver, hc.LogConfig?.Type);
      assert.deepEqual(p.logOpts, hc.LogConfig?.Config);
      assert.deepEqual((p.ulimits as { name: string; soft: number; hard: number }[]).map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })), hc.Ulimits);
      assert.deepEqual(p.envs, e.Env);
      assert.equal(p.networkMode, hc.NetworkMode);
      const ports = (p.ports as { internal: number; external: number; ip: string; protocol: string }[])
        .map((x) => [`${x.internal}/${x.protocol}`, x.ip, String(x.external)]);
      const bindings = Object.entries(hc.PortBindings as Record<string, { HostIp: string; HostPort: string }[]>)
        .flatMap(([port, bs]) => bs.map((b) => [port, b.HostIp, b.HostPort]));
      assert.deepEqual(ports, bindings);
      assert.equal(ports.length, s.publish.length);
    });
  }

  it("healthcheck and tmpfs changes replace the container instead of being dropped", () => {
    for (const key of ["healthcheck", "tmpfs"]) assert.ok(REPLACE_ON_CHANGES.includes(key), key);
  });
});
