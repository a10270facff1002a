/**
 * The audit's probe on the real engine, for a runtime without a shell: a container of a FROM scratch
 * image (a static rest-server as its app) is probed from fleet's tools image without any exec into
 * it, and the probe still reads its process (Uid 1000), a setuid file in its image (CIS 4.8) and a
 * root-owned file in its volume; an image with a shell fails "no-shell" naming /bin/sh, and passes
 * it with the shell-reason label, naming the reason.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Dockerode from "dockerode";
import { auditContainer, type ContainerAudit } from "../../src/audit/audit";
import { probe, probeTarget, ROLE_AUDIT_PROBE } from "../../src/audit/probe";
import type { Probes } from "../../src/audit/checks";
import { resticBinDir } from "../../src/backup/toolImage";
import { buildImage } from "../../src/engine/build";
import { execIn } from "../../src/engine/exec";
import { TOOLS_IMAGE } from "../../src/engine/toolsImage";
import { LABEL_ROLE, LABEL_SHELL_REASON } from "../../src/hardening/names";
import { engine, removeQuietly } from "../support/engine";

const NO_SHELL = "hf25-audit/no-shell:test";
const WITH_SHELL = "hf25-audit/with-shell:test";
const REASONED = "hf25-audit/shell-reason:test";
const VOLUME = "hf25-audit-data";
const CONTAINERS = { noShell: "hf25-audit-noshell", shell: "hf25-audit-shell", reasoned: "hf25-audit-reasoned" };

/** Builds `lines` (after FROM lines of their own) with `files` in the context. */
async function build(tag: string, lines: string[], files: Record<string, string> = {}): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf25-audit-"));
  try {
    for (const [name, from] of Object.entries(files)) fs.copyFileSync(from, path.join(dir, name));
    fs.writeFileSync(path.join(dir, "Dockerfile"), [...lines, ""].join("\n"));
    return await buildImage(engine, dir, path.join(dir, "Dockerfile"), tag);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A customer-like container: 1000:1000, no capabilities, read-only root, no network, the volume at /data. */
async function run(name: string, image: string): Promise<Dockerode.Container> {
  const c = await engine.createContainer({
    name, Image: image, User: "1000:1000",
    HostConfig: {
      CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges:true"], ReadonlyRootfs: true, NetworkMode: "none",
      Tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=8m" }, Memory: 64 * 1024 * 1024, PidsLimit: 32,
      Mounts: [{ Type: "volume", Source: VOLUME, Target: "/data" }],
    },
  });
  await c.start();
  return c;
}

const check = (a: ContainerAudit, id: string) => a.checks.find((c) => c.id === id)!;

describe("the audit's probe: from the tools image, nothing run inside the container", () => {
  const audits = new Map<string, ContainerAudit>();
  let probes: Probes;
  let noShell: Dockerode.Container;
  let execEvents: unknown[] = [];

  before(async () => {
    await removeQuietly({ containers: Object.values(CONTAINERS), volumes: [VOLUME] });
    // the app: a static binary alone on an empty image, with one setuid file (made in a tools stage; COPY keeps the bit)
    await build(NO_SHELL, [
      `FROM ${TOOLS_IMAGE} AS suid`, "USER 0:0", "RUN mkdir /suid && cp /usr/bin/true /suid/true && chmod u+s /suid/true",
      "FROM scratch", "COPY --from=suid /suid/true /usr/bin/true", "COPY rest-server /app/rest-server",
      "USER 1000:1000", 'ENTRYPOINT ["/app/rest-server", "--path", "/data", "--no-auth", "--listen", "127.0.0.1:8000"]',
    ], { "rest-server": path.join(resticBinDir(), "rest-server") });
    await build(WITH_SHELL, [`FROM ${NO_SHELL}`, `COPY --from=${TOOLS_IMAGE} /usr/bin/dash /bin/sh`]);
    await build(REASONED, [`FROM ${WITH_SHELL}`, `LABEL ${LABEL_SHELL_REASON}="the operator's entrypoint script"`]);
    // what an old root container left: a root-owned file in a volume otherwise owned by 1000
    await engine.createVolume({ Name: VOLUME });
    const seed = await engine.createContainer({ Image: TOOLS_IMAGE, User: "0:0", Entrypoint: [],
      Cmd: ["sh", "-c", "touch /data/left-by-root && chown 1000:1000 /data"],
      HostConfig: { NetworkMode: "none", Mounts: [{ Type: "volume", Source: VOLUME, Target: "/data" }] } });
    await seed.start();
    assert.equal((await seed.wait()).StatusCode, 0);
    await seed.remove();

    noShell = await run(CONTAINERS.noShell, NO_SHELL);
    await run(CONTAINERS.shell, WITH_SHELL);
    await run(CONTAINERS.reasoned, REASONED);
    const since = Math.floor(Date.now() / 1000) - 1;
    const info = await noShell.inspect();
    assert.ok(info.State.Running, "the shell-less app must be running");
    probes = await probe(engine, probeTarget(info));
    for (const name of Object.values(CONTAINERS)) audits.set(name, await auditContainer(engine, name));
    // every exec the engine made into the shell-less container since the audits began (there must be none)
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = await engine.getEvents({ since, until, filters: { container: [info.Id] } }) as unknown as NodeJS.ReadableStream;
    const chunks: Buffer[] = [];
    for await (const chunk of events) chunks.push(chunk as Buffer);
    execEvents = Buffer.concat(chunks).toString("utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { Action: string })
      .filter((e) => e.Action.startsWith("exec_"));
  });

  after(async () => {
    await removeQuietly({ containers: Object.values(CONTAINERS), volumes: [VOLUME], images: [REASONED, WITH_SHELL, NO_SHELL] });
  });

  it("reads the process of a container without a shell, with no exec into it, and the container has no shell to exec", async () => {
    assert.match(probes.procStatus, /^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    assert.match(probes.procStatus, /^NoNewPrivs:\s+1$/m);
    assert.match(probes.mounts ?? "", /^tmpfs \/tmp tmpfs [^ ]*\bnoexec\b/m);
    assert.equal(probes.rootError, undefined);
    assert.deepEqual(execEvents, []);
    assert.deepEqual(check(audits.get(CONTAINERS.noShell)!, "no-shell"), { id: "no-shell", ok: true, detail: "none" });
    assert.equal(check(audits.get(CONTAINERS.noShell)!, "runtime-user").ok, true);
    // the engine cannot start a shell in it: there is none
    const sh = await execIn(noShell, ["/bin/sh", "-c", "true"]).catch((err: Error) => err);
    assert.ok(sh instanceof Error ? /no such file|not found/i.test(sh.message) : sh.exitCode !== 0, String(sh instanceof Error ? sh.message : sh.exitCode));
  });

  it("still finds a setuid file in the image (CIS 4.8) and a root-owned file in the volume", () => {
    const a = audits.get(CONTAINERS.noShell)!;
    assert.match(check(a, "no-setuid").detail, /^setuid\/setgid: \/usr\/bin\/true \(/);
    assert.equal(check(a, "no-setuid").ok, false);
    assert.equal(check(a, "data-ownership").detail, "not owned by 1000:1000: /data/left-by-root");
    assert.equal(check(a, "no-build-tools").detail, "none");
  });

  it("an image with a shell and no label fails no-shell naming /bin/sh; with the label it passes, naming the reason", () => {
    assert.deepEqual(check(audits.get(CONTAINERS.shell)!, "no-shell"), {
      id: "no-shell", ok: false,
      detail: `found /bin/sh: the runtime needs none of them (fleet's own jobs run from its tools image); remove them, or label the image ${LABEL_SHELL_REASON}=<why it keeps one>`,
    });
    assert.deepEqual(check(audits.get(CONTAINERS.reasoned)!, "no-shell"), { id: "no-shell", ok: true, detail: "shell kept: the operator's entrypoint script" });
  });

  it("the probe's containers are gone once the audits are done, and none was a managed container", async () => {
    const ids = await Promise.all(Object.values(CONTAINERS).map(async (n) => (await engine.getContainer(n).inspect()).Id));
    const deadline = Date.now() + 10_000;
    let left: string[] = [];
    do {
      const probesLeft = await engine.listContainers({ all: true, filters: { label: [`${LABEL_ROLE}=${ROLE_AUDIT_PROBE}`] } });
      const mine = await Promise.all(probesLeft.map((c) => engine.getContainer(c.Id).inspect().catch(() => undefined)));
      left = mine.filter((i) => i && ids.some((id) => i.HostConfig.PidMode === `container:${id}`)).map((i) => i!.Name);
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    } while (Date.now() < deadline);
    assert.deepEqual(left, []);
  });
});
