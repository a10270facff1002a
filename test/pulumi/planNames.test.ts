/**
 * Plan names that are keys of every JavaScript object ('constructor', '__proto__', 'toString') are not
 * plans: `fleet provision --plan constructor` (the CLI as a separate process) and a webhook event with
 * metadata.plan = constructor fail as bad input, naming the plan field and the allowed plans, before
 * any stack file or stack exists. (They used to pass the `in` check and deploy with undefined limits.)
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { readStacks } from "../../src/pulumi/stackState";
import { fleetOperations } from "../../src/webhooks/operations";
import { JobQueue } from "../../src/webhooks/queue";
import { parseEnvelope } from "../../src/webhooks/signature";
import { decideEvent } from "../../src/webhooks/stripeEvents";
import { Worker } from "../../src/webhooks/worker";
import { fleet, killLeftovers, show } from "../support/cli";
import { copyProject } from "../support/projectCopy";
import { checkoutCompleted } from "../webhooks/support";

const PLANS = ["constructor", "__proto__", "toString"];

describe("plan names that are Object.prototype keys", () => {
  const ctx = copyProject();
  after(() => {
    killLeftovers();
    fs.rmSync(ctx.root, { recursive: true, force: true });
  });

  const nothingCreated = async () => {
    assert.deepEqual(fs.readdirSync(ctx.root).filter((f) => /^Pulumi\.staging-/.test(f)), [], "a customer stack file was written");
    assert.deepEqual([...(await readStacks(ctx)).keys()], [], "a stack was created");
  };

  it("fleet provision --plan <name> fails naming --plan and the environment's plans; nothing is created", async () => {
    const runs = await Promise.all(PLANS.map((plan) =>
      fleet(ctx.root, ["provision", "iso-proto", "--env", "staging", "--plan", plan], { env: { PULUMI_CONFIG_PASSPHRASE: "plan-names-test" }, timeoutMs: 120_000 })));
    runs.forEach((r, i) => {
      assert.notEqual(r.code, 0, show(r));
      assert.ok(r.stderr.includes(`--plan: must be one of the plans of 'staging': starter, standard, sandboxed (found ${JSON.stringify(PLANS[i])})`), show(r));
      assert.match(r.stderr, /nothing was created/, show(r));
    });
    await nothingCreated();
  });

  it("a webhook event with metadata.plan = constructor ends its job failed as a config error, run once, never retried", async () => {
    const queue = JobQueue.open(path.join(ctx.root, ".fleet", "queue.db"));
    try {
      const ids: number[] = [];
      for (const [k, plan] of PLANS.entries()) {
        const event = parseEnvelope(JSON.parse(JSON.stringify(checkoutCompleted(`evt_proto_${k}`, 100 + k, `iso-proto${k}`, plan))));
        ids.push(queue.accept(event, "staging", decideEvent(event, "staging"), new Date()).job.id);
      }
      // the real fleet operations (src/fleet/operations.ts) on the project copy
      const worker = new Worker(queue, fleetOperations(ctx), { log: () => {}, pollMs: 20, retryBaseMs: 10, maxAttempts: 3 });
      worker.start();
      await worker.settled();
      await worker.stop();
      ids.forEach((id, i) => {
        const job = queue.job(id)!;
        assert.equal(job.status, "failed", JSON.stringify(job));
        assert.equal(job.attempts, 1, `a config error is not retried: ${JSON.stringify(job)}`);
        assert.equal(job.lastError, `invalid request, nothing was created: --plan: must be one of the plans of 'staging': starter, standard, sandboxed (found ${JSON.stringify(PLANS[i])})`);
      });
    } finally {
      queue.close();
    }
    await nothingCreated();
  });
});
