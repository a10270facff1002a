/**
 * The policy pack's rules (policies/src), pure: each rule on a compliant docker.Container and on one
 * targeted break of it, how docker.Service and fleet's SwarmService (the Engine API spec) read, values
 * unknown during a preview, exemptions, the production stack, the volume owner label, and the names
 * the pack shares with fleet (so that the two cannot drift apart).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findExemption, isProduction, MIN_REASON, stackOfUrn } from "../../policies/src/config";
import {
  CAP_REASONS_LABEL,
  capabilityReasons,
  PIDS_RULE,
  POLICY_NAMES,
  RULES,
  VOLUME_RULE,
  volumeOwnerProblems,
  type RuleConfig,
} from "../../policies/src/rules";
import {
  CONTAINER_TYPES,
  readerOf,
  fromDockerContainer,
  fromDockerService,
  fromSwarmSpec,
  known,
  UNKNOWN,
  type ContainerSettings,
} from "../../policies/src/settings";
import { LABEL_CAP_REASONS, LABEL_CUSTOMER, LABEL_ENVIRONMENT } from "../../src/hardening/names";

type Props = Record<string, unknown>;

const HEX = "0123456789abcdef".repeat(4);
const PINNED = `registry.example/app@sha256:${HEX}`;
const CAP_REASON = "NET_BIND_SERVICE: serves port 443 to clients";

/** A docker.Container's inputs that break no rule (production included). */
function compliantContainer(): Props {
  return {
    name: "hf-staging-acme-1",
    image: PINNED,
    user: "1000:1000",
    capabilities: { drops: ["ALL"] },
    securityOpts: ["no-new-privileges:true"],
    readOnly: true,
    tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=16m" },
    memory: 256,
    cpus: "0.5",
    healthcheck: { tests: ["CMD", "python", "/app/hc.py"] },
    restart: "on-failure",
    maxRetryCount: 5,
    logDriver: "json-file",
    logOpts: { "max-size": "10m", "max-file": "3" },
    labels: [{ label: LABEL_CUSTOMER, value: "acme" }],
  };
}

const container = (change: Props = {}): ContainerSettings => fromDockerContainer({ ...compliantContainer(), ...change });

/** rule name -> its problems, for the rules that report any. */
function problems(s: ContainerSettings, cfg: RuleConfig = {}, production = true): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const rule of RULES) {
    const found = rule.check(s, cfg, production);
    if (found.length > 0) out[rule.name] = found;
  }
  return out;
}

/** Asserts that `s` breaks `rule` and no other, with a problem matching `message`. */
function breaksOnly(s: ContainerSettings, rule: string, message: RegExp, cfg: RuleConfig = {}, production = true): void {
  const found = problems(s, cfg, production);
  assert.deepEqual(Object.keys(found), [rule], `expected only ${rule}, got ${JSON.stringify(found)}`);
  assert.ok(found[rule]!.some((p) => message.test(p)), `${rule}: ${JSON.stringify(found[rule])} has nothing matching ${message}`);
}

const passes = (s: ContainerSettings, cfg: RuleConfig = {}, production = true) => assert.deepEqual(problems(s, cfg, production), {});

describe("the pack's rules on a docker.Container", () => {
  it("the compliant container breaks no rule, in production or not", () => {
    passes(container());
    passes(container(), {}, false);
  });

  it("every rule has a name, a description and a remediation, and POLICY_NAMES lists each once with pids-limit and volume-owner-label", () => {
    for (const rule of RULES) {
      assert.ok(rule.description.length > 20 && rule.remediation.length > 20, rule.name);
      assert.equal(rule.enforcementLevel, "mandatory");
    }
    assert.deepEqual([...POLICY_NAMES], [...RULES.map((r) => r.name), PIDS_RULE.name, VOLUME_RULE.name]);
    assert.equal(new Set(POLICY_NAMES).size, POLICY_NAMES.length);
    assert.equal(POLICY_NAMES.length, 13);
  });

  const breaks: { name: string; change: Props; rule: string; message: RegExp; cfg?: RuleConfig }[] = [
    { name: "user root (a name)", change: { user: "root" }, rule: "non-root-user", message: /'root' is a name/ },
    { name: "user 0", change: { user: "0" }, rule: "non-root-user", message: /root \(UID 0\)/ },
    { name: "user 0:1000", change: { user: "0:1000" }, rule: "non-root-user", message: /root \(UID 0\)/ },
    { name: "user 1000:0", change: { user: "1000:0" }, rule: "non-root-user", message: /root group \(GID 0\)/ },
    { name: "no user", change: { user: undefined }, rule: "non-root-user", message: /no user is set/ },
    { name: "a UID without a group (GID 0 without a passwd entry)", change: { user: "1000" }, rule: "non-root-user", message: /has no group/ },
    { name: "a host path under /etc", change: { volumes: [{ hostPath: "/etc/shadow", containerPath: "/x" }] }, rule: "no-host-access", message: /under \/etc/ },
    { name: "a host path under /var/lib/docker", change: { volumes: [{ hostPath: "/var/lib/docker/volumes", containerPath: "/x" }] }, rule: "no-host-access", message: /under \/var\/lib\/docker/ },
    { name: "an empty user", change: { user: "" }, rule: "non-root-user", message: /no user is set/ },
    { name: "capabilities not all dropped", change: { capabilities: { drops: ["NET_RAW"] } }, rule: "capabilities-dropped", message: /not all dropped \(drops: NET_RAW\)/ },
    { name: "no capabilities dropped", change: { capabilities: undefined }, rule: "capabilities-dropped", message: /drops: none/ },
    { name: "a capability added without a reason", change: { capabilities: { drops: ["ALL"], adds: ["NET_BIND_SERVICE"] } },
      rule: "capabilities-dropped", message: /adds NET_BIND_SERVICE without a stated reason/ },
    { name: "CAP_NET_ADMIN added with the reason of another", change: {
      capabilities: { drops: ["ALL"], adds: ["CAP_NET_ADMIN"] }, labels: [{ label: CAP_REASONS_LABEL, value: CAP_REASON }] },
      rule: "capabilities-dropped", message: /adds NET_ADMIN without a stated reason/ },
    { name: "a reason shorter than 10 characters", change: {
      capabilities: { drops: ["ALL"], adds: ["NET_BIND_SERVICE"] }, labels: [{ label: CAP_REASONS_LABEL, value: "NET_BIND_SERVICE: port 443" }] },
      rule: "capabilities-dropped", message: /adds NET_BIND_SERVICE without a stated reason/ },
    { name: "ALL added back", change: { capabilities: { drops: ["ALL"], adds: ["ALL"] } }, rule: "capabilities-dropped", message: /adds ALL capabilities back/ },
    { name: "no securityOpts", change: { securityOpts: undefined }, rule: "no-new-privileges", message: /not set/ },
    { name: "no-new-privileges:false", change: { securityOpts: ["no-new-privileges:false"] }, rule: "no-new-privileges", message: /not set/ },
    { name: "a writable root", change: { readOnly: false }, rule: "read-only-root", message: /writable/ },
    { name: "a tmpfs without size", change: { tmpfs: { "/tmp": "rw,noexec,nosuid,nodev" } }, rule: "read-only-root", message: /tmpfs \/tmp has no size= bound/ },
    { name: "a tmpfs without nosuid", change: { tmpfs: { "/tmp": "rw,size=16m" } }, rule: "read-only-root", message: /tmpfs \/tmp is not nosuid/ },
    { name: "no memory limit", change: { memory: undefined }, rule: "resource-limits", message: /no memory limit/ },
    { name: "memory 0", change: { memory: 0 }, rule: "resource-limits", message: /no memory limit/ },
    { name: "no CPU limit", change: { cpus: undefined }, rule: "resource-limits", message: /no CPU limit/ },
    { name: "a CPU limit that is no number", change: { cpus: "half" }, rule: "resource-limits", message: /no CPU limit/ },
    { name: "no healthcheck", change: { healthcheck: undefined }, rule: "healthcheck", message: /no healthcheck is set/ },
    { name: "a healthcheck with no test", change: { healthcheck: { tests: [] } }, rule: "healthcheck", message: /no healthcheck is set/ },
    { name: "a disabled healthcheck", change: { healthcheck: { tests: ["NONE"] } }, rule: "healthcheck", message: /disabled \(NONE\)/ },
    { name: "a published host port", change: { ports: [{ internal: 8000, external: 8080, ip: "127.0.0.1" }] }, rule: "no-host-ports", message: /127\.0\.0\.1:8080/ },
    { name: "a port the engine publishes on any free host port", change: { ports: [{ internal: 8000 }] }, rule: "no-host-ports", message: /0\.0\.0\.0:\(any\)/ },
    { name: "docker.sock mounted (volumes)", change: { volumes: [{ hostPath: "/var/run/docker.sock", containerPath: "/var/run/docker.sock" }] },
      rule: "no-host-access", message: /engine's socket \/var\/run\/docker\.sock/ },
    { name: "containerd's socket bind-mounted (mounts)", change: { mounts: [{ type: "bind", source: "/run/containerd/containerd.sock", target: "/c.sock" }] },
      rule: "no-host-access", message: /engine's socket/ },
    { name: "the host's / mounted", change: { mounts: [{ type: "bind", source: "/", target: "/host" }] }, rule: "no-host-access", message: /mounts the host's \/$/ },
    { name: "the host's /etc/ mounted (trailing slash)", change: { volumes: [{ hostPath: "/etc/", containerPath: "/host-etc" }] }, rule: "no-host-access", message: /mounts the host's \/etc$/ },
    { name: "the host network", change: { networkMode: "host" }, rule: "no-host-access", message: /host's network namespace/ },
    { name: "the host PID namespace", change: { pidMode: "host" }, rule: "no-host-access", message: /host's pid namespace/ },
    { name: "privileged", change: { privileged: true }, rule: "no-host-access", message: /runs privileged/ },
    { name: "a host device", change: { devices: [{ hostPath: "/dev/fuse" }] }, rule: "no-host-access", message: /host devices \/dev\/fuse/ },
    { name: "GPUs", change: { gpus: "all" }, rule: "no-host-access", message: /gpus all/ },
    { name: "restart always", change: { restart: "always" }, rule: "restart-bounded", message: /'always', not on-failure/ },
    { name: "no restart policy", change: { restart: undefined }, rule: "restart-bounded", message: /'no', not on-failure/ },
    { name: "on-failure with maxRetryCount 0 (for ever)", change: { maxRetryCount: 0 }, rule: "restart-bounded", message: /without a bound/ },
    { name: "on-failure 20 times, over the default bound of 10", change: { maxRetryCount: 20 }, rule: "restart-bounded", message: /up to 20 times, more than the bound of 10/ },
    { name: "on-failure 5 times, over a configured bound of 3", change: {}, cfg: { maxRetries: 3 }, rule: "restart-bounded", message: /up to 5 times, more than the bound of 3/ },
    { name: "json-file without max-size", change: { logOpts: { "max-file": "3" } }, rule: "log-rotation", message: /json-file logs have no max-size/ },
    { name: "json-file without max-file", change: { logOpts: { "max-size": "10m" } }, rule: "log-rotation", message: /no max-file/ },
    { name: "no log options", change: { logOpts: undefined }, rule: "log-rotation", message: /no max-size/ },
    { name: "log driver none", change: { logDriver: "none", logOpts: undefined }, rule: "log-rotation", message: /driver none/ },
    { name: "a driver neither rotated nor listed", change: { logDriver: "awslogs", logOpts: undefined }, rule: "log-rotation", message: /'awslogs' is neither rotated/ },
    { name: "an image by tag", change: { image: "registry.example/app:1.0" }, rule: "image-pinned-by-digest", message: /'registry\.example\/app:1\.0' is not pinned/ },
    { name: "a digest too short", change: { image: "registry.example/app@sha256:abc" }, rule: "image-pinned-by-digest", message: /not pinned/ },
  ];
  for (const b of breaks) {
    it(`${b.name} breaks ${b.rule} and nothing else`, () => breaksOnly(container(b.change), b.rule, b.message, b.cfg));
  }

  it("a capability added with its reason in fleet's label passes (CAP_ prefix and case ignored)", () => {
    const labels = [{ label: CAP_REASONS_LABEL, value: CAP_REASON }];
    passes(container({ capabilities: { drops: ["ALL"], adds: ["NET_BIND_SERVICE"] }, labels }));
    passes(container({ capabilities: { drops: ["all"], adds: ["cap_net_bind_service"] }, labels }));
  });

  it("a capability added with its reason in the policy's capabilityReasons passes", () => {
    const s = container({ capabilities: { drops: ["ALL"], adds: ["NET_BIND_SERVICE"] } });
    passes(s, { capabilityReasons: { NET_BIND_SERVICE: "serves port 443 to clients" } });
    breaksOnly(s, "capabilities-dropped", /without a stated reason/, { capabilityReasons: { NET_BIND_SERVICE: "443" } });
    // written as in the label: CAP_ prefix and case do not matter; a reason of blanks is none
    passes(s, { capabilityReasons: { cap_net_bind_service: "serves port 443 to clients" } });
    breaksOnly(s, "capabilities-dropped", /without a stated reason/, { capabilityReasons: { NET_BIND_SERVICE: "   443           " } });
  });

  it("capabilityReasons reads fleet's label: several capabilities, CAP_ dropped, names upper-cased", () => {
    assert.deepEqual(capabilityReasons({ [CAP_REASONS_LABEL]: "cap_net_bind_service: serves port 443 ; CHOWN: fixes owners: at start;" }), {
      NET_BIND_SERVICE: "serves port 443",
      CHOWN: "fixes owners: at start",
    });
    assert.deepEqual(capabilityReasons({}), {});
    assert.deepEqual(capabilityReasons({ [CAP_REASONS_LABEL]: "no colon here" }), {});
  });

  it("a named volume and a bind mount of an app directory are no host access", () => {
    passes(container({
      volumes: [{ volumeName: "hf-staging-acme-data", containerPath: "/data" }],
      mounts: [{ type: "bind", source: "/srv/acme/config", target: "/config" }, { type: "volume", source: "cache", target: "/cache" }],
    }));
  });

  it("restart bound: exactly the default 10, and 20 under a configured bound of 20, pass", () => {
    passes(container({ maxRetryCount: 10 }));
    passes(container({ maxRetryCount: 20 }), { maxRetries: 20 });
  });

  it("log drivers: syslog and the others that ship pass without options; local with max-size passes; shippingDrivers is honoured", () => {
    for (const driver of ["syslog", "fluentd", "gelf", "journald"]) passes(container({ logDriver: driver, logOpts: undefined }));
    passes(container({ logDriver: "local", logOpts: { "max-size": "10m" } }));
    passes(container({ logDriver: "awslogs", logOpts: undefined }), { shippingDrivers: ["awslogs"] });
    // a configured list replaces the default one
    breaksOnly(container({ logDriver: "syslog", logOpts: undefined }), "log-rotation", /'syslog' is neither/, { shippingDrivers: ["awslogs"] });
  });

  it("an image by tag breaks image-pinned-by-digest only in production; an image id sha256:<hex> is pinned", () => {
    passes(container({ image: "registry.example/app:1.0" }), {}, false);
    passes(container({ image: `sha256:${HEX}` }));
    passes(container({ image: `registry.example/app:1.0@sha256:${HEX}` }));
    passes(container({ image: undefined }));
  });

  it("no-new-privileges reads both spellings of the option", () => {
    passes(container({ securityOpts: ["no-new-privileges"] }));
    passes(container({ securityOpts: ["seccomp=default.json", "no-new-privileges=true"] }));
  });

  it("reads its settings as the rules expect them: MB to bytes, cpus from a string, labels from the provider's list", () => {
    const s = container();
    assert.equal(s.kind, "docker.Container");
    assert.equal(s.memoryBytes, 256 * 1024 * 1024);
    assert.equal(s.cpus, 0.5);
    assert.equal(s.pidsLimit, "unsupported");
    assert.deepEqual(s.labels, { [LABEL_CUSTOMER]: "acme" });
    assert.deepEqual(s.restart, { policy: "on-failure", maxRetries: 5 });
    assert.deepEqual(s.log, { driver: "json-file", opts: { "max-size": "10m", "max-file": "3" } });
    // without a driver, the provider's default: json-file
    assert.deepEqual(container({ logDriver: undefined }).log, { driver: "json-file", opts: { "max-size": "10m", "max-file": "3" } });
  });
});

describe("docker.Service and fleet's SwarmService, read into the same settings", () => {
  const dockerService = (change: Props = {}): Props => ({
    name: "web",
    labels: [{ label: LABEL_CUSTOMER, value: "acme" }],
    taskSpec: {
      containerSpec: {
        image: PINNED,
        user: "1000:1000",
        capDrops: ["ALL"],
        readOnly: true,
        mounts: [{ type: "tmpfs", target: "/tmp", tmpfsOptions: { sizeBytes: 16 * 1024 * 1024 } }],
        healthcheck: { tests: ["CMD", "python", "/app/hc.py"] },
        labels: [{ label: CAP_REASONS_LABEL, value: CAP_REASON }],
      },
      resources: { limits: { memoryBytes: 256 * 1024 * 1024, nanoCpus: 500_000_000 } },
      restartPolicy: { condition: "on-failure", maxAttempts: 5 },
      logDriver: { name: "json-file", options: { "max-size": "10m", "max-file": "3" } },
      ...change,
    },
  });

  it("docker.Service: the provider's names, and no input for no-new-privileges or a PIDs limit", () => {
    const s = fromDockerService(dockerService());
    assert.equal(s.kind, "docker.Service");
    assert.equal(s.name, "web");
    assert.equal(s.image, PINNED);
    assert.equal(s.user, "1000:1000");
    assert.deepEqual(s.capDrop, ["ALL"]);
    assert.deepEqual(s.labels, { [LABEL_CUSTOMER]: "acme", [CAP_REASONS_LABEL]: CAP_REASON });
    assert.deepEqual(s.tmpfs, { "/tmp": `size=${16 * 1024 * 1024}` });
    assert.equal(s.memoryBytes, 256 * 1024 * 1024);
    assert.equal(s.cpus, 0.5);
    assert.equal(s.noNewPrivileges, "unsupported");
    assert.equal(s.pidsLimit, "unsupported");
    assert.deepEqual(s.healthcheck, ["CMD", "python", "/app/hc.py"]);
    assert.deepEqual(s.restart, { policy: "on-failure", maxRetries: 5 });
    assert.deepEqual(s.log, { driver: "json-file", opts: { "max-size": "10m", "max-file": "3" } });
    // only no-new-privileges, which the provider cannot set
    breaksOnly(s, "no-new-privileges", /docker\.Service cannot set no-new-privileges/);
  });

  it("docker.Service: Swarm's default restart policy (any), a published port and the host network break their rules", () => {
    const s = fromDockerService(dockerService({ restartPolicy: undefined, networksAdvanceds: [{ name: "host" }] }));
    assert.deepEqual(s.restart, { policy: "any", maxRetries: 0 });
    assert.deepEqual(s.hostNamespaces, ["network"]);
    const ported = fromDockerService({ ...dockerService(), endpointSpec: { ports: [{ targetPort: 8000, publishedPort: 8080 }] } });
    assert.deepEqual(ported.hostPorts, [{ port: 8080, ip: "0.0.0.0" }]);
    const hostMode = fromDockerService({ ...dockerService(), endpointSpec: { ports: [{ targetPort: 8000, publishMode: "host" }] } });
    assert.deepEqual(hostMode.hostPorts, [{ port: 0, ip: "0.0.0.0" }]);
  });

  /** A SwarmService's inputs, its spec shaped as src/swarm/serviceSpec.ts's toSwarmServiceSpec makes it. */
  const swarmService = (task: Props = {}, container: Props = {}): Props => ({
    managerHost: "unix:///run/hf/node1.sock",
    spec: {
      Name: "hf-swarm-acme",
      Labels: { [LABEL_CUSTOMER]: "acme" },
      TaskTemplate: {
        ContainerSpec: {
          Image: PINNED,
          Labels: { [CAP_REASONS_LABEL]: CAP_REASON },
          User: "1000:1000",
          ReadOnly: true,
          CapabilityDrop: ["ALL"],
          CapabilityAdd: ["NET_BIND_SERVICE"],
          Mounts: [
            { Type: "volume", Source: "hf-swarm-acme-data", Target: "/data" },
            { Type: "tmpfs", Target: "/tmp", TmpfsOptions: { SizeBytes: 33554432, Mode: 0o1777 } },
          ],
          Healthcheck: { Test: ["CMD", "python", "/app/hc.py"], Interval: 10e9, Timeout: 3e9, Retries: 3, StartPeriod: 5e9 },
          Privileges: { NoNewPrivileges: true },
          ...container,
        },
        Resources: { Limits: { NanoCPUs: 250_000_000, MemoryBytes: 128 * 1024 * 1024, Pids: 64 } },
        RestartPolicy: { Condition: "on-failure", Delay: 5e9, MaxAttempts: 3 },
        Networks: [{ Target: "hf-swarm-acme-edge" }],
        LogDriver: { Name: "json-file", Options: { "max-size": "10m", "max-file": "3" } },
        ...task,
      },
      EndpointSpec: { Mode: "dnsrr" },
    },
  });

  it("SwarmService: the Engine API's names, its PIDs limit and tmpfs SizeBytes as size=<bytes>", () => {
    const s = fromSwarmSpec(swarmService());
    assert.equal(s.kind, "SwarmService");
    assert.equal(s.name, "hf-swarm-acme");
    assert.equal(s.user, "1000:1000");
    assert.deepEqual(s.capDrop, ["ALL"]);
    assert.deepEqual(s.capAdd, ["NET_BIND_SERVICE"]);
    assert.deepEqual(s.labels, { [LABEL_CUSTOMER]: "acme", [CAP_REASONS_LABEL]: CAP_REASON });
    assert.equal(s.noNewPrivileges, true);
    assert.equal(s.readOnly, true);
    assert.deepEqual(s.tmpfs, { "/tmp": "size=33554432" });
    assert.equal(s.memoryBytes, 128 * 1024 * 1024);
    assert.equal(s.cpus, 0.25);
    assert.equal(s.pidsLimit, 64);
    assert.deepEqual(s.healthcheck, ["CMD", "python", "/app/hc.py"]);
    assert.deepEqual(s.hostPorts, []);
    assert.deepEqual(s.hostMounts, []);
    assert.deepEqual(s.hostNamespaces, []);
    assert.deepEqual(s.restart, { policy: "on-failure", maxRetries: 3 });
    assert.deepEqual(s.log, { driver: "json-file", opts: { "max-size": "10m", "max-file": "3" } });
    passes(s);
  });

  it("SwarmService as fleet makes it (Condition any, no Privileges) breaks exactly no-new-privileges and restart-bounded", () => {
    const s = fromSwarmSpec(swarmService({ RestartPolicy: { Condition: "any", Delay: 5e9, MaxAttempts: 0 } }, { Privileges: undefined }));
    assert.deepEqual(Object.keys(problems(s)).sort(), ["no-new-privileges", "restart-bounded"]);
  });

  it("SwarmService: a tmpfs without SizeBytes, a bind of docker.sock, the host network, a published port break their rules", () => {
    breaksOnly(fromSwarmSpec(swarmService({}, { Mounts: [{ Type: "tmpfs", Target: "/tmp" }] })), "read-only-root", /tmpfs \/tmp has no size= bound/);
    breaksOnly(fromSwarmSpec(swarmService({}, { Mounts: [{ Type: "bind", Source: "/var/run/docker.sock", Target: "/s" }] })),
      "no-host-access", /engine's socket/);
    breaksOnly(fromSwarmSpec(swarmService({ Networks: [{ Target: "host" }] })), "no-host-access", /network namespace/);
    const ported = swarmService();
    (ported.spec as Props).EndpointSpec = { Mode: "vip", Ports: [{ TargetPort: 8000, PublishedPort: 8080 }] };
    breaksOnly(fromSwarmSpec(ported), "no-host-ports", /0\.0\.0\.0:8080/);
  });

  it("a Swarm port published without PublishedPort (Swarm picks one from 30000-32767) is still a host port", () => {
      const spec = swarmService();
      (spec.spec as Props).EndpointSpec = { Mode: "vip", Ports: [{ TargetPort: 8000, PublishMode: "ingress" }] };
      assert.equal(problems(fromSwarmSpec(spec))["no-host-ports"]?.length, 1);
      const service = { ...dockerService(), endpointSpec: { ports: [{ targetPort: 8000, publishMode: "ingress" }] } };
      assert.equal(problems(fromDockerService(service))["no-host-ports"]?.length, 1);
    });

  it("CONTAINER_TYPES reads each type with its own reader", () => {
    assert.equal(CONTAINER_TYPES["docker:index/container:Container"], fromDockerContainer);
    assert.equal(CONTAINER_TYPES["docker:index/service:Service"], fromDockerService);
    assert.equal(CONTAINER_TYPES["pulumi-nodejs:dynamic/hardened-fleet:SwarmService"], fromSwarmSpec);
    assert.equal(readerOf("docker:index/container:Container"), fromDockerContainer);
    // a type named like a prototype key reads as no container, not as Object.prototype's
    assert.equal(readerOf("constructor"), undefined);
    assert.equal(readerOf("docker:index/network:Network"), undefined);
  });
});

describe("values unknown during a preview", () => {
  /** @pulumi/policy's UnknownValueError, as the pack recognises it: by its field. */
  const unknownError = () => Object.assign(new Error("x"), { unknownTypeSentinel: 1 });

  it("known() gives the value, UNKNOWN for the policy SDK's unknown-value error, and lets any other error through", () => {
    assert.equal(known(() => 42), 42);
    assert.equal(known(() => { throw unknownError(); }), UNKNOWN);
    assert.throws(() => known(() => { throw new TypeError("a real bug"); }), /a real bug/);
    assert.throws(() => known(() => { throw "not an Error"; }));
  });

  /** Inputs whose every property is unknown (a preview of a container built from other resources' outputs). */
  const allUnknown = new Proxy({}, { get: () => { throw unknownError(); } }) as Props;

  for (const [kind, read] of [["docker.Container", fromDockerContainer], ["SwarmService", fromSwarmSpec]] as const) {
    it(`a ${kind} whose inputs are all unknown reads UNKNOWN, and no rule reports anything`, () => {
      const s = read(allUnknown);
      assert.equal(s.user, UNKNOWN);
      assert.equal(s.capDrop, UNKNOWN);
      assert.equal(s.restart, UNKNOWN);
      assert.deepEqual(problems(s), {});
    });
  }

  it("only the rule that needs the unknown value waits: an unknown user beside a writable root", () => {
    const s: ContainerSettings = { ...container({ readOnly: false }), user: UNKNOWN };
    breaksOnly(s, "read-only-root", /writable/);
    // each setting unknown on its own, on the compliant container: nothing
    for (const key of Object.keys(container()) as (keyof ContainerSettings)[]) {
      if (key === "kind") continue;
      assert.deepEqual(problems({ ...container(), [key]: UNKNOWN }), {}, String(key));
    }
  });

  it("an unknown image in production is not reported (the update knows it)", () => {
    assert.deepEqual(problems({ ...container(), image: UNKNOWN }, {}, true), {});
  });
});

describe("exemptions and the production stack (config.ts)", () => {
  const URN = "urn:pulumi:prod-acme::hardened-fleet::docker:index/container:Container::x";
  const REASON = "legacy app, moved next quarter";

  it("an exemption matches the Pulumi name, the container's own name or the URN, with * as any run of characters", () => {
    const list = [{ resource: "hf-*-edge", reason: REASON }];
    assert.equal(findExemption(list, ["x", URN, "hf-staging-edge"]), list[0]);
    assert.equal(findExemption(list, ["x", URN, "hf-staging-acme"]), undefined);
    assert.ok(findExemption([{ resource: "x", reason: REASON }], ["x", URN]));
    assert.ok(findExemption([{ resource: "*::docker:index/container:Container::*", reason: REASON }], ["y", URN]));
    assert.ok(findExemption([{ resource: URN, reason: REASON }], ["y", URN]));
    assert.ok(findExemption([{ resource: "*", reason: REASON }], ["anything"]));
    assert.equal(findExemption([{ resource: "x", reason: REASON }], [undefined, "xy"]), undefined, "the whole name, not a part");
    assert.equal(findExemption(undefined, ["x"]), undefined);
  });

  it("the pattern's other characters are literal: . and $ (a parent's type in a URN) match only themselves", () => {
    assert.equal(findExemption([{ resource: "a.b", reason: REASON }], ["axb"]), undefined);
    assert.ok(findExemption([{ resource: "a.b", reason: REASON }], ["a.b"]));
    const child = "urn:pulumi:prod::p::my:index:App$docker:index/container:Container::web";
    assert.ok(findExemption([{ resource: "*App$docker:index/container:Container::web", reason: REASON }], [child]));
    assert.ok(findExemption([{ resource: "(web)+[0-9]", reason: REASON }], ["(web)+[0-9]"]));
  });

  it(`an exemption whose reason is shorter than ${MIN_REASON} characters (spaces aside) never matches; the first that does is returned`, () => {
    assert.equal(findExemption([{ resource: "x", reason: "too short" }], ["x"]), undefined);
    assert.equal(findExemption([{ resource: "x", reason: "   short    " }], ["x"]), undefined);
    assert.equal(findExemption([{ resource: "x", reason: "" }], ["x"]), undefined);
    const ok = { resource: "*", reason: "exactly 10" };
    assert.equal(findExemption([{ resource: "x", reason: "nope" }, ok, { resource: "x", reason: REASON }], ["x"]), ok);
  });

  it("stackOfUrn reads the stack; isProduction takes the config's word, else the stack's name", () => {
    assert.equal(stackOfUrn(URN), "prod-acme");
    assert.equal(stackOfUrn("urn:pulumi:staging::hardened-fleet::docker:index/volume:Volume::v"), "staging");
    assert.equal(stackOfUrn("not a urn"), "");
    for (const stack of ["prod", "production", "prod-acme", "production-eu"]) {
      assert.equal(isProduction({}, `urn:pulumi:${stack}::p::t::n`), true, stack);
    }
    for (const stack of ["staging", "staging-prod", "products", "preprod", "prodx"]) {
      assert.equal(isProduction({}, `urn:pulumi:${stack}::p::t::n`), false, stack);
    }
    assert.equal(isProduction({ production: false }, URN), false);
    assert.equal(isProduction({ production: true }, "urn:pulumi:staging::p::t::n"), true);
  });
});

describe("volume-owner-label", () => {
  it("by default a customer, environment or owner label names the owner; an empty value does not", () => {
    assert.deepEqual(volumeOwnerProblems({ [LABEL_CUSTOMER]: "acme" }, {}), []);
    assert.deepEqual(volumeOwnerProblems({ [LABEL_ENVIRONMENT]: "staging" }, {}), []);
    assert.deepEqual(volumeOwnerProblems({ owner: "team-a" }, {}), []);
    const [problem, ...rest] = volumeOwnerProblems({ [LABEL_CUSTOMER]: "  ", other: "x" }, {});
    assert.deepEqual(rest, []);
    assert.match(problem!, /has no owner label \(one of io\.hardened-fleet\.customer, io\.hardened-fleet\.environment, owner\)/);
    assert.equal(volumeOwnerProblems({}, {}).length, 1);
  });

  it("ownerLabels replaces the default keys", () => {
    assert.deepEqual(volumeOwnerProblems({ team: "payments" }, { ownerLabels: ["team"] }), []);
    const problems = volumeOwnerProblems({ [LABEL_CUSTOMER]: "acme" }, { ownerLabels: ["team", "cost-center"] });
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /one of team, cost-center\)/);
  });
});

describe("names the pack shares with fleet", () => {
  it("the capability reasons label is fleet's LABEL_CAP_REASONS", () => {
    assert.equal(CAP_REASONS_LABEL, LABEL_CAP_REASONS);
  });

  it("the owner labels by default include fleet's customer and environment labels", () => {
    assert.ok(VOLUME_RULE.defaultOwnerLabels.includes(LABEL_CUSTOMER));
    assert.ok(VOLUME_RULE.defaultOwnerLabels.includes(LABEL_ENVIRONMENT));
  });
});
