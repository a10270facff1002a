/**
 * Every audit rule as a value: for each rule of RULES (one per check id and subject), an input it
 * passes and one it fails, run on the rule itself; and the list's shape (each subject's rules give
 * every check id once, in CHECKS' order). Inputs are written out here, independent of the spec code.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type Dockerode from "dockerode";
import { CHECKS, RULES, SUBJECTS, SWARM_TASK_LABEL, rulesFor, runChecks, subjectOf, type AuditContext, type Probes, type Rule, type Subject } from "../../src/audit/checks";
import { LABEL_CAP_REASONS, LABEL_ROLE, ROLE_EDGE } from "../../src/hardening/names";

const MIB = 1024 * 1024;

/** What `docker inspect` reports of a hardened container that runs healthy (the fields the rules read). */
function containerInspect(subject: Subject): any {
  const swarm = subject === "swarm-task";
  return {
    Name: "/hf-staging-acme-0a1b2c3d", Image: "sha256:" + "d".repeat(64), AppArmorProfile: "docker-default",
    Config: {
      User: "1000:1000", Healthcheck: { Test: ["CMD", "/healthcheck"] },
      Labels: swarm ? { [SWARM_TASK_LABEL]: "t1" } : {},
    },
    HostConfig: {
      CapDrop: ["ALL"], CapAdd: null, SecurityOpt: swarm ? null : ["no-new-privileges:true"], ReadonlyRootfs: true,
      Tmpfs: swarm ? undefined : { "/tmp": "rw,noexec,nosuid,nodev,size=32m" },
      Mounts: swarm ? [{ Type: "tmpfs", Target: "/tmp" }] : undefined,
      // a Swarm task gets twice its memory as swap: the node must have none
      Memory: 128 * MIB, MemorySwap: swarm ? 256 * MIB : 128 * MIB, NanoCpus: 250_000_000, PidsLimit: 64,
      Ulimits: [{ Name: "nofile", Soft: 1024, Hard: 1024 }],
      PortBindings: {}, PublishAllPorts: false,
      NetworkMode: swarm ? "default" : "hf-staging-acme-edge", PidMode: "", IpcMode: "private", UTSMode: "", UsernsMode: "", CgroupnsMode: "private",
      Privileged: false, Devices: [],
      RestartPolicy: swarm ? { Name: "", MaximumRetryCount: 0 } : { Name: "on-failure", MaximumRetryCount: 5 },
    },
    State: { Running: true, Health: { Status: "healthy" } },
    NetworkSettings: { Networks: { "hf-staging-acme-edge": {} } },
    Mounts: [{ Type: "volume", Source: "/var/lib/docker/volumes/hf-staging-acme-data/_data", Destination: "/data" }],
  };
}

const goodProbes = (): Probes => ({
  procStatus: "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n",
  foreignFiles: "", buildLeftovers: "", setuidFiles: "", shells: "",
  mounts: "overlay / overlay ro 0 0\ntmpfs /tmp tmpfs rw,nosuid,nodev,noexec,size=32768k 0 0\n",
  swapTotalKb: 0,
});

const image = (): any => ({ Config: { User: "1000:1000", Healthcheck: { Test: ["CMD", "/healthcheck"] } } });

/** A context of `subject` that every rule passes, changed by `change`. */
function ctx(subject: Subject, change: (c: { container: any; image: any; probes: any }) => void = () => {}): AuditContext {
  const value = { container: containerInspect(subject), image: image(), probes: goodProbes() as any };
  change(value);
  return value as AuditContext;
}

interface Case {
  /** an input the rule fails, and what its detail says */
  fails: (c: { container: any; image: any; probes: any }) => void;
  says: RegExp;
  /** the detail of the passing input */
  passes?: string | RegExp;
}

/** One case per rule: keyed `<id>` for rules of every subject, `<id>@<subject>` for a subject's own rule. */
const CASES: Record<string, Case> = {
  "image-user": { fails: (c) => { c.image.Config.User = ""; }, says: /^image USER is 'root'$/, passes: "1000:1000" },
  "runtime-user": { fails: (c) => { c.probes.procStatus = c.probes.procStatus.replace("Uid:\t1000", "Uid:\t0"); }, says: /^process uids are 0,1000,1000,1000$/, passes: "1000:1000, process too" },
  "capabilities": { fails: (c) => { c.container.HostConfig.CapAdd = ["NET_RAW"]; }, says: /^CapAdd NET_RAW without a stated reason$/, passes: "drop ALL, CapEff 0" },
  "no-new-privileges@container": { fails: (c) => { c.container.HostConfig.SecurityOpt = []; }, says: /^no-new-privileges is not set$/, passes: "set" },
  "no-new-privileges@swarm-task": {
    fails: (c) => { c.probes.procStatus = c.probes.procStatus.replace("NoNewPrivs:\t1", "NoNewPrivs:\t0"); },
    says: /^the process has NoNewPrivs 0: set no-new-privileges in this node's daemon config$/, passes: "set daemon-wide, NoNewPrivs 1",
  },
  "seccomp": { fails: (c) => { c.container.HostConfig.SecurityOpt = [...(c.container.HostConfig.SecurityOpt ?? []), "seccomp=unconfined"]; }, says: /^seccomp=unconfined: the container may make every system call$/, passes: "filtered (Seccomp 2)" },
  "apparmor": { fails: (c) => { c.container.AppArmorProfile = "unconfined"; }, says: /^AppArmor profile is unconfined$/, passes: "docker-default" },
  "read-only-root": { fails: (c) => { c.container.HostConfig.ReadonlyRootfs = false; }, says: /^root filesystem is writable$/, passes: "read-only, tmpfs /tmp" },
  "limits@container": { fails: (c) => { c.container.HostConfig.MemorySwap = 256 * MIB; }, says: /^swap \(268435456\) differs from memory \(134217728\)$/, passes: "mem 128MiB, cpu 0.25, pids 64" },
  "limits@swarm-task": { fails: (c) => { c.probes.swapTotalKb = 2048; }, says: /^the node has 2048 kB of swap, which a Swarm service cannot limit: turn swap off/, passes: "mem 128MiB, cpu 0.25, pids 64" },
  "healthcheck": { fails: (c) => { c.container.State.Health.Status = "unhealthy"; }, says: /^health is unhealthy$/, passes: "healthy" },
  "ports": { fails: (c) => { c.container.HostConfig.PortBindings = { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: "18101" }] }; }, says: /^publishes 127\.0\.0\.1:18101: only the edge proxy publishes ports$/, passes: "none published" },
  "network@container": { fails: (c) => { c.container.HostConfig.NetworkMode = "default"; }, says: /^network mode is default$/, passes: "hf-staging-acme-edge" },
  "network@swarm-task": { fails: (c) => { c.container.NetworkSettings.Networks = { bridge: {} }; }, says: /^attached to the default bridge \(docker0\)$/, passes: "hf-staging-acme-edge" },
  "namespaces@container": { fails: (c) => { c.container.HostConfig.CgroupnsMode = "host"; }, says: /^cgroupns=host: the container sees the host's cgroup hierarchy$/, passes: "private" },
  "namespaces@swarm-task": { fails: (c) => { c.container.HostConfig.PidMode = "host"; }, says: /^pid=host$/, passes: "private" },
  "host-isolation": { fails: (c) => { c.container.HostConfig.Privileged = true; }, says: /^privileged$/, passes: "isolated" },
  "restart@container": { fails: (c) => { c.container.HostConfig.RestartPolicy = { Name: "always" }; }, says: /^restart policy is 'always'$/, passes: "on-failure:5" },
  "runtime": { fails: (c) => { c.container.HostConfig.Runtime = "runsc"; }, says: /^runs under runsc, but its plan is not sandboxed \(runc\)/, passes: "runc" },
  "data-ownership": { fails: (c) => { c.probes.foreignFiles = "/data/left-by-root\n"; }, says: /^not owned by 1000:1000: \/data\/left-by-root$/, passes: "all owned by 1000:1000" },
  "no-build-tools": { fails: (c) => { c.probes.buildLeftovers = "/usr/bin/gcc\n"; }, says: /^found \/usr\/bin\/gcc$/, passes: "none" },
  "no-setuid": { fails: (c) => { c.probes.setuidFiles = "/usr/bin/passwd\n"; }, says: /^setuid\/setgid: \/usr\/bin\/passwd \(remove the bits/, passes: "none" },
  "no-shell": { fails: (c) => { c.probes.shells = "/usr/bin/dash\n/usr/bin/sh\n"; }, says: /^found \/usr\/bin\/dash, \/usr\/bin\/sh: the runtime needs none/, passes: "none" },
};

const keyOf = (r: Rule) => (r.appliesTo.length === SUBJECTS.length ? r.id : `${r.id}@${r.appliesTo.join("+")}`);

describe("audit rules as values", () => {
  it("each subject's rules give every check id once, in CHECKS' order; ids and descriptions are CHECKS'", () => {
    for (const subject of SUBJECTS) assert.deepEqual(rulesFor(subject).map((r) => r.id), Object.keys(CHECKS), subject);
    for (const r of RULES) {
      assert.equal(CHECKS[r.id], r.describes, r.id);
      assert.ok(r.appliesTo.length > 0, `${r.id} applies to nothing`);
    }
  });

  it("a container is a Swarm task's by its task label only", () => {
    assert.equal(subjectOf(containerInspect("container")), "container");
    assert.equal(subjectOf(containerInspect("swarm-task")), "swarm-task");
    const edge = containerInspect("container");
    edge.Config.Labels = { [LABEL_ROLE]: ROLE_EDGE };
    assert.equal(subjectOf(edge), "container");
  });

  it("every rule has a case below, and every case a rule", () => {
    const keys = RULES.map(keyOf).filter((k) => k !== "restart@swarm-task");
    assert.deepEqual([...keys].sort(), Object.keys(CASES).sort());
  });

  for (const rule of RULES) {
    const key = keyOf(rule);
    const c = CASES[key];
    if (!c) continue;
    for (const subject of rule.appliesTo) {
      it(`${key}: passes a hardened ${subject}, fails a weakened one and says why`, () => {
        const passed = rule.run(ctx(subject));
        assert.equal(passed.ok, true, `${key} on ${subject}: ${passed.detail}`);
        if (typeof c.passes === "string") assert.equal(passed.detail, c.passes);
        const failed = rule.run(ctx(subject, c.fails));
        assert.equal(failed.ok, false, `${key} on ${subject} passed the weakened input: ${failed.detail}`);
        assert.match(failed.detail, c.says);
      });
    }
  }

  it("restart@swarm-task: Swarm restarts the task, whatever the container's own policy says (the input the container rule fails)", () => {
    const rule = RULES.find((r) => keyOf(r) === "restart@swarm-task")!;
    const weakened = ctx("swarm-task", CASES["restart@container"]!.fails);
    assert.deepEqual(rule.run(weakened), { ok: true, detail: "Swarm restarts the task (service restart policy, with a delay)" });
    // the same input fails on a container fleet runs itself
    assert.equal(RULES.find((r) => keyOf(r) === "restart@container")!.run(ctx("container", CASES["restart@container"]!.fails)).ok, false);
  });

  it("a stopped container fails the rules that look inside; on a Swarm task also what only the process shows", () => {
    for (const subject of SUBJECTS) {
      const stopped = ctx(subject, (c) => { c.probes = undefined; });
      const failed = rulesFor(subject).filter((r) => !r.run(stopped).ok).map((r) => r.id);
      assert.deepEqual(failed, subject === "container"
        ? ["runtime-user", "data-ownership", "no-build-tools", "no-setuid", "no-shell"]
        // and on a Swarm task: NoNewPrivs, the tmpfs options and the node's swap are only seen from inside
        : ["runtime-user", "no-new-privileges", "read-only-root", "limits", "data-ownership", "no-build-tools", "no-setuid", "no-shell"], subject);
    }
  });

  it("the subject's differences: what fails a container fleet runs passes a Swarm task, and the other way round", () => {
    // a Swarm service cannot set no-new-privileges, swap, the network mode or the cgroup namespace: the node does
    const container = (change: (c: any) => void) => runChecks(ctx("container", change).container, image(), goodProbes()).filter((r) => !r.ok).map((r) => r.id);
    const task = (change: (c: any) => void) => runChecks(ctx("swarm-task", change).container, image(), goodProbes()).filter((r) => !r.ok).map((r) => r.id);
    assert.deepEqual(container((c) => { c.container.HostConfig.SecurityOpt = []; }), ["no-new-privileges"]);
    assert.deepEqual(task((c) => { c.container.HostConfig.SecurityOpt = []; }), []);
    assert.deepEqual(container((c) => { c.container.HostConfig.CgroupnsMode = "host"; }), ["namespaces"]);
    assert.deepEqual(task((c) => { c.container.HostConfig.CgroupnsMode = "host"; }), []);
    assert.equal(rulesFor("swarm-task").find((r) => r.id === "namespaces")!.run(ctx("swarm-task", (c) => { c.container.HostConfig.CgroupnsMode = "host"; })).detail,
      "private (cgroupns: the node's default)");
    // a swarm task whose node has swap fails; a container with swap equal to memory never looks at the node
    assert.deepEqual(runChecks(ctx("swarm-task").container, image(), { ...goodProbes(), swapTotalKb: 1 }).filter((r) => !r.ok).map((r) => r.id), ["limits"]);
    assert.deepEqual(runChecks(ctx("container").container, image(), { ...goodProbes(), swapTotalKb: 1 }).filter((r) => !r.ok), []);
  });

  it("capabilities: an added capability with a reason in the label passes", () => {
    const rule = RULES.find((r) => r.id === "capabilities")!;
    const reasoned = rule.run(ctx("container", (c) => {
      c.container.HostConfig.CapAdd = ["NET_BIND_SERVICE"];
      c.container.Config.Labels = { [LABEL_CAP_REASONS]: "NET_BIND_SERVICE: binds 80" };
      c.probes.procStatus = c.probes.procStatus.replace("CapEff:\t0000000000000000", "CapEff:\t0000000000000400");
    }));
    assert.deepEqual(reasoned, { ok: true, detail: "drop ALL, add NET_BIND_SERVICE (reasoned)" });
  });
});

describe("the rules on real inspect types", () => {
  it("runChecks over a whole context gives the ids of CHECKS, all passing", () => {
    for (const subject of SUBJECTS) {
      const c = ctx(subject);
      const results = runChecks(c.container as Dockerode.ContainerInspectInfo, c.image, c.probes);
      assert.deepEqual(results.map((r) => r.id), Object.keys(CHECKS));
      assert.deepEqual(results.filter((r) => !r.ok), [], subject);
    }
  });
});
