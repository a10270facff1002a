/**
 * Sandboxed plans on the real engines, with the fleet CLI as separate processes (docs/sandbox.md):
 * a customer of the plan `sandboxed` (sandbox: gvisor) runs under gVisor's runsc, answers over HTTPS
 * through the environment's edge proxy, passes `fleet audit` (probed from inside its sandbox), and
 * the files it writes are owned by 1000:1000 on the host; `fleet list` shows its runtime. A plan change
 * runc -> runsc -> runc is an ordinary start-first update: every request through the proxy answered,
 * and the file uploaded first still there after each change.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { after, before, describe, it } from "node:test";
import { fleet, killLeftovers, orphanedPlugins, show } from "../support/cli";
import { customerContainer, engine, removeCustomers } from "../support/engine";
import { request } from "../support/http";
import { copyProject, customerUrlIn, dropEncryptionSalt, editEnvironment, useEdge } from "../support/projectCopy";
import { customerNames } from "../../src/hardening/names";

const PASSPHRASE = "sandbox-test-passphrase";
const ENV = "staging";
const ID = "sbx-acme";
const EDGE = "edge-sbx";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("sandboxed plans: a customer in its own gVisor kernel (real engines, CLI processes)", { timeout: 20 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  const env = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  const pluginsBefore = orphanedPlugins();
  const body = randomBytes(256 << 10);
  const url = () => customerUrlIn(root, ENV, ID);
  const ok = async (args: string[]) => {
    const r = await fleet(root, args, { env, timeoutMs: 900_000 });
    assert.equal(r.code, 0, `fleet ${args.join(" ")}: ${show(r)}`);
    return r;
  };
  const running = async () => {
    const c = await customerContainer(ENV, ID);
    assert.ok(c?.State.Running, `${ID} runs`);
    return c;
  };
  const listed = async () => (JSON.parse((await ok(["list", "--env", ENV, "--json"])).stdout) as { customer: string; plan: string; runtime: string }[])
    .find((l) => l.customer === ID)!;
  const fileKept = async () => {
    const files = ((await request(`${url()}/files`)).body as { files: { path: string; uid: number; gid: number; sha256?: string }[] }).files;
    const f = files.find((x) => x.path === "/data/uploads/proof.bin");
    assert.ok(f, `the uploaded file is there; the app lists ${files.map((x) => x.path).join(", ")}`);
    assert.deepEqual([f.uid, f.gid], [1000, 1000]);
    // on the host too: the volume's file, as the engine keeps it
    const mount = (await engine.getVolume(customerNames(ENV, ID).dataVolume).inspect()).Mountpoint;
    const st = fs.statSync(`${mount}/uploads/proof.bin`);
    assert.deepEqual([st.uid, st.gid], [1000, 1000], "owned by 1000:1000 on the host");
    assert.equal(sha256(fs.readFileSync(`${mount}/uploads/proof.bin`)), sha256(body));
  };

  /** Changes the customer's plan while a client requests it through the proxy; returns the failures. */
  async function changePlan(plan: string): Promise<{ ok: number; failed: string[] }> {
    let go = true;
    const seen = { ok: 0, failed: [] as string[] };
    const loop = (async () => {
      while (go) {
        const r = await request(`${url()}/`, "GET", undefined, { timeoutMs: 5000 }).catch((e: Error) => ({ status: 0, body: e.message }));
        if (r.status === 200) seen.ok++;
        else seen.failed.push(`${new Date().toISOString()} ${r.status} ${JSON.stringify(r.body).slice(0, 120)}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    try {
      await ok(["provision", ID, "--env", ENV, "--plan", plan]);
    } finally {
      go = false;
      await loop;
    }
    return seen;
  }

  before(async () => {
    dropEncryptionSalt(root, ENV);
    useEdge(root, ENV, EDGE, 18720, 18721);
    editEnvironment(root, ENV, (e) => {
      e.deploy.healthTimeoutSeconds = 60;
      e.app.healthcheck.intervalSeconds = 2;
      e.app.healthcheck.startPeriodSeconds = 2;
    });
    await removeCustomers([[ENV, ID]], [[ENV, EDGE]]);
    await ok(["up", ENV]);
    await ok(["provision", ID, "--env", ENV, "--plan", "standard"]);
    const up = await request(`${url()}/uploads?name=proof.bin`, "POST", body, { timeoutMs: 30_000 });
    assert.equal(up.status, 201, JSON.stringify(up.body));
  });

  after(async () => {
    killLeftovers(pluginsBefore);
    await removeCustomers([[ENV, ID]], [[ENV, EDGE]]).catch(() => {});
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("an unsandboxed plan runs under runc, and fleet list says so", async () => {
    assert.equal((await running()).HostConfig.Runtime, "runc");
    assert.deepEqual(await listed().then((l) => [l.plan, l.runtime]), ["standard", "runc"]);
  });

  it("runc -> runsc: a start-first update through the proxy, every request answered, the file kept", async () => {
    const seen = await changePlan("sandboxed");
    assert.deepEqual(seen.failed, [], `${seen.failed.length} of ${seen.ok + seen.failed.length} requests failed during the change`);
    assert.ok(seen.ok >= 10, `only ${seen.ok} requests were made`);
    await fileKept();
  });

  it("the sandboxed customer runs under runsc, limited in its own kernel, and answers over HTTPS", async () => {
    const c = await running();
    assert.equal(c.HostConfig.Runtime, "runsc");
    assert.deepEqual((c.HostConfig.Ulimits ?? []).map((u) => [u.Name, u.Soft]), [["nofile", 2048], ["nproc", 128]]);
    assert.equal(c.HostConfig.PidsLimit, 2 * 128 + 64);
    assert.equal(c.Config.User, "1000:1000");
    assert.equal(c.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(c.HostConfig.CapDrop, ["ALL"]);
    assert.deepEqual(Object.keys(c.HostConfig.PortBindings ?? {}), [], "it publishes nothing: its traffic comes through the proxy");
    const home = await request(`${url()}/`);
    assert.equal(home.status, 200);
    assert.deepEqual(await listed().then((l) => [l.plan, l.runtime]), ["sandboxed", "runsc"]);
    const up = await request(`${url()}/uploads?name=in-sandbox.bin`, "POST", randomBytes(4096), { timeoutMs: 30_000 });
    assert.equal(up.status, 201);
    const mount = (await engine.getVolume(customerNames(ENV, ID).dataVolume).inspect()).Mountpoint;
    const st = fs.statSync(`${mount}/uploads/in-sandbox.bin`);
    assert.deepEqual([st.uid, st.gid], [1000, 1000], "a file it writes from inside the sandbox is owned by 1000:1000 on the host");
  });

  it("fleet audit passes it, every check, probed from inside its sandbox (the runtime its plan names, no capabilities, user 1000 in its kernel)", async () => {
    const r = await ok(["audit", "--env", ENV, "--customer", ID, "--json"]);
    const report = JSON.parse(r.stdout) as { ok: boolean; containers: { customer: string; ok: boolean; checks: { id: string; ok: boolean; detail: string }[] }[] };
    assert.equal(report.ok, true);
    const mine = report.containers.filter((a) => a.customer === ID);
    assert.equal(mine.length, 1, r.stdout);
    assert.deepEqual(mine[0]!.checks.filter((c) => !c.ok), [], "every check passes");
    const detail = (id: string) => mine[0]!.checks.find((c) => c.id === id)!.detail;
    assert.equal(detail("runtime"), "runsc (gvisor sandbox)");
    assert.equal(detail("seccomp"), "its calls go to the sandbox's kernel, filtered by gVisor's own");
    assert.equal(detail("runtime-user"), "1000:1000, process too");
  });

  it("runsc -> runc: back on the host's kernel, every request answered, the file kept", async () => {
    const seen = await changePlan("standard");
    assert.deepEqual(seen.failed, [], `${seen.failed.length} of ${seen.ok + seen.failed.length} requests failed during the change`);
    assert.equal((await running()).HostConfig.Runtime, "runc");
    await fileKept();
    assert.deepEqual(await listed().then((l) => [l.plan, l.runtime]), ["standard", "runc"]);
  });
});
