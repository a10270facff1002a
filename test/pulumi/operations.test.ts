/**
 * Daily operations on the real Pulumi and Docker engines, in a throwaway copy of the project:
 * provision (validation, idempotency, concurrency), list, deprovision (keep or purge data),
 * adopting a volume left by a root container, the proxy made again after a prune, and the guard rails.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { customerNames } from "../../src/hardening/names";
import {
  changeCount, deprovision, destroyEnvironment, destroyEnvironmentOf, listCustomers, migrate, preview, provision, upStack,
} from "../../src/fleet/operations";
import { listStacks } from "../../src/pulumi/stackState";
import { customerContainers, engine, removeCustomers, removeQuietly } from "../support/engine";
import { request } from "../support/http";
import { copyProject, dropEncryptionSalt, editEnvironment, useEdge } from "../support/projectCopy";

const quiet = () => {};
const IDS = ["op-a", "op-b", "op-c", "op-old"];
type Files = { files: { path: string; uid: number; gid: number }[] };

describe("fleet operations on the real engines", () => {
  const ctx = copyProject();
  let image = "";

  before(async () => {
    process.env.PULUMI_CONFIG_PASSPHRASE = "operations-test-passphrase";
    process.env.FLEET_BACKUP_DIR = path.join(ctx.root, "backups");
    dropEncryptionSalt(ctx.root, "staging");
    useEdge(ctx.root, "staging", "edge-op", 18400, 18401);
    editEnvironment(ctx.root, "staging", (env) => { env.deploy.healthTimeoutSeconds = 25; });
    await cleanDocker();
  });

  async function cleanDocker(): Promise<void> {
    // the legacy containers first: a volume one of them still uses cannot be removed
    await removeQuietly({ containers: IDS.map((id) => `${id}-legacy`) });
    await removeCustomers(IDS.map((id): [string, string] => ["staging", id]), [["staging", "edge-op"]]);
  }

  after(async () => {
    await cleanDocker();
    delete process.env.PULUMI_CONFIG_PASSPHRASE;
    delete process.env.FLEET_BACKUP_DIR;
    fs.rmSync(ctx.root, { recursive: true, force: true });
  });

  it("a customer before its environment stack exists is told what to run first, and nothing is left", async () => {
    await assert.rejects(provision(ctx, { customer: "op-a", environment: "staging" }, quiet),
      /environment stack 'staging' does not exist yet: run 'fleet up staging' first/);
    assert.ok(!fs.existsSync(path.join(ctx.root, "Pulumi.staging-op-a.yaml")));
    assert.deepEqual(await listStacks(ctx), []);
  });

  it("bad ids and plans are refused before anything is created", async () => {
    const r = await upStack(ctx, "staging", quiet);
    image = (r.outputs.image as { ref: string }).ref;
    await assert.rejects(provision(ctx, { customer: "Op_A", environment: "staging" }, quiet), /customer id: must be a lowercase DNS label.*found "Op_A"/s);
    await assert.rejects(provision(ctx, { customer: "op-a", environment: "staging", plan: "gold" }, quiet), /--plan: must be one of the plans of 'staging': starter, standard, sandboxed/);
    await assert.rejects(provision(ctx, { customer: "op-a", environment: "qa" }, quiet), /--env: names no environment stack/);
    assert.deepEqual(await listStacks(ctx), ["staging"]);
    assert.deepEqual(fs.readdirSync(ctx.root).filter((f) => f.startsWith("Pulumi.staging-")), []);
  });

  it("two different customers provisioned at once both succeed, on different ports", async () => {
    const [a, b] = await Promise.all([
      provision(ctx, { customer: "op-a", environment: "staging", plan: "starter" }, quiet),
      provision(ctx, { customer: "op-b", environment: "staging", plan: "standard" }, quiet),
    ]);
    assert.notEqual(a.outputs.url, b.outputs.url);
    for (const r of [a, b]) assert.equal(((await request(`${r.outputs.url}/healthz`)).body as { status: string }).status, "ok");
  });

  it("provisioning the same customer again changes nothing", async () => {
    const again = await provision(ctx, { customer: "op-a", environment: "staging" }, quiet);
    assert.deepEqual(again.changes, { same: 10 });
    assert.equal(again.outputs.plan, "starter");
  });

  it("the same customer twice at once: one proceeds, the other fails clearly; the state stays sound", async () => {
    const results = await Promise.allSettled([
      provision(ctx, { customer: "op-c", environment: "staging" }, quiet),
      provision(ctx, { customer: "op-c", environment: "staging" }, quiet),
    ]);
    const ok = results.filter((r) => r.status === "fulfilled");
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    assert.equal(ok.length, 1);
    assert.equal(failed.length, 1);
    assert.match(String(failed[0]!.reason), /another fleet operation holds 'stack.staging-op-c'/);
    const again = await provision(ctx, { customer: "op-c", environment: "staging" }, quiet);
    assert.deepEqual(again.changes, { same: 10 });
  });

  it("list shows plan, image, health, URL and last update per customer", async () => {
    const rows = await listCustomers(ctx, ["staging"]);
    assert.deepEqual(rows.map((r) => r.customer), ["op-a", "op-b", "op-c"]);
    for (const r of rows) {
      assert.equal(r.health, "healthy");
      assert.equal(r.image, image);
      assert.equal(r.url, `https://${r.customer}.staging.localhost:18400`);
      assert.notEqual(r.lastUpdate, "never");
    }
    assert.equal(rows.find((r) => r.customer === "op-b")!.plan, "standard");
  });

  it("preview of the environment stack and of a customer stack, with the environment's passphrase and engine: nothing to change", async () => {
    for (const stack of ["staging", "staging-op-a"]) {
      const summary = await preview(ctx, stack, quiet);
      assert.equal(changeCount(summary), 0, `${stack}: ${JSON.stringify(summary)}`);
    }
    await assert.rejects(preview(ctx, "nowhere-op-a", quiet), /stack.*names no environment stack/);
  });

  it("the proxy and its network removed outside fleet (a prune): fleet up staging makes them again, and the customers answer through it", async () => {
    await engine.getContainer("hf-staging-edge-op").remove({ force: true });
    await engine.getNetwork("hf-staging-edge-op-net").remove();
    const said: string[] = [];
    await upStack(ctx, "staging", (line) => said.push(line));
    assert.ok(said.some((l) => /hf-staging-edge-op not on the engine \(removed outside fleet\?\): reading what exists first/.test(l)), said.join("\n"));
    assert.equal((await engine.getContainer("hf-staging-edge-op").inspect()).State.Health?.Status, "healthy");
    const rows = await listCustomers(ctx, ["staging"]);
    for (const r of rows) assert.equal(((await request(`${r.url}/healthz`)).body as { status: string }).status, "ok", r.customer);
  });

  it("the environment stack cannot be destroyed while customers exist, and says which", async () => {
    await assert.rejects(destroyEnvironment(ctx, "staging", quiet), /still has customer stacks: staging-op-a, staging-op-b, staging-op-c/);
    await assert.rejects(destroyEnvironmentOf(ctx, "staging", quiet), /still has customer stacks: staging-op-a, staging-op-b, staging-op-c/);
  });

  it("deprovision removes the stack and keeps the data volume", async () => {
    const r = await deprovision(ctx, { customer: "op-b", environment: "staging" }, quiet);
    assert.equal(r.volumeKept, true);
    const n = customerNames("staging", "op-b");
    assert.deepEqual(await customerContainers("staging", "op-b"), []);
    assert.equal((await engine.getVolume(n.dataVolume).inspect()).Name, n.dataVolume);
    assert.ok(!(await listStacks(ctx)).includes("staging-op-b"));
  });

  it("deprovision --purge-data writes a final backup archive, then deletes the volume", async () => {
    const url = (await listCustomers(ctx, ["staging"])).find((r) => r.customer === "op-c")!.url;
    assert.equal((await request(`${url}/uploads?name=last.txt`, "POST", "keep me")).status, 201);
    const r = await deprovision(ctx, { customer: "op-c", environment: "staging", purgeData: true }, quiet);
    assert.equal(r.volumeKept, false);
    assert.ok(r.archive && fs.statSync(r.archive).size > 0);
    const listing = (await import("node:child_process")).execFileSync("tar", ["-tzf", r.archive], { encoding: "utf8" });
    assert.match(listing, /uploads\/last\.txt/);
    await assert.rejects(engine.getVolume(customerNames("staging", "op-c").dataVolume).inspect(), /no such volume/i);
  });

  it("adopts a volume a root container filled: archive, chown to 1000 (CHOWN and DAC_READ_SEARCH only), then the app writes and restores", async () => {
    const n = customerNames("staging", "op-old");
    await engine.createVolume({ Name: n.dataVolume });
    // the old deployment: the same app, run as root, as in the seeds
    const legacy = await engine.createContainer({ name: "op-old-legacy", Image: image, User: "0:0", Env: ["APP_SECRET_KEY=" + "r".repeat(40)],
      // with the app's interpreter: the runtime has no shell
      Cmd: ["/opt/venv/bin/python", "-c", ["import os, time", "for d in ['uploads', 'backups', 'instance']: os.makedirs(f'/data/{d}', exist_ok=True)",
        "open('/data/uploads/old.txt', 'w').write('old\\n')", "os.chmod('/data/uploads', 0o700)", "open('/data/instance/app.db', 'a').close()", "time.sleep(300)"].join("\n")],
      HostConfig: { Mounts: [{ Type: "volume", Source: n.dataVolume, Target: "/data" }], NetworkMode: "none" } });
    await legacy.start();
    await new Promise((r) => setTimeout(r, 1000));
    const r = await migrate(ctx, { customer: "op-old", environment: "staging" }, quiet);
    assert.equal(r.adopted, true);
    assert.ok(r.foreign.some((p) => p === "/data/uploads/old.txt"));
    assert.ok(r.archive && fs.existsSync(r.archive));
    const listing = (await import("node:child_process")).execFileSync("tar", ["-tzvf", r.archive], { encoding: "utf8" });
    assert.match(listing, /0\/0 .*uploads\/old\.txt/);
    assert.equal((await legacy.inspect()).State.Running, false, "the old container must be stopped first");
    const url = String(r.up.outputs.url);
    assert.equal((await request(`${url}/uploads?name=new.txt`, "POST", "new")).status, 201);
    const backup = (await request(`${url}/backups`, "POST")).body as { backup: { path: string } };
    assert.equal((await request(`${url}/restore?backup=${path.basename(backup.backup.path)}`, "POST")).status, 200);
    const files = ((await request(`${url}/files`)).body as Files).files;
    assert.ok(files.some((f) => f.path === "/data/uploads/old.txt"));
    assert.deepEqual(files.filter((f) => f.uid !== 1000 || f.gid !== 1000), []);
    // the one-shot step ran with CHOWN and DAC_READ_SEARCH only, and never runs again when nothing is foreign
    const second = await migrate(ctx, { customer: "op-old", environment: "staging" }, quiet);
    assert.equal(second.adopted, false);
    assert.equal(second.archive, undefined);
    assert.deepEqual(second.up.changes, { same: 10 });
  });
});
