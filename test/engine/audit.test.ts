/**
 * `fleet audit` on the real engine: a container made from the component's settings passes every
 * check; for each check, a container weakened in exactly that way is caught by that check (among them
 * seccomp and AppArmor unconfined, the host's or another container's namespaces, a setuid file in the
 * image and an nproc ulimit).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Dockerode from "dockerode";
import { auditContainer, type ContainerAudit } from "../../src/audit/audit";
import { CHECKS } from "../../src/audit/checks";
import type { EnvironmentConfig } from "../../src/config/schema";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { TOOLS_IMAGE } from "../../src/engine/toolsImage";
import { serviceSpec, type ServiceSpec } from "../../src/hardening/serviceSpec";
import { engine, removeQuietly, waitHealthy, writeKeyFile } from "../support/engine";
import { buildStagingImage, deriveImage } from "../support/image";
import { LABEL_SANDBOX } from "../../src/hardening/sandbox";

type Options = Dockerode.ContainerCreateOptions;
interface Variant {
  id: string;
  /** its container's name, once made */
  name?: string;
  /** the check that must catch it */
  check: string;
  weaken?: (o: Options, spec: ServiceSpec) => void;
  image?: "root-user" | "with-gcc" | "setuid" | "shell";
  /** a root-owned file in the volume before the service starts */
  seedRootFile?: boolean;
  /** checks that fail too, as a necessary consequence of the weakening */
  alsoFails?: string[];
}

/** Publishes the app's port on the host, as the customer's container never does. */
function publish(o: Options, spec: ServiceSpec, hostIp: string, hostPort: number): void {
  o.HostConfig!.PortBindings = { [`${spec.port}/tcp`]: [{ HostIp: hostIp, HostPort: String(hostPort) }] };
}

/** the image's command (gunicorn bound to the app's port), for the one container that must listen on another */
let appCmd: string[] = [];

const VARIANTS: Variant[] = [
  { id: "baseline", check: "" },
  { id: "img-root", check: "image-user", image: "root-user" },
  // root group: the app runs (it owns /data as uid 1000) but what it creates there is group 0
  { id: "run-gid0", check: "runtime-user", weaken: (o) => { o.User = "1000:0"; }, alsoFails: ["data-ownership"] },
  { id: "cap-add", check: "capabilities", weaken: (o) => { o.HostConfig!.CapAdd = ["NET_RAW"]; } },
  { id: "cap-keep", check: "capabilities", weaken: (o) => { o.HostConfig!.CapDrop = []; } },
  { id: "nnp", check: "no-new-privileges", weaken: (o) => { o.HostConfig!.SecurityOpt = []; } },
  { id: "seccomp", check: "seccomp", weaken: (o) => { o.HostConfig!.SecurityOpt = [...o.HostConfig!.SecurityOpt!, "seccomp=unconfined"]; } },
  // this kernel may have no AppArmor: the engine still records the option, and the check reads it
  { id: "apparmor", check: "apparmor", weaken: (o) => { o.HostConfig!.SecurityOpt = [...o.HostConfig!.SecurityOpt!, "apparmor=unconfined"]; } },
  { id: "rw-root", check: "read-only-root", weaken: (o) => { o.HostConfig!.ReadonlyRootfs = false; } },
  { id: "no-pids", check: "limits", weaken: (o) => { delete o.HostConfig!.PidsLimit; } },
  { id: "no-mem", check: "limits", weaken: (o) => { o.HostConfig!.Memory = 0; o.HostConfig!.MemorySwap = 0; } },
  // RLIMIT_NPROC counts per host UID: every customer's 1000 shares it (high enough here not to stop this one)
  { id: "nproc", check: "limits", weaken: (o) => { o.HostConfig!.Ulimits = [...o.HostConfig!.Ulimits!, { Name: "nproc", Soft: 4096, Hard: 4096 }]; } },
  { id: "no-health", check: "healthcheck", weaken: (o) => { o.Healthcheck = { Test: ["NONE"] }; } },
  // a customer's container publishes no port at all (its traffic comes through the edge proxy):
  // one published on loopback is caught as surely as one on every address
  { id: "published", check: "ports", weaken: (o, spec) => { publish(o, spec, "127.0.0.1", 18150); } },
  { id: "all-addr", check: "ports", weaken: (o, spec) => { publish(o, spec, "0.0.0.0", 18160); } },
  { id: "docker0", check: "network", weaken: (o) => { o.HostConfig!.NetworkMode = "bridge"; o.NetworkingConfig = { EndpointsConfig: { bridge: {} } }; } },
  { id: "sock", check: "host-isolation", weaken: (o) => { o.HostConfig!.Binds = ["/var/run/docker.sock:/run/docker.sock:ro"]; } },
  { id: "hostpid", check: "namespaces", weaken: (o) => { o.HostConfig!.PidMode = "host"; } },
  { id: "cgroupns", check: "namespaces", weaken: (o) => { (o.HostConfig as { CgroupnsMode?: string }).CgroupnsMode = "host"; } },
  // the baseline's network namespace: on no network of its own (the app listens on another port there)
  { id: "netns", check: "namespaces", alsoFails: ["network"], weaken: (o, spec) => {
    o.HostConfig!.NetworkMode = `container:${VARIANTS[0]!.name}`;
    delete o.NetworkingConfig;
    delete o.Hostname;
    delete o.ExposedPorts;
    o.Env = [...o.Env!.filter((e) => !e.startsWith("PORT=")), "PORT=8001"];
    o.Cmd = appCmd.map((arg) => (arg === `0.0.0.0:${spec.port}` ? "0.0.0.0:8001" : arg));
  } },
  { id: "etc", check: "host-isolation", weaken: (o) => { o.HostConfig!.Binds = ["/etc:/host-etc:ro"]; } },
  { id: "always", check: "restart", weaken: (o) => { o.HostConfig!.RestartPolicy = { Name: "always" }; } },
  { id: "retries", check: "restart", weaken: (o) => { o.HostConfig!.RestartPolicy = { Name: "on-failure", MaximumRetryCount: 10 }; } },
  // a sandboxed plan's container that runs under runc; an unsandboxed one under runsc (probed from inside its sandbox)
  { id: "unboxed", check: "runtime", weaken: (o) => { o.Labels = { ...o.Labels, [LABEL_SANDBOX]: "gvisor" }; } },
  { id: "boxed", check: "runtime", weaken: (o) => { o.HostConfig!.Runtime = "runsc"; o.HostConfig!.PidsLimit = 256; } },
  { id: "rootfile", check: "data-ownership", seedRootFile: true },
  { id: "gcc", check: "no-build-tools", image: "with-gcc" },
  { id: "setuid", check: "no-setuid", image: "setuid" },
  { id: "shell", check: "no-shell", image: "shell" },
];

describe("fleet audit against weakened containers", () => {
  let env: EnvironmentConfig;
  let imageId: string;
  const images: Record<string, string> = {};
  const specs: ServiceSpec[] = [];
  const audits = new Map<string, ContainerAudit>();

  before(async () => {
    ({ env, imageId } = await buildStagingImage("hardened-fleet/customer-app:audit-test"));
    images["root-user"] = await deriveImage(imageId, ["USER 0:0"], "hardened-fleet/audit-test:root-user");
    // the runtime has no shell to RUN anything in: what is added comes from fleet's tools image
    images["with-gcc"] = await deriveImage(imageId, [`COPY --from=${TOOLS_IMAGE} /usr/bin/true /usr/local/bin/gcc`], "hardened-fleet/audit-test:with-gcc");
    appCmd = (await engine.getImage(imageId).inspect()).Config.Cmd ?? [];
    // a stage of the tools image makes the setuid file (COPY keeps the bit); the first FROM is unused
    images["setuid"] = await deriveImage(imageId, [`FROM ${TOOLS_IMAGE} AS suid`, "USER 0:0", "RUN mkdir /suid && cp /usr/bin/true /suid/true && chmod u+s /suid/true",
      `FROM ${imageId}`, "COPY --from=suid /suid/true /usr/bin/true"], "hardened-fleet/audit-test:setuid");
    images["shell"] = await deriveImage(imageId, [`COPY --from=${TOOLS_IMAGE} /usr/bin/dash /bin/sh`], "hardened-fleet/audit-test:shell");
    const created: Dockerode.Container[] = [];
    for (const v of VARIANTS) {
      const spec = serviceSpec(env, { id: `audit-${v.id}`, environment: "staging", plan: "starter" },
        v.image ? images[v.image]! : imageId);
      specs.push(spec);
      v.name = spec.containerName;
      await removeQuietly({ containers: [spec.containerName], networks: [spec.networkName], volumes: [spec.dataVolumeName, spec.secretFile!.volume] });
      await engine.createNetwork({ Name: spec.networkName, Labels: spec.labels });
      await engine.createVolume({ Name: spec.dataVolumeName, Labels: spec.labels });
      if (v.seedRootFile) {
        // what an old root container left behind: a file owned by root in the data volume
        // (the app's image, so the volume starts with its /data; its interpreter: the runtime has no shell)
        const naive = await engine.createContainer({ Image: imageId, User: "0:0", Entrypoint: ["/opt/venv/bin/python", "-c", "open('/data/left-by-root', 'w')"], Cmd: [],
          HostConfig: { Mounts: [{ Type: "volume", Source: spec.dataVolumeName, Target: "/data" }], NetworkMode: "none" } });
        await naive.start();
        await naive.wait();
        await naive.remove();
      }
      await writeKeyFile(spec, "s".repeat(48));
      const opts = toEngineCreateOptions(spec, {});
      v.weaken?.(opts, spec);
      const c = await engine.createContainer(opts);
      await c.start();
      created.push(c);
    }
    await Promise.all(created.map((c) => waitHealthy(c, 60_000)));
    for (const spec of specs) {
      audits.set(spec.customerId, await auditContainer(engine, spec.containerName).catch((err: Error) => {
        throw new Error(`auditing ${spec.containerName}: ${err.message}`);
      }));
    }
  });

  after(async () => {
    for (const spec of specs) await removeQuietly({ containers: [spec.containerName], networks: [spec.networkName], volumes: [spec.dataVolumeName, spec.secretFile!.volume] });
    await removeQuietly({ images: Object.values(images) });
  });

  it("the container made from the component's settings passes every check", () => {
    const a = audits.get("audit-baseline")!;
    assert.deepEqual(a.checks.filter((c) => !c.ok), []);
    assert.deepEqual(a.checks.map((c) => c.id), Object.keys(CHECKS));
  });

  for (const v of VARIANTS.filter((x) => x.check)) {
    it(`${v.check} catches '${v.id}'${v.alsoFails ? ` (with ${v.alsoFails.join(", ")})` : ", and only that check fails"}`, () => {
      const a = audits.get(`audit-${v.id}`)!;
      const failed = a.checks.filter((c) => !c.ok).map((c) => c.id);
      assert.deepEqual(failed, [v.check, ...(v.alsoFails ?? [])].sort((x, y) => Object.keys(CHECKS).indexOf(x) - Object.keys(CHECKS).indexOf(y)), JSON.stringify(a.checks.filter((c) => !c.ok)));
      assert.equal(a.ok, false);
    });
  }

  it("the weakenings are named: the setuid file found inside, the unconfined options, the shared namespaces", async () => {
    const detail = (id: string, check: string) => audits.get(`audit-${id}`)!.checks.find((c) => c.id === check)!.detail;
    assert.match(detail("setuid", "no-setuid"), /^setuid\/setgid: \/usr\/bin\/true \(/);
    assert.match(detail("shell", "no-shell"), /^found (.*, )?(\/usr)?\/bin\/sh(, .*)?: the runtime needs none of them/);
    assert.match(detail("seccomp", "seccomp"), /seccomp=unconfined.*Seccomp 0/);
    assert.equal(detail("apparmor", "apparmor"), "apparmor=unconfined");
    assert.equal(detail("hostpid", "namespaces"), "pid=host");
    assert.equal(detail("cgroupns", "namespaces"), "cgroupns=host: the container sees the host's cgroup hierarchy");
    // the engine records the other container by its id
    const baselineId = (await engine.getContainer(specs[0]!.containerName).inspect()).Id;
    assert.equal(detail("netns", "namespaces"), `network=container:${baselineId}`);
    assert.match(detail("nproc", "limits"), /ulimit nproc 4096: counted per host UID/);
  });

  it("each check is exercised by at least one weakened container", () => {
    const covered = new Set(VARIANTS.map((v) => v.check));
    assert.deepEqual(Object.keys(CHECKS).filter((id) => !covered.has(id)), []);
  });

  it("the CLI prints a table, JSON, and exits non-zero on a failure", () => {
    const cli = (args: string[]) => {
      try {
        return { code: 0, out: execFileSync("npx", ["tsx", "src/cli/main.ts", ...args], { cwd: path.resolve(__dirname, "../.."), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
      } catch (err) {
        const e = err as { status: number; stdout: string };
        return { code: e.status, out: e.stdout };
      }
    };
    const good = cli(["audit", "--stack", "staging-audit-baseline"]);
    assert.equal(good.code, 0, good.out);
    assert.match(good.out, /hf-staging-audit-baseline-[0-9a-f]{8} .* PASS/);
    const bad = cli(["audit", "--customer", "audit-nnp", "--json"]);
    assert.equal(bad.code, 1);
    const json = JSON.parse(bad.out) as { ok: boolean; containers: ContainerAudit[] };
    assert.equal(json.ok, false);
    assert.equal(json.containers[0]!.checks.find((c) => c.id === "no-new-privileges")!.ok, false);
    const none = cli(["audit", "--customer", "nobody-here"]);
    assert.equal(none.code, 1);
    assert.match(none.out, /no hardened-fleet containers matched/);
  });
});
