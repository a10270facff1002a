/**
 * `fleet rollout` on the real engines, in a throwaway copy of the project: a good version rolls
 * through staging and prod; a version whose healthcheck fails stops at staging; a version that fails
 * for one prod customer stops after that wave and is rolled back there.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { provision, upStack } from "../../src/fleet/operations";
import { rollout, type RolloutReport } from "../../src/fleet/operations";
import { planWaves } from "../../src/fleet/rollout";
import { customerContainer, removeCustomers } from "../support/engine";
import { copyProject, dropEncryptionSalt, editEnvironment, useEdge } from "../support/projectCopy";

const quiet = () => {};
const STAGING = ["ro-s1"];
const PROD = ["ro-p1", "ro-p2", "ro-p3"];

const EDGES: [string, string][] = [["staging", "edge-ro"], ["prod", "edge-ro"]];
const ALL: [string, string][] = [...STAGING.map((id): [string, string] => ["staging", id]), ...PROD.map((id): [string, string] => ["prod", id])];

/** The image the customer's one container runs (a finished rollout leaves exactly one). */
async function runningImage(env: string, id: string): Promise<string> {
  const info = await customerContainer(env, id);
  assert.ok(info?.State.Running, `${env}-${id} has no running container`);
  return info.Image;
}

describe("staged rollout with health gates and rollback", () => {
  const ctx = copyProject();
  const appDir = path.join(ctx.root, "examples", "customer-app");
  const appPy = path.join(appDir, "app.py");
  const goodApp = fs.readFileSync(appPy, "utf8");
  const digests: Record<string, string> = {};

  const release = (version: string, healthFailsFor?: string) => {
    fs.writeFileSync(path.join(appDir, "VERSION"), `${version}\n`);
    fs.writeFileSync(appPy, healthFailsFor === undefined ? goodApp : goodApp.replace('if path == "/healthz":',
      `if path == "/healthz" and os.environ.get("CUSTOMER_ID", "") ${healthFailsFor === "*" ? "== \"\"" : `!= ${JSON.stringify(healthFailsFor)}`}:`));
  };
  const prodDigestInConfig = () => (parse(fs.readFileSync(path.join(ctx.root, "Pulumi.prod.yaml"), "utf8")) as
    { config: Record<string, { image: { digest?: string } }> }).config["hardened-fleet:environment"]!.image.digest;
  const byStack = (r: RolloutReport) => Object.fromEntries(r.customers.map((c) => [`${c.environment}-${c.customer}`, c]));

  before(async () => {
    process.env.PULUMI_CONFIG_PASSPHRASE = "rollout-test-passphrase";
    dropEncryptionSalt(ctx.root, "staging");
    useEdge(ctx.root, "staging", "edge-ro", 18450, 18451);
    useEdge(ctx.root, "prod", "edge-ro", 18452, 18453);
    editEnvironment(ctx.root, "staging", (env) => { env.deploy.healthTimeoutSeconds = 20; });
    editEnvironment(ctx.root, "prod", (env) => { env.deploy.healthTimeoutSeconds = 20; });
    await removeCustomers(ALL, EDGES);
    release("2.0.0");
    digests.v2 = ((await upStack(ctx, "staging", quiet)).outputs.image as { ref: string }).ref;
    for (const id of STAGING) await provision(ctx, { customer: id, environment: "staging" }, quiet);
    await upStack(ctx, "prod", quiet);
    for (const id of PROD) await provision(ctx, { customer: id, environment: "prod" }, quiet);
  });

  after(async () => {
    await removeCustomers(ALL, EDGES);
    delete process.env.PULUMI_CONFIG_PASSPHRASE;
    fs.rmSync(ctx.root, { recursive: true, force: true });
  });

  it("plans a canary of one, then waves of N", () => {
    assert.deepEqual(planWaves([1, 2, 3, 4, 5, 6], 2), [[1], [2, 3], [4, 5], [6]]);
    assert.deepEqual(planWaves([1], 5), [[1]]);
    assert.deepEqual(planWaves([], 5), []);
  });

  it("a good version rolls through staging and prod, prod running the very image staging built; a wave moves at once", async () => {
    for (const id of PROD) assert.equal(await runningImage("prod", id), digests.v2);
    release("2.1.0");
    const lines: string[] = [];
    // waves: the canary ro-p1, then ro-p2 and ro-p3 together
    const report = await rollout(ctx, { waveSize: 2, concurrency: 2 }, (l) => lines.push(l));
    assert.equal(report.ok, true, JSON.stringify(report));
    const at = (text: string) => {
      const i = lines.findIndex((l) => l.includes(text));
      assert.ok(i >= 0, `no log line with '${text}':\n${lines.filter((l) => !l.startsWith("  [")).join("\n")}`);
      return i;
    };
    // both customers of the wave were deploying before either had passed its gate
    assert.ok(at("pulumi up prod-ro-p3") < at("prod-ro-p2: healthy"));
    assert.ok(at("pulumi up prod-ro-p2") < at("prod-ro-p3: healthy"));
    // and the canary passed before the wave began
    assert.ok(at("prod-ro-p1: healthy") < at("pulumi up prod-ro-p2"));
    digests.v21 = report.digest;
    assert.notEqual(digests.v21, digests.v2);
    assert.equal(prodDigestInConfig(), digests.v21);
    for (const c of report.customers) assert.equal(c.outcome, "updated");
    for (const id of STAGING) assert.equal(await runningImage("staging", id), digests.v21);
    for (const id of PROD) assert.equal(await runningImage("prod", id), digests.v21);
  });

  it("a version whose healthcheck fails stops at staging; prod keeps the previous image", async () => {
    release("2.2.0-broken", "*");
    const report = await rollout(ctx, { waveSize: 1 }, quiet);
    assert.equal(report.ok, false);
    assert.equal(report.stoppedAt, "staging");
    const s = byStack(report);
    assert.equal(s["staging-ro-s1"]!.outcome, "rolled back");
    assert.match(s["staging-ro-s1"]!.reason!, /healthy/);
    assert.equal(await runningImage("staging", "ro-s1"), digests.v21);
    assert.equal(prodDigestInConfig(), digests.v21);
    for (const id of PROD) {
      assert.equal(s[`prod-${id}`]!.outcome, "untouched");
      assert.equal(await runningImage("prod", id), digests.v21);
    }
  });

  it("a version failing for one prod customer stops after that wave and is rolled back there", async () => {
    release("2.3.0", "ro-p2");
    const report = await rollout(ctx, { waveSize: 1 }, quiet);
    assert.equal(report.ok, false);
    assert.equal(report.stoppedAt, "prod wave 1");
    const s = byStack(report);
    assert.equal(s["staging-ro-s1"]!.outcome, "updated");
    assert.equal(s["prod-ro-p1"]!.outcome, "updated");
    assert.equal(s["prod-ro-p2"]!.outcome, "rolled back");
    assert.equal(s["prod-ro-p3"]!.outcome, "untouched");
    assert.equal(await runningImage("prod", "ro-p1"), report.digest);
    assert.equal(await runningImage("prod", "ro-p2"), digests.v21);
    assert.equal(await runningImage("prod", "ro-p3"), digests.v21);
    assert.equal(s["prod-ro-p2"]!.digest, digests.v21);
    // customers provisioned from now on get the image that passed everywhere
    assert.equal(prodDigestInConfig(), digests.v21);
  });
});
