/**
 * The audit over containers made from the real specs (a customer's, the edge proxy's): "ports" in
 * detail, the checks that weaken one property at a time, and `fleet audit` over a changing fleet.
 * Each rule on its own, with a passing and a failing input: auditRules.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type Dockerode from "dockerode";
import { auditFleet } from "../../src/audit/audit";
import { capMask, CHECKS, RULES, rulesFor, runChecks, SUBJECTS, type Probes } from "../../src/audit/checks";
import { parseEnvironmentConfig } from "../../src/config/load";
import { edgeProxySpec } from "../../src/edge/edgeSpec";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { serviceSpec, type ContainerSpec } from "../../src/hardening/serviceSpec";
import { rawEnvironment } from "../support/fixtures";

const env = parseEnvironmentConfig(rawEnvironment("staging"));
const IMAGE = `sha256:${"d".repeat(64)}`;
const customer = serviceSpec(env, { id: "acme", environment: "staging", plan: "starter" }, IMAGE);
const edge = edgeProxySpec(env, IMAGE);

type Bindings = Record<string, { HostIp: string; HostPort: string }[]>;

/** What `docker inspect` reports of a running, healthy container made from `spec` (the fields the checks read). */
function inspectOf(spec: ContainerSpec, change: { bindings?: Bindings; publishAll?: boolean } = {}): Dockerode.ContainerInspectInfo {
  const opts = toEngineCreateOptions(spec, {});
  return {
    Name: `/${spec.containerName}`,
    Image: spec.image,
    Config: { User: opts.User, Labels: opts.Labels, Healthcheck: opts.Healthcheck },
    HostConfig: {
      ...opts.HostConfig,
      PortBindings: change.bindings ?? opts.HostConfig!.PortBindings,
      PublishAllPorts: change.publishAll ?? false,
    },
    State: { Running: true, Health: { Status: "healthy" } },
    NetworkSettings: { Networks: { [spec.networkName]: {} } },
    Mounts: [{ Type: "volume", Name: spec.data.volume, Source: `/var/lib/docker/volumes/${spec.data.volume}/_data`, Destination: spec.data.target }],
  } as unknown as Dockerode.ContainerInspectInfo;
}

const image = { Config: { User: "1000:1000", Healthcheck: { Test: ["CMD", "/healthcheck"] } } } as unknown as Dockerode.ImageInspectInfo;
const probes: Probes = {
  procStatus: "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n",
  foreignFiles: "",
  buildLeftovers: "",
  setuidFiles: "",
  shells: "",
};

function checked(info: Dockerode.ContainerInspectInfo) {
  const results = runChecks(info, image, probes);
  const ports = results.find((r) => r.id === "ports")!;
  return { results, ports, failed: results.filter((r) => !r.ok).map((r) => r.id) };
}

describe("audit checks", () => {
  it("a customer's container as deployed passes every check, publishing nothing", () => {
    const { results, ports, failed } = checked(inspectOf(customer));
    assert.deepEqual(results.map((r) => r.id), Object.keys(CHECKS));
    assert.deepEqual(failed, []);
    assert.equal(ports.detail, "none published");
  });

  it("a customer's container that publishes a port fails 'ports', even on loopback, and only that check", () => {
    const { ports, failed } = checked(inspectOf(customer, { bindings: { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: "18101" }] } }));
    assert.deepEqual(failed, ["ports"]);
    assert.match(ports.detail, /publishes 127\.0\.0\.1:18101: only the edge proxy publishes ports/);
  });

  it("a customer's container published on every address fails for both reasons", () => {
    const { ports, failed } = checked(inspectOf(customer, { bindings: { "8000/tcp": [{ HostIp: "0.0.0.0", HostPort: "18101" }] } }));
    assert.deepEqual(failed, ["ports"]);
    assert.match(ports.detail, /only the edge proxy publishes ports/);
    assert.match(ports.detail, /8000\/tcp is published on all addresses/);
  });

  it("a customer's container with PublishAllPorts fails", () => {
    const { ports } = checked(inspectOf(customer, { publishAll: true }));
    assert.equal(ports.ok, false);
    assert.match(ports.detail, /PublishAllPorts is on/);
  });

  it("the edge proxy, labelled edge-proxy, passes with its two ports bound to 127.0.0.1", () => {
    const { ports, failed } = checked(inspectOf(edge));
    assert.deepEqual(failed, []);
    assert.equal(ports.ok, true);
    assert.equal(ports.detail, "127.0.0.1:443,127.0.0.1:80");
  });

  it("the edge proxy bound to 0.0.0.0 (or to no address, or ::) fails 'ports'", () => {
    for (const hostIp of ["0.0.0.0", "", "::"]) {
      const { ports, failed } = checked(inspectOf(edge, { bindings: {
        "8443/tcp": [{ HostIp: hostIp, HostPort: "443" }],
        "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "80" }],
      } }));
      assert.deepEqual(failed, ["ports"], `HostIp ${JSON.stringify(hostIp)}`);
      assert.equal(ports.detail, "8443/tcp is published on all addresses");
    }
  });

  it("only the role label makes a container the edge proxy: the same ports on a customer's container fail", () => {
    const pretender = { ...edge, labels: { ...customer.labels } };
    const { ports } = checked(inspectOf(pretender));
    assert.equal(ports.ok, false);
    assert.match(ports.detail, /only the edge proxy publishes ports/);
  });
});

/** The customer's inspect, changed in one way. */
function weakened(change: (info: any) => void): Dockerode.ContainerInspectInfo {
  const info = inspectOf(customer) as any;
  change(info);
  return info as Dockerode.ContainerInspectInfo;
}
const failedOf = (info: Dockerode.ContainerInspectInfo, p: Probes = probes) => runChecks(info, image, p).filter((r) => !r.ok);

describe("audit rules", () => {
  it("are values with an id and a description; CHECKS is made from them, in order, each id once per subject", () => {
    for (const subject of SUBJECTS) assert.deepEqual(Object.keys(CHECKS), rulesFor(subject).map((r) => r.id));
    for (const subject of SUBJECTS) assert.equal(new Set(rulesFor(subject).map((r) => r.id)).size, rulesFor(subject).length);
    for (const r of RULES) assert.ok(r.describes.length > 10, r.id);
    for (const id of ["seccomp", "apparmor", "namespaces", "no-setuid"]) assert.ok(id in CHECKS, id);
  });

  it("seccomp=unconfined (either spelling) fails 'seccomp' only; so does a process without a filter", () => {
    for (const opt of ["seccomp=unconfined", "seccomp:unconfined"]) {
      const failed = failedOf(weakened((i) => { i.HostConfig.SecurityOpt = ["no-new-privileges:true", opt]; }));
      assert.deepEqual(failed.map((r) => r.id), ["seccomp"], opt);
      assert.match(failed[0]!.detail, /may make every system call/);
    }
    const unfiltered = failedOf(weakened(() => {}), { ...probes, procStatus: `${probes.procStatus}Seccomp:\t0\n` });
    assert.deepEqual(unfiltered.map((r) => `${r.id}: ${r.detail}`), ["seccomp: the process has Seccomp 0 (no filter)"]);
    const filtered = runChecks(weakened(() => {}), image, { ...probes, procStatus: `${probes.procStatus}Seccomp:\t2\n` });
    assert.equal(filtered.find((r) => r.id === "seccomp")!.detail, "filtered (Seccomp 2)");
  });

  it("apparmor=unconfined fails 'apparmor' only, read from the security options even where the kernel has no AppArmor", () => {
    for (const opt of ["apparmor=unconfined", "apparmor:unconfined"]) {
      assert.deepEqual(failedOf(weakened((i) => { i.HostConfig.SecurityOpt = ["no-new-privileges:true", opt]; i.AppArmorProfile = ""; })).map((r) => r.id), ["apparmor"], opt);
    }
    assert.deepEqual(failedOf(weakened((i) => { i.AppArmorProfile = "unconfined"; })).map((r) => r.id), ["apparmor"]);
    assert.deepEqual(failedOf(weakened((i) => { i.AppArmorProfile = "docker-default"; })), []);
  });

  it("a namespace of the host or of another container fails 'namespaces', naming it", () => {
    const cases: [string, (i: any) => void, string[]][] = [
      ["pid=host", (i) => { i.HostConfig.PidMode = "host"; }, ["namespaces"]],
      ["pid=container:abc", (i) => { i.HostConfig.PidMode = "container:abc"; }, ["namespaces"]],
      ["ipc=host", (i) => { i.HostConfig.IpcMode = "host"; }, ["namespaces"]],
      ["ipc=container:abc", (i) => { i.HostConfig.IpcMode = "container:abc"; }, ["namespaces"]],
      ["uts=host", (i) => { i.HostConfig.UTSMode = "host"; }, ["namespaces"]],
      ["userns=host", (i) => { i.HostConfig.UsernsMode = "host"; }, ["namespaces"]],
      ["cgroupns=host", (i) => { i.HostConfig.CgroupnsMode = "host"; }, ["namespaces"]],
      // another container's network: it is on no network of its own either
      ["network=container:abc", (i) => { i.HostConfig.NetworkMode = "container:abc"; i.NetworkSettings.Networks = {}; }, ["network", "namespaces"]],
    ];
    for (const [what, change, ids] of cases) {
      const failed = failedOf(weakened(change));
      assert.deepEqual(failed.map((r) => r.id), ids, what);
      assert.ok(failed.find((r) => r.id === "namespaces")!.detail.startsWith(what), `${what}: ${failed.find((r) => r.id === "namespaces")!.detail}`);
    }
    // 'private' and 'shareable' are the container's own
    assert.deepEqual(failedOf(weakened((i) => { i.HostConfig.IpcMode = "shareable"; })), []);
  });

  it("setuid and setgid files found inside fail 'no-setuid', listing them (ten, then how many more)", () => {
    const two = failedOf(weakened(() => {}), { ...probes, setuidFiles: "/usr/bin/passwd\n/usr/bin/su\n" });
    assert.deepEqual(two.map((r) => r.id), ["no-setuid"]);
    assert.match(two[0]!.detail, /^setuid\/setgid: \/usr\/bin\/passwd, \/usr\/bin\/su \(remove the bits: chmod a-s/);
    const many = failedOf(weakened(() => {}), { ...probes, setuidFiles: Array.from({ length: 13 }, (_, k) => `/bin/s${k}`).join("\n") });
    assert.match(many[0]!.detail, /\/bin\/s9, and 3 more/);
    // not running: it could not be looked at, which is not a pass
    const stopped = runChecks(weakened(() => {}), image, undefined).find((r) => r.id === "no-setuid")!;
    assert.equal(stopped.ok, false);
  });

  it("'limits': a PIDs limit must be set and positive; an nproc ulimit fails (it counts per host UID)", () => {
    for (const pids of [0, -1, undefined]) {
      assert.deepEqual(failedOf(weakened((i) => { i.HostConfig.PidsLimit = pids; })).map((r) => `${r.id}: ${r.detail}`), ["limits: no PIDs limit"], String(pids));
    }
    const nproc = failedOf(weakened((i) => { i.HostConfig.Ulimits.push({ Name: "nproc", Soft: 256, Hard: 256 }); }));
    assert.deepEqual(nproc.map((r) => r.id), ["limits"]);
    assert.match(nproc[0]!.detail, /ulimit nproc 256: counted per host UID.*the PIDs limit bounds each container/);
  });

  it("capability names are looked up as own keys: a label naming 'constructor' counts as nothing", () => {
    assert.equal(capMask(["constructor", "toString", "NET_RAW"]), 1n << 13n);
  });
});

describe("fleet audit over a changing fleet", () => {
  it("a container removed between the listing and its inspect (a deployment replaced it) is skipped, not a crash", async () => {
    const gone = Object.assign(new Error("(HTTP code 404) no such container"), { statusCode: 404 });
    const engine = {
      listContainers: async () => [{ Id: "gone", Names: ["/hf-staging-old-1"] }],
      getContainer: () => ({ inspect: async () => { throw gone; } }),
    } as unknown as Dockerode;
    assert.deepEqual(await auditFleet(engine), []);
    // any other error still fails the audit
    const broken = { ...engine, getContainer: () => ({ inspect: async () => { throw new Error("engine down"); } }) } as unknown as Dockerode;
    await assert.rejects(auditFleet(broken), /engine down/);
  });

  it("a container stopped while it is probed (another suite's teardown, a replacement) is skipped; one still running that fails the probe fails the audit", async () => {
    let inspects = 0;
    const running = { Name: "/hf-staging-x-1", Image: "img", State: { Running: true, Pid: 1 }, Mounts: [], HostConfig: {}, Config: { Labels: {} } };
    const refused = Object.assign(new Error("(HTTP code 409) container is not running"), { statusCode: 409 });
    const engine = (stoppedAfterFirst: boolean) => ({
      listContainers: async () => [{ Id: "x", Names: ["/hf-staging-x-1"], State: "running" }],
      getImage: () => ({ inspect: async () => ({ Config: {} }) }),
      getContainer: () => ({
        inspect: async () => (++inspects > 1 && stoppedAfterFirst ? { ...running, State: { Running: false, Pid: 0 } } : running),
      }),
      // the probe's container cannot join the PID namespace of a container that stopped
      createContainer: async () => { throw refused; },
    }) as unknown as Dockerode;
    assert.deepEqual(await auditFleet(engine(true)), []);
    inspects = 0;
    await assert.rejects(auditFleet(engine(false)), /not running/);
  });
});
