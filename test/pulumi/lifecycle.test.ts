/**
 * The whole lifecycle through the Automation API on the real Pulumi engine and the real Docker
 * engine: staging environment stack plus two customer stacks, in a throwaway copy of the project.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { auditFleet } from "../../src/audit/audit";
import {
  changeCount, destroyStack, previewStack, provision, upStack, type UpResult,
} from "../../src/fleet/operations";
import { openStack } from "../../src/pulumi/workspace";
import { removeStack } from "../../src/pulumi/stacks";
import { parseStackTarget } from "../../src/config/targets";
import { customerContainer, customerContainers, engine, removeCustomers } from "../support/engine";
import { request } from "../support/http";
import { customerNames } from "../../src/hardening/names";
import { copyProject, editEnvironment, useEdge } from "../support/projectCopy";

const CUSTOMERS = ["lc-alpha", "lc-beta"] as const;
const quiet = () => {};
const EDGES: [string, string][] = [["staging", "edge-lc"], ["prod", "edge-lc"]];
const current = async (id: string) => {
  const info = await customerContainer("staging", id);
  assert.ok(info, `staging-${id} has no container`);
  return info;
};
type Files = { files: { path: string; uid: number; gid: number }[] };

describe("lifecycle on the real Pulumi engine", () => {
  const ctx = copyProject();
  const appDir = path.join(ctx.root, "examples", "customer-app");
  const urls: Record<string, string> = {};
  const containerIds: Record<string, string> = {};

  before(async () => {
    // what an interrupted earlier run may have left
    await removeCustomers(CUSTOMERS.map((id): [string, string] => ["staging", id]), EDGES);
    // an edge proxy and ports of our own, so a running demo on this host is never in the way; a short health wait
    useEdge(ctx.root, "staging", "edge-lc", 18300, 18301);
    useEdge(ctx.root, "prod", "edge-lc", 18302, 18303);
    editEnvironment(ctx.root, "staging", (env) => { env.deploy.healthTimeoutSeconds = 25; });
  });

  after(async () => {
    await removeCustomers(CUSTOMERS.map((id): [string, string] => ["staging", id]), EDGES);
    fs.rmSync(ctx.root, { recursive: true, force: true });
  });

  it("1. preview then up: staging and two customers, audit clean, data owned by 1000", async () => {
    const preview = await previewStack(ctx, "staging", quiet);
    assert.ok((preview.create ?? 0) >= 2, JSON.stringify(preview));
    const staging = await upStack(ctx, "staging", quiet);
    assert.match(String((staging.outputs.image as { ref: string }).ref), /^sha256:[a-f0-9]{64}$/);
    for (const id of CUSTOMERS) {
      const r: UpResult = await provision(ctx, { customer: id, environment: "staging", plan: "starter" }, quiet);
      urls[id] = String(r.outputs.url);
      containerIds[id] = String(r.outputs.containerId);
      assert.equal(urls[id], `https://${id}.staging.localhost:18300`);
    }
    // the PIDs limit the dynamic resource applied, on the container Pulumi made
    for (const id of CUSTOMERS) {
      const info = await current(id);
      assert.equal(info.HostConfig.PidsLimit, 64, `${id} PidsLimit`);
      assert.deepEqual(info.HostConfig.PortBindings ?? {}, {}, `${id} publishes a port`);
    }
    const audits = await auditFleet(engine, { environment: "staging" });
    for (const name of [...CUSTOMERS, "hf-staging-edge-lc"]) {
      const a = audits.find((x) => x.customer === name || x.container === name);
      assert.ok(a, `no audit for ${name}`);
      assert.deepEqual(a.checks.filter((c) => !c.ok), [], name);
    }
    for (const id of CUSTOMERS) {
      const url = urls[id]!;
      assert.equal((await request(`${url}/uploads?name=keep.txt`, "POST", `data of ${id}`)).status, 201);
      const backup = (await request(`${url}/backups`, "POST")).body as { backup: { path: string } };
      const restore = await request(`${url}/restore?backup=${path.basename(backup.backup.path)}`, "POST");
      assert.equal(restore.status, 200);
      const files = ((await request(`${url}/files`)).body as Files).files;
      assert.ok(files.length >= 5);
      assert.deepEqual(files.filter((f) => f.uid !== 1000 || f.gid !== 1000), []);
    }
  });

  it("2. a second preview shows no changes, and so does preview after refresh", async () => {
    for (const stack of ["staging", ...CUSTOMERS.map((c) => `staging-${c}`)]) {
      assert.equal(changeCount(await previewStack(ctx, stack, quiet)), 0, stack);
      const s = await openStack(ctx, parseStackTarget(stack));
      await s.refresh({ onOutput: quiet });
      assert.equal(changeCount(await previewStack(ctx, stack, quiet)), 0, `${stack} after refresh`);
    }
  });

  it("3. a new app version rebuilds the image and replaces both containers; data survives, owned by 1000", async () => {
    fs.writeFileSync(path.join(appDir, "VERSION"), "1.1.0\n");
    const before = (await upStack(ctx, "staging", quiet)).outputs.image as { ref: string; version: string };
    assert.equal(before.version, "1.1.0");
    for (const id of CUSTOMERS) {
      const r = await upStack(ctx, `staging-${id}`, quiet);
      assert.notEqual(String(r.outputs.containerId), containerIds[id], `${id} container was not replaced`);
      assert.equal(r.outputs.image, before.ref);
      containerIds[id] = String(r.outputs.containerId);
      const info = (await request(`${urls[id]}/`)).body as { version: string };
      assert.equal(info.version, "1.1.0");
      const files = ((await request(`${urls[id]}/files`)).body as Files).files;
      assert.ok(files.some((f) => f.path === "/data/uploads/keep.txt"), `${id} lost its upload`);
      assert.deepEqual(files.filter((f) => f.uid !== 1000 || f.gid !== 1000), []);
    }
  });

  it("4. a healthcheck or tmpfs change reaches the running container", async () => {
    editEnvironment(ctx.root, "staging", (env) => {
      env.app.healthcheck.intervalSeconds = 3;
      env.plans.starter.tmpfsMb = 48;
    });
    await upStack(ctx, "staging", quiet);
    const id = CUSTOMERS[0];
    await upStack(ctx, `staging-${id}`, quiet);
    const info = await current(id);
    assert.equal(info.Config.Healthcheck?.Interval, 3e9);
    assert.match(String((info.HostConfig.Tmpfs as Record<string, string>)["/tmp"]), /size=48m/);
  });

  it("5. a version whose healthcheck fails makes up fail, says so, and the customer runs its previous image again", async () => {
    const app = path.join(appDir, "app.py");
    const good = fs.readFileSync(app, "utf8");
    fs.writeFileSync(app, good.replace('if path == "/healthz":', 'if path == "/healthz" and False:'));
    fs.writeFileSync(path.join(appDir, "VERSION"), "1.2.0-broken\n");
    try {
      await upStack(ctx, "staging", quiet);
      await assert.rejects(upStack(ctx, `staging-${CUSTOMERS[1]}`, quiet), (err: Error) => {
        assert.match(err.message, /did not become healthy/);
        assert.match(err.message, /rolled back: staging-lc-beta runs sha256:[0-9a-f]{12} on plan \w+ again/);
        return true;
      });
      // the old container served throughout; the failed one is gone
      assert.equal((await customerContainers("staging", CUSTOMERS[1])).length, 1);
      const info = await current(CUSTOMERS[1]);
      assert.equal(info.State.Health?.Status, "healthy");
      assert.equal(((await request(`${urls[CUSTOMERS[1]]}/`)).body as { version: string }).version, "1.1.0");
    } finally {
      fs.writeFileSync(app, good);
      fs.writeFileSync(path.join(appDir, "VERSION"), "1.1.0\n");
    }
    await upStack(ctx, "staging", quiet);
    const r = await upStack(ctx, `staging-${CUSTOMERS[1]}`, quiet);
    assert.equal(((await request(`${r.outputs.url}/`)).body as { version: string }).version, "1.1.0");
  });

  it("6. destroy of a customer stack removes container and network but keeps the data volume", async () => {
    const id = CUSTOMERS[1];
    const n = customerNames("staging", id);
    const stack = await destroyStack(ctx, `staging-${id}`, quiet);
    await removeStack(stack);
    assert.deepEqual(await customerContainers("staging", id), []);
    await assert.rejects(engine.getNetwork(n.network).inspect(), /not found|no such network/i);
    const volume = await engine.getVolume(n.dataVolume).inspect();
    assert.equal(volume.Name, n.dataVolume);
  });

  it("7. prod preview passes with prod's stricter rules and fails clearly on an unpinned base", async () => {
    process.env.PULUMI_CONFIG_PASSPHRASE = "lifecycle-test-prod-passphrase";
    try {
      const summary = await previewStack(ctx, "prod", quiet);
      // the stack, its edge proxy (component, network, volume, proxy image, dynamic provider, container,
      // gate, network links) and its log collector (component, network, volume, image, dynamic provider,
      // container, gate): prod builds no app image
      assert.equal(summary.create, 16, JSON.stringify(summary));
      editEnvironment(ctx.root, "prod", (env) => { env.image.base = "python:3.11-slim-bookworm"; });
      await assert.rejects(previewStack(ctx, "prod", quiet), /hardened-fleet:environment\.image\.base: must be pinned by digest in production/);
    } finally {
      delete process.env.PULUMI_CONFIG_PASSPHRASE;
    }
  });
});
