/**
 * Components and programs on Pulumi mocks: every hardening input, staging vs prod, bad input stops
 * early, the order of gate and route, both targets' siblings and the aliases that keep existing stacks.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { beforeEach, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { byType, installMocks, recorded, resetRecorded, valueOf } from "../support/mocks";

installMocks();

import { HardenedImage } from "../../components/hardenedImage";
import { DockerCustomerService } from "../../components/dockerCustomerService";
import { HARDENED_SERVICE_TYPE } from "../../components/hardenedService";
import { parseEnvironmentConfig } from "../../src/config/load";
import { DockerfileRuleError } from "../../src/hardening/dockerfileRules";
import { customerUrl } from "../../src/edge/edgeSpec";
import { serviceSpec } from "../../src/hardening/serviceSpec";
import { customerProgram, serviceRoute } from "../../src/program/customer";
import { environmentProgram } from "../../src/program/environment";
import { dockerProgram } from "../../src/targets/docker/program";
import { customerProgramFor, environmentCustomerProgram } from "../../src/targets/programFor";
import { swarmProgram } from "../../src/targets/swarm/program";
import { projectDir, rawEnvironment } from "../support/fixtures";

const staging = parseEnvironmentConfig(rawEnvironment("staging"));
const prod = parseEnvironmentConfig(rawEnvironment("prod"));
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270";
const IMAGE = `sha256:${"f".repeat(64)}`;

function stagingBuild() {
  if (staging.image.mode !== "build") throw new Error("staging must build its image");
  return staging.image;
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
}

const CONTAINER = "docker:index/container:Container";
const GATE = "pulumi-nodejs:dynamic/hardened-fleet:PidsLimit";
const ROUTE = "pulumi-nodejs:dynamic/hardened-fleet:EdgeRoute";
const SECRET_FILE = "pulumi-nodejs:dynamic/hardened-fleet:SecretFile";

/**
 * What the program asks of the engine, as the mock monitor receives it: each resource's URN, parent,
 * aliases (resolved to URNs the way the engine resolves an alias spec: same name and type unless
 * given, under the given parent), and dependencies. `holdType` keeps the registration of a type
 * pending until released, as a slow create on the engine would.
 */
interface Request {
  type: string;
  name: string;
  urn: string;
  parent: string;
  aliases: string[];
  dependencies: string[];
  propertyDependencies: Record<string, string[]>;
  retainOnDelete: boolean;
  /** the provider reference (urn::id), when one was given */
  provider: string;
}
const requests: Request[] = [];
const held = new Map<string, Promise<void>>();

function aliasUrn(alias: any, parent: string, type: string, name: string): string {
  if (alias.getUrn()) return alias.getUrn();
  const spec = alias.getSpec();
  const aliasParent = spec.getNoparent() ? "" : spec.getParenturn() || parent;
  const root = `urn:pulumi:${spec.getStack() || pulumi.getStack()}::${spec.getProject() || pulumi.getProject()}::`;
  const prefix = aliasParent && !aliasParent.split("::")[2]!.endsWith("pulumi:pulumi:Stack")
    ? `${aliasParent.slice(0, aliasParent.lastIndexOf("::"))}$` : root;
  return `${prefix}${spec.getType() || type}::${spec.getName() || name}`;
}

{
  const monitor = pulumi.runtime.getMonitor() as any;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: unknown) => {
    const type: string = req.getType(), name: string = req.getName(), parent: string = req.getParent();
    const propertyDependencies: Record<string, string[]> = {};
    req.getPropertydependenciesMap().forEach((deps: any, key: string) => { propertyDependencies[key] = deps.getUrnsList(); });
    requests.push({
      type, name, parent, urn: monitor.newUrn(parent, type, name),
      aliases: req.getAliasesList().map((a: unknown) => aliasUrn(a, parent, type, name)),
      dependencies: req.getDependenciesList(), propertyDependencies, retainOnDelete: req.getRetainondelete(),
      provider: req.getProvider(),
    });
    void (held.get(type) ?? Promise.resolve()).then(() => register(req, callback));
  };
}

/** Holds every registration of `type` until the returned function is called. */
function holdType(type: string): () => void {
  let release!: () => void;
  held.set(type, new Promise<void>((r) => { release = r; }));
  return () => { held.delete(type); release(); };
}

function requestOf(type: string, name?: string): Request {
  return requests.find((r) => r.type === type && (name === undefined || r.name === name)) ?? assert.fail(`no ${type} ${name ?? ""} registered`);
}

function reset(): void {
  resetRecorded();
  requests.length = 0;
}

const STACK_URN = "urn:pulumi:staging::hardened-fleet::";
/** The URN a child had under the one customer component of before the split. */
function legacyUrn(type: string, name: string): string {
  return `${STACK_URN}${HARDENED_SERVICE_TYPE}$${type}::${name}`;
}

/** The slot a container's Docker name ends in. */
function slotOf(containerName: string): string {
  return /-([0-9a-f]{8})$/.exec(containerName)?.[1] ?? assert.fail(`${containerName} ends in no slot`);
}

describe("DockerCustomerService on mocks", () => {
  beforeEach(reset);

  async function deployed(env = staging, plan = "standard", image = IMAGE) {
    const spec = serviceSpec(env, { id: "acme", environment: env.name, plan }, image);
    const service = new DockerCustomerService("acme", { identity: spec, settings: {
      spec, protectData: env.volumes.protect, route: serviceRoute(env, spec, dockerProgram.edgeUpstream(spec)), url: customerUrl(env.edge, "acme"),
    } });
    await valueOf(service.containerId);
    await settle();
    const [container] = byType(CONTAINER);
    assert.ok(container, "no container registered");
    return { spec, service, c: container.inputs, container };
  }

  it("registers the component with its children", async () => {
    await deployed();
    const types = recorded.map((r) => r.type).sort();
    assert.deepEqual(types, [
      "docker:index/container:Container", "docker:index/network:Network", "docker:index/volume:Volume",
      "hardened-fleet:service:DockerCustomerService", ROUTE, GATE, SECRET_FILE, "pulumi:providers:pulumi-nodejs",
      "random:index/randomPassword:RandomPassword",
    ]);
  });

  it("names its resources after the customer, the container and its gate after the spec's slot", async () => {
    const { spec, container, service } = await deployed();
    const slot = slotOf(spec.containerName);
    assert.equal(container.name, `acme-container-${slot}`);
    assert.equal(container.inputs.name, spec.containerName);
    assert.equal(slotOf(container.inputs.name), slotOf(container.name));
    assert.equal(await valueOf(service.containerName), spec.containerName);
    assert.deepEqual(recorded.map((r) => r.name).sort(), [
      "acme", "acme-container-" + slot, "acme-data", "acme-dynamic", "acme-gate-" + slot, "acme-network", "acme-route", "acme-secret-file", "acme-secret-key",
    ].sort());
  });

  it("a new image is a container resource of another name (started beside the old), the route keeps its name", async () => {
    const first = await deployed();
    reset();
    const second = await deployed(staging, "standard", `sha256:${"9".repeat(64)}`);
    assert.notEqual(second.container.name, first.container.name);
    assert.notEqual(second.c.name, first.c.name);
    assert.equal(slotOf(second.c.name), slotOf(second.container.name));
    assert.equal(byType(ROUTE)[0]!.name, "acme-route");
    reset();
    const again = await deployed();
    assert.equal(again.container.name, first.container.name, "the same spec must find the same container");
  });

  it("the customer's container publishes no host port", async () => {
    const { c } = await deployed();
    assert.deepEqual(c.ports ?? [], []);
    assert.equal(c.publishAllPorts ?? false, false);
  });

  it("the route sends the customer's hostname to this container, through the proxy of its environment", async () => {
    const { spec, service } = await deployed();
    const [route] = byType(ROUTE);
    assert.ok(route, "no EdgeRoute registered");
    assert.equal(route.inputs.proxy, "hf-staging-edge");
    assert.equal(route.inputs.network, "hf-staging-acme-edge");
    assert.equal(route.inputs.routesDir, "/data/routes");
    assert.equal(route.inputs.fileName, "acme.caddy");
    assert.match(route.inputs.fileText, /^acme\.staging\.localhost \{$/m);
    assert.ok(route.inputs.fileText.includes(`reverse_proxy ${spec.containerName}:8000 {`), route.inputs.fileText);
    assert.deepEqual(route.inputs.reload, ["caddy", "reload", "--config", "/etc/hardened-fleet/Caddyfile", "--adapter", "caddyfile", "--address", "localhost:2019"]);
    assert.equal(route.inputs.upstream, spec.containerName); // that it waits for the gate: the next test
    assert.equal(await valueOf(service.url), "https://acme.staging.localhost");
  });

  it("the route is registered only once the gate is done, and depends on it: no traffic before healthy and audited", async () => {
    const release = holdType(GATE);
    try {
      const { spec } = await deployed();
      await settle();
      const gate = requestOf(GATE);
      assert.deepEqual(gate.propertyDependencies.containerId, [requestOf(CONTAINER).urn]);
      // the gate's create has not finished: the route must not even be asked for
      assert.equal(requests.some((r) => r.type === ROUTE), false, "the route was registered before the gate was done");
      release();
      await settle();
      const route = requestOf(ROUTE);
      assert.deepEqual(route.propertyDependencies.upstream, [gate.urn]);
      assert.ok(route.dependencies.includes(gate.urn), "the engine must order the route after the gate");
      assert.equal(byType(ROUTE)[0]!.inputs.upstream, spec.containerName);
    } finally {
      release();
    }
  });

  it("container runs as 1000:1000 with every capability dropped and no-new-privileges", async () => {
    const { c } = await deployed();
    assert.equal(c.user, "1000:1000");
    assert.deepEqual(c.capabilities, { drops: ["ALL"], adds: [] });
    assert.deepEqual(c.securityOpts, ["no-new-privileges:true"]);
    assert.equal(c.privileged, false);
    assert.equal(c.pidMode, undefined);
    assert.equal(c.ipcMode, undefined);
  });

  it("read-only root with noexec tmpfs for the scratch paths", async () => {
    const { c } = await deployed();
    assert.equal(c.readOnly, true);
    assert.deepEqual(c.tmpfs, { "/tmp": "rw,noexec,nosuid,nodev,size=64m,mode=1777" });
  });

  it("memory with equal swap, CPU, ulimits and restart on-failure at most 5", async () => {
    const { c } = await deployed();
    assert.equal(c.memory, 256);
    assert.equal(c.memorySwap, 256);
    assert.equal(c.cpus, "0.5");
    assert.deepEqual(c.ulimits, [{ name: "nofile", soft: 2048, hard: 2048 }]);
    assert.equal(c.restart, "on-failure");
    assert.equal(c.maxRetryCount, 5);
  });

  it("the healthcheck is waited for by the container's gate with the plan's timeout, not by the provider", async () => {
    const { c, container, spec } = await deployed();
    assert.deepEqual(c.healthcheck, { tests: ["CMD", "/opt/venv/bin/python", "/app/healthcheck.py"], interval: "2s", timeout: "3s", retries: 3, startPeriod: "2s" });
    assert.equal(c.wait, false); // the provider's once-a-second wait gives way to the gate's
    const [gate] = byType(GATE);
    assert.equal(gate!.inputs.healthTimeoutSeconds, 90);
    // the gate follows the container it guards, and is named after the same slot
    assert.equal(gate!.inputs.containerId, `${container.name}-id`);
    assert.equal(gate!.name, `acme-gate-${slotOf(spec.containerName)}`);
  });

  it("log rotation, no published port, own network, data volume", async () => {
    const { c, spec } = await deployed();
    assert.equal(c.logDriver, "json-file");
    assert.deepEqual(c.logOpts, { "max-size": "10m", "max-file": "3" });
    assert.deepEqual(c.ports ?? [], []);
    assert.equal(c.networkMode, "hf-staging-acme-edge");
    assert.deepEqual(c.networksAdvanced, [{ name: "hf-staging-acme-edge" }]);
    assert.deepEqual(c.volumes, [
      { volumeName: "hf-staging-acme-data", containerPath: "/data" },
      { volumeName: "hf-staging-acme-secrets", containerPath: "/run/secrets", readOnly: true },
    ]);
    assert.equal(c.removeVolumes, false);
    const [net] = byType("docker:index/network:Network");
    assert.equal(net!.inputs.name, spec.networkName);
    assert.notEqual(net!.inputs.name, "bridge");
    const [vol] = byType("docker:index/volume:Volume");
    assert.equal(vol!.inputs.name, spec.dataVolumeName);
  });

  it("the secret key comes from random and reaches the app as a file, never through the container's env", async () => {
    const { c } = await deployed();
    const [pw] = byType("random:index/randomPassword:RandomPassword");
    assert.equal(pw!.inputs.length, 48);
    const envs = c.envs as string[];
    assert.ok(Array.isArray(envs), "envs holds no secret: a plain list");
    assert.deepEqual(envs.filter((e) => e.startsWith("APP_SECRET_KEY=") || e.includes("x".repeat(48))), []);
    assert.ok(envs.includes("APP_SECRET_KEY_FILE=/run/secrets/app_secret_key"));
    assert.ok(envs.includes("DATA_DIR=/data"));
    // the file's writer gets the key as a Pulumi secret (a secret crosses the mock boundary wrapped)
    const [file] = byType(SECRET_FILE);
    assert.ok(file, "no SecretFile registered");
    assert.equal(file.inputs.content[SECRET_SIG], SECRET_MARK, "the key must be a secret");
    assert.equal(file.inputs.content.value, "x".repeat(48));
    assert.deepEqual(file.inputs.file, { volume: "hf-staging-acme-secrets", dir: "/run/secrets", fileName: "app_secret_key", envVar: "APP_SECRET_KEY_FILE" });
    assert.equal(file.inputs.labels["io.hardened-fleet.role"], "customer-secrets");
  });

  it("the PIDs limit is applied to the container by its gate", async () => {
    const { container } = await deployed();
    const [pids] = byType(GATE);
    assert.equal(pids!.inputs.pidsLimit, 128);
    assert.equal(pids!.inputs.containerId, `${container.name}-id`);
  });

  it("prod plans give bigger limits than staging for the same plan", async () => {
    const { c, service } = await deployed(prod);
    assert.equal(await valueOf(service.url), "https://acme.prod.localhost:8443");
    assert.equal(byType(ROUTE)[0]!.inputs.proxy, "hf-prod-edge");
    assert.equal(c.memory, 512);
    assert.equal(c.cpus, "1");
    assert.deepEqual(c.logOpts, { "max-size": "20m", "max-file": "5" });
    const [pids] = byType(GATE);
    assert.equal(pids!.inputs.pidsLimit, 256);
    assert.equal(pids!.inputs.healthTimeoutSeconds, 120);
  });

  it("adds only configured capabilities and records why in a label", async () => {
    const env = parseEnvironmentConfig({ ...rawEnvironment("staging"),
      capabilities: { add: [{ name: "NET_BIND_SERVICE", reason: "legacy client needs port 443 inside" }] } });
    const { c } = await deployed(env);
    assert.deepEqual(c.capabilities, { drops: ["ALL"], adds: ["NET_BIND_SERVICE"] });
    const label = (c.labels as { label: string; value: string }[]).find((l) => l.label === "io.hardened-fleet.cap-add-reasons");
    assert.equal(label?.value, "NET_BIND_SERVICE: legacy client needs port 443 inside");
  });
});

describe("HardenedImage on mocks", () => {
  beforeEach(reset);

  it("builds the rendered multi-stage Dockerfile locally, without push", async () => {
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-mock-"));
    const image = new HardenedImage("staging", { image: stagingBuild(), app: staging.app, projectDir, workDir });
    assert.equal(await valueOf(image.imageRef), `sha256:${"e".repeat(64)}`);
    const [img] = byType("docker:index/image:Image");
    assert.equal(img!.inputs.skipPush, true);
    assert.match(img!.inputs.imageName, /^hardened-fleet\/customer-app:1\.0\.0-[a-f0-9]{12}$/);
    // relative to the program's directory (where the provider runs too): no checkout path in the state
    assert.equal(path.resolve(img!.inputs.build.context), workDir);
    assert.ok(!path.isAbsolute(img!.inputs.build.context) && !path.isAbsolute(img!.inputs.build.dockerfile));
    const dockerfile = fs.readFileSync(img!.inputs.build.dockerfile, "utf8");
    assert.equal(dockerfile, image.dockerfileText);
    assert.match(dockerfile, /^USER 1000:1000$/m);
    assert.ok(fs.existsSync(path.join(workDir, "wheelhouse")));
    assert.ok(!fs.existsSync(path.join(workDir, "app", "wheelhouse")), "the wheelhouse must not reach the app directory");
  });

  it("an operator Dockerfile that breaks a rule stops before any image resource", () => {
    const image = stagingBuild();
    const src = fs.mkdtempSync(path.join(os.tmpdir(), "hf-op-"));
    fs.writeFileSync(path.join(src, "Dockerfile"), "FROM python:latest\nCOPY . /app\nCMD python app.py\n");
    assert.throws(
      () => new HardenedImage("bad", { image: { ...image, appSource: src, dockerfile: "Dockerfile" }, app: staging.app, projectDir, workDir: src }),
      (err: unknown) => err instanceof DockerfileRuleError && /Dockerfile:1 \[from-pinned\]/.test(err.message)
        && /\[non-root-user\]/.test(err.message) && /\[multi-stage\]/.test(err.message) && /Dockerfile:3 \[exec-form\]/.test(err.message),
    );
    assert.deepEqual(byType("docker:index/image:Image"), []);
  });
});

describe("stack programs on mocks", () => {
  beforeEach(reset);

  it("staging environment builds the image and publishes settings and image", async () => {
    const outputs = await environmentProgram(staging, projectDir);
    assert.equal(outputs.role, "environment");
    assert.deepEqual(outputs.settings, staging);
    const image = await valueOf(outputs.image as import("@pulumi/pulumi").Output<{ ref: string; version: string }>);
    assert.equal(image.ref, `sha256:${"e".repeat(64)}`);
    assert.equal(image.version, "1.0.0");
    // the app's image, the edge proxy's and the log collector's
    assert.deepEqual(byType("docker:index/image:Image").map((r) => r.inputs.imageName.replace(/:.*/, "")).sort(),
      ["hardened-fleet/customer-app", "hardened-fleet/edge", "hardened-fleet/log-collector"]);
    await settle(); // the edge proxy's container registers once its image is built
  });

  /**
   * The environment program's edge proxy, as registered on the mocks. A staging environment (prod
   * promotes an image, which it inspects on the engine first), with the edge settings given.
   */
  async function edgeOf(edge: Record<string, unknown> = {}) {
    const env = parseEnvironmentConfig({ ...rawEnvironment("staging"), edge: { ...rawEnvironment("staging").edge, ...edge } });
    const outputs = await environmentProgram(env, projectDir);
    await settle();
    const containers = byType(CONTAINER);
    const role = (r: { inputs: Record<string, any> }) => (r.inputs.labels as { label: string; value: string }[]).find((l) => l.label === "io.hardened-fleet.role")?.value;
    assert.deepEqual(containers.map(role).sort(), ["edge-proxy", "log-collector"], "an environment has two containers: its edge proxy and its log collector");
    const proxy = containers.find((r) => role(r) === "edge-proxy")!;
    const collector = containers.find((r) => role(r) === "log-collector")!;
    return { outputs, c: proxy.inputs, container: proxy, collector };
  }

  it("the environment's edge proxy publishes exactly its two ports, on edge.address", async () => {
    const { c } = await edgeOf();
    assert.deepEqual(c.ports, [
      { internal: 8443, external: 443, ip: "127.0.0.1", protocol: "tcp" },
      { internal: 8080, external: 80, ip: "127.0.0.1", protocol: "tcp" },
    ]);
    reset();
    const { c: other } = await edgeOf({ address: "127.0.0.2", httpsPort: 9443, httpPort: 9080 });
    assert.deepEqual(other.ports, [
      { internal: 8443, external: 9443, ip: "127.0.0.2", protocol: "tcp" },
      { internal: 8080, external: 9080, ip: "127.0.0.2", protocol: "tcp" },
    ]);
  });

  it("the edge proxy is hardened: 1000:1000, capDrop ALL and nothing added, read-only, no-new-privileges, limits", async () => {
    const { c, container } = await edgeOf();
    assert.equal(c.name, "hf-staging-edge");
    assert.equal(c.user, "1000:1000");
    assert.deepEqual(c.capabilities, { drops: ["ALL"], adds: [] });
    assert.deepEqual(c.securityOpts, ["no-new-privileges:true"]);
    assert.equal(c.readOnly, true);
    assert.equal(c.privileged, false);
    assert.deepEqual(c.tmpfs, { "/tmp": "rw,noexec,nosuid,nodev,size=16m,mode=1777" });
    assert.equal(c.memory, 128);
    assert.equal(c.memorySwap, 128);
    assert.equal(c.restart, "on-failure");
    assert.equal(c.maxRetryCount, 5);
    assert.equal(c.image, `sha256:${"e".repeat(64)}`); // the proxy's image, built by the stack
    assert.equal(c.networkMode, "hf-staging-edge-net");
    assert.deepEqual(c.volumes, [{ volumeName: "hf-staging-edge-data", containerPath: "/data" }]);
    const label = (name: string) => (c.labels as { label: string; value: string }[]).find((l) => l.label === name)?.value;
    assert.equal(label("io.hardened-fleet.role"), "edge-proxy");
    assert.equal(label("io.hardened-fleet.customer"), undefined);
    // its gate: the PIDs limit, healthy, audited
    const gate = byType(GATE).find((g) => g.inputs.containerId === `${container.name}-id`);
    assert.ok(gate, "the proxy's container has a gate");
    assert.equal(gate!.inputs.pidsLimit, 256);
    assert.equal(byType("hardened-fleet:edge:EdgeProxy").length, 1);
    assert.equal(byType("pulumi-nodejs:dynamic/hardened-fleet:EdgeNetworks").length, 1);
  });

  it("the environment's outputs name the edge proxy and where customers answer", async () => {
    const { outputs } = await edgeOf({ name: "gateway", httpsPort: 8443, httpPort: 8080 });
    const edge = outputs.edge as { container: string; urls: string };
    assert.equal(edge.container, "hf-staging-gateway");
    assert.equal(edge.urls, "https://<customer>.staging.localhost:8443");
  });

  it("the environment's log collector: hardened, alone on its own network, no port, its volume retained, its address an output", async () => {
    const { outputs, collector } = await edgeOf();
    const c = collector.inputs;
    assert.equal(c.name, "hf-staging-edge-logs");
    assert.equal(c.user, "1000:1000");
    assert.deepEqual(c.capabilities, { drops: ["ALL"], adds: [] });
    assert.deepEqual(c.securityOpts, ["no-new-privileges:true"]);
    assert.equal(c.readOnly, true);
    assert.equal(c.privileged, false);
    assert.deepEqual(c.ports ?? [], []);
    assert.equal(c.networkMode, "hf-staging-edge-logs-lognet");
    assert.equal(c.logDriver, "json-file", "the collector's own lines stay with the engine");
    assert.deepEqual(c.volumes, [{ volumeName: "hf-staging-edge-logs-store", containerPath: "/logs" }]);
    assert.ok(byType(GATE).some((g) => g.inputs.containerId === `${collector.name}-id`), "the collector has a gate");
    const volume = byType("docker:index/volume:Volume").find((v) => v.inputs.name === "hf-staging-edge-logs-store");
    assert.ok(volume, "the collector has its volume");
    const logs = outputs.logs as { container: string; address: import("@pulumi/pulumi").Output<string> };
    assert.equal(logs.container, "hf-staging-edge-logs");
    assert.equal(await valueOf(logs.address), "udp://172.20.0.2:5514");
  });

  it("a customer sends its lines to the collector its environment published, tagged with its id; without one, json-file", async () => {
    const read = (logs?: { container: string; address: string }) => async () => ({ settings: staging, image: { ref: IMAGE, version: "1.0.0" }, logs });
    await customerProgram({ id: "acme", environment: "staging", plan: "starter" }, read({ container: "hf-staging-edge-logs", address: "udp://172.20.9.2:5514" }));
    await settle();
    const [container] = byType(CONTAINER);
    assert.equal(container!.inputs.logDriver, "syslog");
    assert.deepEqual(container!.inputs.logOpts, {
      "syslog-address": "udp://172.20.9.2:5514", "syslog-format": "rfc5424micro", tag: "acme.{{.ID}}",
      "cache-max-size": "10m", "cache-max-file": "3",
    });
    reset();
    await customerProgram({ id: "acme", environment: "staging", plan: "starter" }, read(undefined));
    await settle();
    assert.equal(byType(CONTAINER)[0]!.inputs.logDriver, "json-file");
  });

  it("a customer stack runs its environment's image with that environment's settings, at its edge URL", async () => {
    const outputs = await customerProgram({ id: "acme", environment: "staging", plan: "starter" },
      async () => ({ settings: staging, image: { ref: IMAGE, version: "1.0.0" } }));
    assert.equal(await valueOf(outputs.url as import("@pulumi/pulumi").Output<string>), "https://acme.staging.localhost");
    assert.equal(outputs.image, IMAGE);
    await settle();
    const [container] = byType(CONTAINER);
    assert.equal(container!.inputs.image, IMAGE);
    assert.equal(container!.inputs.memory, 128);
    assert.deepEqual(container!.inputs.ports ?? [], []);
    const name = await valueOf(outputs.containerName as import("@pulumi/pulumi").Output<string>);
    assert.equal(container!.inputs.name, name);
    assert.equal(container!.name, `acme-container-${slotOf(name)}`);
    assert.ok(byType(ROUTE)[0]!.inputs.fileText.includes(`reverse_proxy ${name}:8000`));
  });

  it("a customer stack from before the edge proxy (a port in its config) deploys the same container, publishing nothing", async () => {
    const read = async () => ({ settings: staging, image: { ref: IMAGE, version: "1.0.0" } });
    const now = await customerProgram({ id: "acme", environment: "staging", plan: "starter" }, read);
    const nowName = await valueOf(now.containerName as import("@pulumi/pulumi").Output<string>);
    await settle();
    reset();
    const old = await customerProgram({ id: "acme", environment: "staging", plan: "starter", port: 18105 }, read);
    assert.equal(await valueOf(old.containerName as import("@pulumi/pulumi").Output<string>), nowName);
    await settle();
    assert.deepEqual(byType(CONTAINER)[0]!.inputs.ports ?? [], []);
  });

  it("a customer named like the edge proxy creates nothing", async () => {
    await assert.rejects(
      customerProgram({ id: "edge", environment: "staging", plan: "starter" }, async () => ({ settings: staging, image: { ref: IMAGE } }), staging),
      /hardened-fleet:customer\.id.*edge proxy/s,
    );
    assert.deepEqual(recorded, []);
  });

  it("a customer whose environment has no image yet says what to run first, creating nothing", async () => {
    await assert.rejects(
      customerProgram({ id: "acme", environment: "staging", plan: "starter" }, async () => ({ settings: staging, image: undefined })),
      /environment stack 'staging' has no image yet: run 'pulumi up' on stack 'staging' first/,
    );
    assert.deepEqual(recorded, []);
  });

  it("invalid customer config creates nothing", async () => {
    let asked = false;
    await assert.rejects(
      customerProgram({ id: "Bad_Id", environment: "Staging", plan: "gold" }, async () => { asked = true; return { settings: staging, image: { ref: IMAGE } }; }),
      /hardened-fleet:customer\.id.*\n.*hardened-fleet:customer\.environment/s,
    );
    assert.equal(asked, false);
    assert.deepEqual(recorded, []);
  });

  it("with the local environment config, the network is created while the environment's settings are read", async () => {
    let publish!: (view: { settings: unknown; image: { ref: string; version: string } }) => void;
    const view = new Promise<{ settings: unknown; image: { ref: string; version: string } }>((r) => { publish = r; });
    const program = customerProgram({ id: "acme", environment: "staging", plan: "starter" }, () => view, staging);
    await settle();
    assert.deepEqual(byType("docker:index/network:Network").map((r) => r.inputs.name), ["hf-staging-acme-edge"]);
    assert.equal(byType(CONTAINER).length, 0); // the rest waits for the published settings
    assert.equal(byType(ROUTE).length, 0);
    publish({ settings: staging, image: { ref: IMAGE, version: "1.0.0" } });
    const outputs = await program;
    assert.equal(await valueOf(outputs.url as import("@pulumi/pulumi").Output<string>), "https://acme.staging.localhost");
    await settle();
    assert.equal(byType(CONTAINER)[0]!.inputs.image, IMAGE);
  });

  it("with the local environment config, a plan it lacks still creates nothing", async () => {
    await assert.rejects(
      customerProgram({ id: "acme", environment: "staging", plan: "gold" }, async () => ({ settings: staging, image: { ref: IMAGE } }), staging),
      /must be one of the plans of environment 'staging': starter, standard, sandboxed/,
    );
    assert.deepEqual(recorded, []);
  });

  it("a plan the environment lacks is named with the plans it has", async () => {
    await assert.rejects(
      customerProgram({ id: "acme", environment: "staging", plan: "gold" }, async () => ({ settings: staging, image: { ref: IMAGE } })),
      /must be one of the plans of environment 'staging': starter, standard, sandboxed/,
    );
    assert.deepEqual(recorded, []);
  });
});

describe("one sibling per target, and the aliases that keep existing stacks", () => {
  beforeEach(reset);

  const NETWORK = "docker:index/network:Network";
  const VOLUME = "docker:index/volume:Volume";
  const SWARM_SERVICE = "pulumi-nodejs:dynamic/hardened-fleet:SwarmService";
  const SWARM_SECRET = "docker:index/secret:Secret";
  const nodes = [{ name: "node1", host: "unix:///run/hf/node1.sock" }, { name: "node2", host: "unix:///run/hf/node2.sock" }];
  function swarmEnvironment(swarm: Record<string, unknown> = {}) {
    return parseEnvironmentConfig({ ...rawEnvironment("staging"), target: "swarm", registry: { address: "10.0.0.5:5000" }, swarm: { nodes, ...swarm } });
  }
  const swarmEnv = swarmEnvironment();
  const read = (settings: unknown) => async () => ({ settings, image: { ref: IMAGE, version: "1.0.0" } });
  const swarmCustomer = { id: "acme", environment: "staging", plan: "starter", node: "node2" };

  async function customerStack(raw: Record<string, unknown>, env: typeof staging) {
    const outputs = await customerProgram(raw, read(env), env);
    await valueOf(outputs.url as pulumi.Output<string>);
    await settle();
    return outputs;
  }

  it("a customer's target comes from its own config (a node means swarm); an environment's from its target", () => {
    assert.equal(customerProgramFor({ node: "node1" }), swarmProgram);
    assert.equal(customerProgramFor({}), dockerProgram);
    assert.equal(environmentCustomerProgram(staging), dockerProgram);
    assert.equal(environmentCustomerProgram(swarmEnv), swarmProgram);
  });

  it("a swarm customer: an encrypted attachable overlay, a Swarm secret, its service pinned to its node, the route to the service", async () => {
    const outputs = await customerStack(swarmCustomer, swarmEnv);
    assert.equal(outputs.node, "node2");
    assert.equal(outputs.target, "swarm");
    assert.equal(outputs.networkName, "hf-staging-acme-edge-ipsec");
    assert.equal(await valueOf(outputs.containerName as pulumi.Output<string>), "hf-staging-acme");
    const [net] = byType(NETWORK);
    assert.equal(net!.name, "acme-network-ipsec");
    assert.deepEqual({ name: net!.inputs.name, driver: net!.inputs.driver, attachable: net!.inputs.attachable, options: net!.inputs.options },
      { name: "hf-staging-acme-edge-ipsec", driver: "overlay", attachable: true, options: { encrypted: "true" } });
    // the data volume is made on its node by the engine, at the task's first start; no container either
    assert.deepEqual(byType(VOLUME), []);
    assert.deepEqual(byType(CONTAINER), []);
    assert.equal(byType(SWARM_SECRET)[0]!.inputs.name, "hf-staging-acme-app-secret-key");
    const [service] = byType(SWARM_SERVICE);
    assert.equal(service!.inputs.spec.Name, "hf-staging-acme");
    assert.deepEqual(service!.inputs.spec.TaskTemplate.Placement.Constraints, ["node.labels.hardened-fleet.node==node2"]);
    assert.deepEqual(service!.inputs.spec.TaskTemplate.Networks, [{ Target: "hf-staging-acme-edge-ipsec" }]);
    assert.deepEqual(service!.inputs.nodeHosts, { node1: "unix:///run/hf/node1.sock", node2: "unix:///run/hf/node2.sock" });
    assert.equal(service!.inputs.timeoutSeconds, 90 + 10);
    const [route] = byType(ROUTE);
    assert.equal(route!.inputs.network, "hf-staging-acme-edge-ipsec");
    assert.equal(route!.inputs.upstream, "hf-staging-acme");
    assert.ok(route!.inputs.fileText.includes("reverse_proxy hf-staging-acme:8000 {"), route!.inputs.fileText);
    assert.deepEqual(requestOf(ROUTE).propertyDependencies.upstream, [requestOf(SWARM_SERVICE).urn], "the route must wait for the service");
  });

  it("a swarm environment has a log collector on each node, through that node's engine; a customer's tasks send to its node's", async () => {
    const outputs = await environmentProgram(swarmEnv, projectDir);
    await settle();
    const providers = byType("pulumi:providers:docker");
    assert.deepEqual(providers.map((p) => [p.name, p.inputs.host]).sort(),
      [["staging-logs-node1-engine", "unix:///run/hf/node1.sock"], ["staging-logs-node2-engine", "unix:///run/hf/node2.sock"]]);
    for (const node of ["node1", "node2"]) {
      const container = requests.find((r) => r.type === CONTAINER && r.name === `staging-logs-${node}-container`) ?? assert.fail(`no collector on ${node}`);
      assert.match(container.provider, new RegExp(`::staging-logs-${node}-engine::`), `the collector of ${node} is made by ${node}'s engine`);
    }
    const logs = outputs.logs as { container: string; nodes: Record<string, pulumi.Output<string>> };
    assert.equal(logs.container, "hf-staging-edge-logs");
    assert.deepEqual(Object.keys(logs.nodes).sort(), ["node1", "node2"]);
    reset();
    const published = { container: "hf-staging-edge-logs", nodes: { node1: "udp://172.20.1.2:5514", node2: "udp://172.20.2.2:5514" } };
    await customerProgram(swarmCustomer, async () => ({ settings: swarmEnv, image: { ref: IMAGE, version: "1.0.0" }, logs: published }), swarmEnv);
    await settle();
    const [service] = byType(SWARM_SERVICE);
    assert.deepEqual(service!.inputs.spec.TaskTemplate.LogDriver, { Name: "syslog", Options: {
      "syslog-address": "udp://172.20.2.2:5514", "syslog-format": "rfc5424micro", tag: "acme.{{.ID}}", "cache-max-size": "10m", "cache-max-file": "3" } });
  });

  it("with swarm.unencryptedOverlays, the overlay keeps its first name and resource, without options", async () => {
    const env = swarmEnvironment({ unencryptedOverlays: { reason: "the nodes' kernel has no IPsec ESP" } });
    const outputs = await customerStack(swarmCustomer, env);
    assert.equal(outputs.networkName, "hf-staging-acme-edge");
    const [net] = byType(NETWORK);
    assert.equal(net!.name, "acme-network");
    assert.equal(net!.inputs.options, undefined);
    assert.deepEqual(byType(SWARM_SERVICE)[0]!.inputs.spec.TaskTemplate.Networks, [{ Target: "hf-staging-acme-edge" }]);
  });

  it("docker: every child keeps the URN it had under HardenedService (network, data volume, container, route), the volume retained", async () => {
    const outputs = await customerStack({ id: "acme", environment: "staging", plan: "starter" }, staging);
    assert.equal("node" in outputs || "target" in outputs, false);
    const component = requestOf("hardened-fleet:service:DockerCustomerService", "acme");
    assert.equal(component.urn, `${STACK_URN}hardened-fleet:service:DockerCustomerService::acme`);
    assert.deepEqual(component.aliases, [`${STACK_URN}${HARDENED_SERVICE_TYPE}::acme`]);
    const network = requestOf(NETWORK);
    assert.equal(network.urn, `${STACK_URN}hardened-fleet:service:DockerCustomerService$${NETWORK}::acme-network`);
    assert.deepEqual(network.aliases, [legacyUrn(NETWORK, "acme-network")]);
    const volume = requestOf(VOLUME);
    assert.deepEqual(volume.aliases, [legacyUrn(VOLUME, "acme-data")]);
    assert.equal(volume.retainOnDelete, true);
    const children = requests.filter((r) => r.parent === component.urn);
    assert.deepEqual(children.map((r) => r.type).sort(), [CONTAINER, NETWORK, VOLUME, ROUTE, GATE, SECRET_FILE,
      "pulumi:providers:pulumi-nodejs", "random:index/randomPassword:RandomPassword"]);
    for (const child of children) {
      assert.deepEqual(child.aliases, [legacyUrn(child.type, child.name)], `${child.type} ${child.name}`);
    }
  });

  it("swarm: every child keeps the URN it had under HardenedService (overlay, secret, service, route); no data volume resource", async () => {
    await customerStack(swarmCustomer, swarmEnv);
    const component = requestOf("hardened-fleet:service:SwarmCustomerService", "acme");
    assert.deepEqual(component.aliases, [`${STACK_URN}${HARDENED_SERVICE_TYPE}::acme`]);
    const network = requestOf(NETWORK);
    assert.equal(network.urn, `${STACK_URN}hardened-fleet:service:SwarmCustomerService$${NETWORK}::acme-network-ipsec`);
    assert.deepEqual(network.aliases, [legacyUrn(NETWORK, "acme-network-ipsec")]);
    assert.equal(requests.some((r) => r.type === VOLUME), false);
    const children = requests.filter((r) => r.parent === component.urn);
    assert.deepEqual(children.map((r) => r.type).sort(), [NETWORK, SWARM_SECRET, ROUTE, SWARM_SERVICE,
      "pulumi:providers:pulumi-nodejs", "random:index/randomPassword:RandomPassword"]);
    for (const child of children) {
      assert.deepEqual(child.aliases, [legacyUrn(child.type, child.name)], `${child.type} ${child.name}`);
    }
  });

  it("the edge proxy joins the encrypted overlays of a swarm's customers, and only a docker environment's own networks", async () => {
    const suffixes = async (env: typeof staging) => {
      reset();
      await environmentProgram(env, projectDir);
      await settle();
      const [networks] = byType("pulumi-nodejs:dynamic/hardened-fleet:EdgeNetworks");
      return [networks!.inputs.networkSuffix, networks!.inputs.alsoSuffixes];
    };
    assert.deepEqual(await suffixes(staging), ["-edge", []]);
    assert.deepEqual(await suffixes(swarmEnv), ["-edge", ["-edge-ipsec"]]);
  });
});
