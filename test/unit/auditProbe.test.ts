/**
 * The audit's probe, its pure parts: the container it runs as (the tools image in the audited
 * container's PID namespace, as its user, with nothing else), its script, and how its output becomes
 * Probes; and the no-shell rule on what it found.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type Dockerode from "dockerode";
import { RULES, type AuditContext, type Probes } from "../../src/audit/checks";
import { parseProbeOutput, probeContainerOptions, probeScript, probeTarget, ROLE_AUDIT_PROBE } from "../../src/audit/probe";
import { TOOLS_IMAGE } from "../../src/engine/toolsImage";
import { LABEL_MANAGED, LABEL_ROLE, LABEL_SHELL_REASON, ROLE_CUSTOMER, ROLE_EDGE, ROLE_LOGS } from "../../src/hardening/names";

const SEP = "--hardened-fleet-probe--\n";

function inspect(change: (i: any) => void = () => {}): Dockerode.ContainerInspectInfo {
  const info: any = {
    Id: "c".repeat(64), Config: { User: "1000:1000", Labels: {} }, HostConfig: { PidMode: "" }, State: { Pid: 4242 },
    Mounts: [{ Type: "volume", Destination: "/data" }, { Type: "bind", Destination: "/etc/hosts" }, { Type: "volume", Destination: "/run/secrets" }],
  };
  change(info);
  return info as Dockerode.ContainerInspectInfo;
}

describe("the audit's probe container", () => {
  it("reads PID 1 of the container's own namespace, the host PID when it shares the host's; its volumes only", () => {
    const t = probeTarget(inspect());
    assert.deepEqual(t, { id: "c".repeat(64), mainPid: 1, dataPaths: ["/data", "/run/secrets"], user: "1000:1000" });
    assert.equal(probeTarget(inspect((i) => { i.HostConfig.PidMode = "host"; })).mainPid, 4242);
  });

  it("runs as the process's user (the kernel lets only that uid and gid read /proc/<pid>/root): numeric, else root when unset, else 1000", () => {
    const user = (u: string, image?: string) => probeTarget(inspect((i) => { i.Config.User = u; }), image).user;
    assert.equal(user("1000:0"), "1000:0");
    assert.equal(user("1001"), "1001:1001");
    assert.equal(user("", "1000:1000"), "1000:1000");
    assert.equal(user(""), "0:0");
    assert.equal(user("app"), "1000:1000");
  });

  it("the tools image in the container's PID namespace: no capabilities, no network, read-only, limited, removed, never a customer", () => {
    const o = probeContainerOptions(probeTarget(inspect()));
    assert.equal(o.Image, TOOLS_IMAGE);
    assert.equal(o.User, "1000:1000");
    assert.deepEqual(o.Entrypoint, []);
    assert.deepEqual(o.Labels, { [LABEL_MANAGED]: "false", [LABEL_ROLE]: ROLE_AUDIT_PROBE });
    const hc = o.HostConfig!;
    assert.equal(hc.PidMode, `container:${"c".repeat(64)}`);
    assert.deepEqual(hc.CapDrop, ["ALL"]);
    assert.equal(hc.CapAdd, undefined);
    assert.deepEqual(hc.SecurityOpt, ["no-new-privileges:true"]);
    assert.equal(hc.ReadonlyRootfs, true);
    assert.equal(hc.NetworkMode, "none");
    assert.equal(hc.AutoRemove, true);
    assert.ok(hc.Memory! > 0 && hc.MemorySwap === hc.Memory && hc.PidsLimit! > 0);
    assert.equal(hc.Privileged, undefined);
    assert.equal(hc.Mounts, undefined, "it reads the volumes through the process's root, mounting none");
  });

  it("its script reads through /proc/<pid>/root, walks the root filesystem once without crossing mounts, and quotes data paths", () => {
    const s = probeScript({ mainPid: 1, dataPaths: ["/data", "/it's"] });
    assert.match(s, /^cat \/proc\/1\/status$/m);
    assert.match(s, /^cat \/proc\/1\/mounts$/m);
    // the trailing slash: /proc/1/root is a link, which find would not enter
    assert.equal(s.match(/find \/proc\/1\/root\/ -xdev /g)?.length, 1);
    assert.doesNotMatch(s, /find -L|find -H| -follow/);
    for (const name of ["sh", "bash", "dash", "apt", "apt-get", "dpkg", "gcc", "c\\+\\+"]) assert.ok(s.includes(`|${name}|`) || s.includes(`(${name}|`) || s.includes(`|${name})`), name);
    assert.match(s, /find '\/proc\/1\/root\/data' '\/proc\/1\/root\/its' \\\( ! -user 1000 -o ! -group 1000 \\\) -print 2>&1/);
    assert.doesNotMatch(probeScript({ mainPid: 7, dataPaths: [] }), /-user 1000/);
    assert.match(probeScript({ mainPid: 7, dataPaths: [] }), /cd \/proc\/7\/root/);
  });
});

describe("the probe's output", () => {
  const output = (root = "readable\n", walk = "", foreign = "") => [
    "Name:\tpython\nUid:\t1000\t1000\t1000\t1000\n", "overlay / overlay ro 0 0\n", "SwapTotal:       2048 kB\n", root, walk, foreign,
  ].join(SEP);

  it("becomes Probes with every path the container's own, each list sorted", () => {
    const p = parseProbeOutput(output("readable\n",
      "shell /usr/bin/sh\nsetuid /usr/bin/passwd\nshell /usr/bin/dash\ntool /usr/bin/gcc\ntool /var/lib/apt/lists/x_Packages\nsetuid //usr/bin/su\n",
      "/proc/1/root/data/left-by-root\nfind: '/proc/1/root/data/private': Permission denied\n"), 1);
    assert.deepEqual(p, {
      procStatus: "Name:\tpython\nUid:\t1000\t1000\t1000\t1000\n", mounts: "overlay / overlay ro 0 0\n", swapTotalKb: 2048,
      foreignFiles: "/data/left-by-root\nfind: '/data/private': Permission denied\n",
      setuidFiles: "/usr/bin/passwd\n/usr/bin/su\n",
      shells: "/usr/bin/dash\n/usr/bin/sh\n",
      buildLeftovers: "/usr/bin/gcc\n/var/lib/apt/lists/x_Packages\n",
    });
  });

  it("nothing found is empty lists; no SwapTotal line is unknown", () => {
    const p = parseProbeOutput(output().replace("SwapTotal:       2048 kB\n", ""), 1);
    assert.equal(p.setuidFiles, "");
    assert.equal(p.shells, "");
    assert.equal(p.buildLeftovers, "");
    assert.equal(p.swapTotalKb, undefined);
    assert.equal(p.rootError, undefined);
  });

  it("a root filesystem it may not read is said, with the reason, not taken for an empty one", () => {
    const p = parseProbeOutput(output("sh: 1: cd: can't cd to /proc/1/root\n"), 1);
    assert.match(p.rootError!, /^its root filesystem could not be read as the process's user \(sh: 1: cd: can't cd to \/proc\/1\/root\): the probe reads it through \/proc/);
  });

  it("an output that stopped early is an error, not a clean container", () => {
    assert.throws(() => parseProbeOutput("Uid:\t1000\n" + SEP + "overlay / overlay ro 0 0\n", 1), /printed 2 of its 6 sections/);
  });
});

describe("the no-shell rule", () => {
  const rule = RULES.find((r) => r.id === "no-shell")!;
  const probes = (shells: string, rootError?: string): Probes => ({ procStatus: "", foreignFiles: "", buildLeftovers: "", setuidFiles: "", shells, ...(rootError ? { rootError } : {}) });
  const ctx = (shells: string, opts: { role?: string; reason?: string; rootError?: string; stopped?: boolean } = {}): AuditContext => ({
    container: { Config: { Labels: opts.role ? { [LABEL_ROLE]: opts.role } : {} } } as any,
    image: { Config: { Labels: opts.reason !== undefined ? { [LABEL_SHELL_REASON]: opts.reason } : null } } as any,
    probes: opts.stopped ? undefined : probes(shells, opts.rootError),
  });

  it("judges every subject, customers on both targets", () => {
    assert.deepEqual([...rule.appliesTo].sort(), ["container", "swarm-task"]);
    assert.match(rule.describes, /sh, bash, dash, apt, dpkg/);
    assert.match(rule.describes, /edge proxy and log collector/);
  });

  it("fails when a shell or package manager is found, listing each", () => {
    const v = rule.run(ctx("/bin/sh\n/usr/bin/dpkg\n", { role: ROLE_CUSTOMER }));
    assert.equal(v.ok, false);
    assert.match(v.detail, /^found \/bin\/sh, \/usr\/bin\/dpkg: the runtime needs none of them .* label the image io\.hardened-fleet\.shell-reason=<why it keeps one>$/);
  });

  it("passes with none, or with the image's shell-reason label naming the reason (a blank one does not count)", () => {
    assert.deepEqual(rule.run(ctx("")), { ok: true, detail: "none" });
    assert.deepEqual(rule.run(ctx("/bin/sh\n", { reason: "the operator's entrypoint script" })), { ok: true, detail: "shell kept: the operator's entrypoint script" });
    assert.equal(rule.run(ctx("/bin/sh\n", { reason: "  " })).ok, false);
  });

  it("does not judge fleet's own edge proxy and log collector (fleet execs into them)", () => {
    for (const role of [ROLE_EDGE, ROLE_LOGS]) {
      assert.deepEqual(rule.run(ctx("/bin/sh\n", { role })), { ok: true, detail: `not judged: fleet's own ${role} (fleet execs into it)` });
    }
  });

  it("a stopped container, or a root filesystem the probe could not read, fails it and the other checks of the image's files", () => {
    assert.equal(rule.run(ctx("", { stopped: true })).ok, false);
    for (const id of ["no-shell", "no-setuid", "no-build-tools"]) {
      const v = RULES.find((r) => r.id === id)!.run(ctx("", { rootError: "its root filesystem could not be read" }));
      assert.deepEqual(v, { ok: false, detail: "its root filesystem could not be read" }, id);
    }
  });
});
