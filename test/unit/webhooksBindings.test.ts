/**
 * Who may act on a customer through payment events: the binding decision (pure), test-mode events on
 * a production-tier environment, the Stripe id and `fleet bind` argument checks, the binding store on
 * a real SQLite file, the worker refusing jobs through it, and the queue's migration from version 1.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { parseBindArgs } from "../../src/cli/bind";
import { bindingAuthorizer, decideBinding, refuseTestModeInProduction, type PaymentRequest } from "../../src/webhooks/authorize";
import { fleetContext } from "../../src/pulumi/workspace";
import { customerExists } from "../../src/webhooks/operations";
import { BindingStore, parseStripeId, type Binding } from "../../src/project/bindings";
import { JobQueue } from "../../src/webhooks/queue";
import { parseEnvelope } from "../../src/webhooks/signature";
import { decideEvent } from "../../src/webhooks/stripeEvents";
import { Worker, type FleetOperations } from "../../src/webhooks/worker";
import { checkoutCompleted, live, subscriptionDeleted, subscriptionUpdated, type TestEvent } from "../webhooks/support";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-bindings-"));

const req = (over: Partial<PaymentRequest>): PaymentRequest =>
  ({ environment: "prod", customer: "acme", action: "provision", stripeCustomer: "cus_A", subscription: "sub_1", ...over });
const bound = (over: Partial<Binding> = {}): Binding => ({ environment: "prod", customer: "acme", stripeCustomer: "cus_A", subscription: "sub_1",
  boundAt: "2026-12-01T00:00:00.000Z", boundBy: "event evt_1", ...over });
const reason = (d: ReturnType<typeof decideBinding>) => (d.kind === "refuse" ? d.reason : "");

describe("the binding decision", () => {
  it("a new customer binds to the Stripe customer and subscription of its first event", () => {
    assert.deepEqual(decideBinding(req({}), undefined, false), { kind: "allow", bind: { stripeCustomer: "cus_A", subscription: "sub_1" } });
    // a plan change for a customer nobody has yet creates and binds it too (its checkout may come later)
    assert.deepEqual(decideBinding(req({ action: "plan-change" }), undefined, false), { kind: "allow", bind: { stripeCustomer: "cus_A", subscription: "sub_1" } });
  });

  it("the same Stripe customer may act: a plan change on its current subscription", () => {
    assert.deepEqual(decideBinding(req({ action: "plan-change" }), bound(), true), { kind: "allow" });
  });

  it("another Stripe customer is refused, naming the owner and the fix", () => {
    const d = decideBinding(req({ stripeCustomer: "cus_EVIL", subscription: "sub_9" }), bound(), true);
    assert.equal(d.kind, "refuse");
    assert.match(reason(d), /prod\/acme is bound to Stripe customer cus_A \(event evt_1, .*\); this event comes from cus_EVIL/);
    assert.match(reason(d), /fix: .*fleet bind acme --env prod --stripe-customer cus_EVIL --subscription sub_9/);
    for (const action of ["plan-change", "deprovision"] as const) {
      assert.equal(decideBinding(req({ action, stripeCustomer: "cus_EVIL" }), bound(), true).kind, "refuse", action);
    }
  });

  it("an existing customer bound to nobody (made by the CLI) is not taken over; the fix is to bind it", () => {
    const d = decideBinding(req({}), undefined, true);
    assert.equal(d.kind, "refuse");
    assert.match(reason(d), /prod\/acme exists but is bound to no Stripe customer/);
    assert.match(reason(d), /fix: if cus_A is the rightful owner, run 'fleet bind acme --env prod --stripe-customer cus_A --subscription sub_1'/);
    assert.equal(decideBinding(req({ action: "deprovision" }), undefined, true).kind, "refuse");
    // nothing there and nobody's: a deprovision has nothing to do and binds nothing
    assert.deepEqual(decideBinding(req({ action: "deprovision" }), undefined, false), { kind: "allow" });
  });

  it("an old subscription's deletion is refused; the current one's deprovisions", () => {
    const now = bound({ subscription: "sub_2" });
    const old = decideBinding(req({ action: "deprovision", subscription: "sub_1" }), now, true);
    assert.equal(old.kind, "refuse");
    assert.match(reason(old), /current subscription is sub_2; this event is about sub_1/);
    assert.equal(decideBinding(req({ action: "plan-change", subscription: "sub_1" }), now, true).kind, "refuse");
    assert.deepEqual(decideBinding(req({ action: "deprovision", subscription: "sub_2" }), now, true), { kind: "allow" });
  });

  it("after a cancel the binding stays: the same Stripe customer resubscribes and re-binds; another is refused", () => {
    // deprovisioned (the volume kept, so it exists), still bound to cus_A's cancelled sub_1
    assert.deepEqual(decideBinding(req({ subscription: "sub_3" }), bound(), true),
      { kind: "allow", bind: { stripeCustomer: "cus_A", subscription: "sub_3" } });
    assert.deepEqual(decideBinding(req({ subscription: "sub_3" }), bound(), false),
      { kind: "allow", bind: { stripeCustomer: "cus_A", subscription: "sub_3" } });
    assert.equal(decideBinding(req({ stripeCustomer: "cus_B", subscription: "sub_4" }), bound(), false).kind, "refuse");
  });

  it("an operator's binding without a subscription accepts the owner's subscription and adopts it", () => {
    const any = bound({ subscription: null, boundBy: "operator" });
    assert.deepEqual(decideBinding(req({ action: "plan-change", subscription: "sub_7" }), any, true),
      { kind: "allow", bind: { stripeCustomer: "cus_A", subscription: "sub_7" } });
    assert.deepEqual(decideBinding(req({ action: "deprovision", subscription: "sub_7" }), any, true), { kind: "allow" });
  });

  it("an event without a Stripe customer is refused", () => {
    assert.equal(decideBinding(req({ stripeCustomer: null }), undefined, false).kind, "refuse");
  });
});

describe("test-mode events and production-tier environments", () => {
  const decide = (e: TestEvent) => decideEvent(parseEnvelope(JSON.parse(JSON.stringify(e))), "prod");
  const checkout = checkoutCompleted("evt_t", 10, "acme", "starter");

  it("a test-mode event that would act on a production-tier environment is refused, with the reason", () => {
    const d = refuseTestModeInProduction(decide(checkout), false, "production", "prod");
    assert.equal(d.kind, "refuse");
    assert.match(d.kind === "refuse" ? d.reason : "", /a test-mode event \(livemode false\) never acts on prod, a production-tier environment/);
    assert.equal(refuseTestModeInProduction(decide(subscriptionDeleted("evt_d", 10, "acme")), false, "production", "prod").kind, "refuse");
  });

  it("live events in production, and test events in staging, go ahead; events that do nothing stay as they are", () => {
    assert.equal(refuseTestModeInProduction(decide(live(checkout)), true, "production", "prod").kind, "run");
    assert.equal(refuseTestModeInProduction(decide(checkout), false, "staging", "staging").kind, "run");
    const bad = decide(checkoutCompleted("evt_b", 10, "Acme!", "starter"));
    assert.equal(refuseTestModeInProduction(bad, false, "production", "prod").kind, "reject");
  });
});

describe("Stripe ids and fleet bind arguments", () => {
  it("the event's Stripe customer and subscription are read and checked (a missing customer is an invalid request)", () => {
    const decide = (e: TestEvent) => decideEvent(parseEnvelope(JSON.parse(JSON.stringify(e))), "prod");
    const d = decide(checkoutCompleted("evt_1", 10, "acme", "starter", "paid", { stripeCustomer: null }));
    assert.equal(d.kind, "reject");
    assert.match(d.kind === "reject" ? d.reason : "", /customer: must be a Stripe customer id: cus_ followed by letters and digits/);
    const forged = decide(checkoutCompleted("evt_2", 10, "acme", "starter", "paid", { stripeCustomer: "cus_A; rm -rf /" }));
    assert.equal(forged.kind, "reject");
    const noSub = decide(checkoutCompleted("evt_3", 10, "acme", "starter", "paid", { subscription: null }));
    assert.deepEqual(noSub.kind === "run" ? noSub.payer : undefined, { customer: "cus_acme", subscription: null });
  });

  it("parseStripeId names the field", () => {
    assert.equal(parseStripeId("cus_NffrFeUfNV2Hib", "customer", "--stripe-customer"), "cus_NffrFeUfNV2Hib");
    assert.throws(() => parseStripeId("sub_1", "customer", "--stripe-customer"), /--stripe-customer: must be a Stripe customer id.*\(found "sub_1"\)/);
    assert.throws(() => parseStripeId("cus_1", "subscription", "--subscription"), /--subscription: must be a Stripe subscription id/);
  });

  it("fleet bind: every bad argument at once, each naming its field; good ones parse", () => {
    assert.deepEqual(parseBindArgs("acme", { env: "prod", stripeCustomer: "cus_A", subscription: "sub_1" }, ["prod", "staging"]),
      { kind: "set", environment: "prod", customer: "acme", stripeCustomer: "cus_A", subscription: "sub_1" });
    assert.deepEqual(parseBindArgs("acme", { env: "prod", show: true }, ["prod"]), { kind: "show", environment: "prod", customer: "acme" });
    assert.deepEqual(parseBindArgs("acme", { env: "prod", clear: true }, ["prod"]), { kind: "clear", environment: "prod", customer: "acme" });
    assert.throws(() => parseBindArgs("Acme!", { env: "nope", stripeCustomer: "acme", subscription: "cus_x" }, ["prod"]), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const fields = err.problems.map((p) => p.path);
      assert.deepEqual(fields.sort(), ["--stripe-customer", "--subscription", "<customer>"].sort(), err.message);
      return true;
    });
    assert.throws(() => parseBindArgs("acme", { env: "qa", stripeCustomer: "cus_A" }, ["prod"]), /--env: no environment stack file Pulumi\.qa\.yaml/);
    assert.throws(() => parseBindArgs("acme", { env: "prod" }, ["prod"]), /give exactly one of --stripe-customer/);
    assert.throws(() => parseBindArgs("acme", { env: "prod", show: true, subscription: "sub_1" }, ["prod"]), /--subscription: goes with --stripe-customer/);
  });
});

describe("the binding store and the worker", () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("keeps bindings in a 0600 file; set, re-bind, clear", () => {
    const file = path.join(dir, "store", "bindings.db");
    const store = BindingStore.open(file);
    store.set(bound());
    store.set(bound({ subscription: "sub_2", boundBy: "operator" }));
    store.set(bound({ customer: "globex", stripeCustomer: "cus_G" }));
    assert.equal(store.get("prod", "acme")?.subscription, "sub_2");
    assert.deepEqual(BindingStore.readAll(file).map((b) => b.customer), ["acme", "globex"]);
    assert.equal(store.clear("prod", "acme"), true);
    assert.equal(store.clear("prod", "acme"), false);
    assert.equal(store.get("prod", "acme"), undefined);
    store.close();
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(BindingStore.readAll(path.join(dir, "none.db")), []);
  });

  it("the worker refuses a stranger's checkout and an old subscription's deletion: refused, the operation never called", async () => {
    const queue = JobQueue.open(path.join(dir, "queue.db"));
    const store = BindingStore.open(path.join(dir, "worker-bindings.db"));
    const calls: string[] = [];
    const ops: FleetOperations = {
      async provision(r, run) { calls.push(`${run.eventId} provision ${r.customer} ${r.plan}`); },
      async deprovision(r, run) { calls.push(`${run.eventId} deprovision ${r.customer}`); },
    };
    const accept = (e: TestEvent) => queue.accept(e, "prod", decideEvent(parseEnvelope(JSON.parse(JSON.stringify(e))), "prod"), new Date());
    const sub = (s: string) => ({ stripeCustomer: "cus_acme", subscription: s });
    accept(checkoutCompleted("evt_1", 100, "acme", "starter", "paid", sub("sub_1")));
    accept(checkoutCompleted("evt_2", 110, "acme", "premium", "paid", { stripeCustomer: "cus_evil", subscription: "sub_e" }));
    accept(checkoutCompleted("evt_3", 120, "acme", "standard", "paid", sub("sub_2"))); // a second subscription of the owner
    accept(subscriptionDeleted("evt_4", 130, "acme", sub("sub_1"))); // cancelling the old one
    accept(subscriptionUpdated("evt_5", 140, "acme", "starter", "standard", sub("sub_2")));
    const worker = new Worker(queue, ops, { log: () => {}, pollMs: 20, authorize: bindingAuthorizer(store, async () => false) });
    worker.start();
    await worker.settled();
    await worker.stop();
    const status = Object.fromEntries(queue.list().map((j) => [j.eventId, j.status]));
    assert.deepEqual(status, { evt_1: "done", evt_2: "refused", evt_3: "done", evt_4: "refused", evt_5: "done" });
    assert.deepEqual(calls, ["evt_1 provision acme starter", "evt_3 provision acme standard", "evt_5 provision acme starter"]);
    assert.match(queue.jobForEvent("evt_2")!.lastError ?? "", /bound to Stripe customer cus_acme .* comes from cus_evil/);
    assert.equal(queue.counts().refused, 2);
    // a refused job applied nothing: the newest applied event is evt_5's
    assert.equal(queue.appliedState()[0]!.lastEventId, "evt_5");
    assert.deepEqual({ ...store.get("prod", "acme"), boundAt: "" },
      { environment: "prod", customer: "acme", stripeCustomer: "cus_acme", subscription: "sub_2", boundAt: "", boundBy: "event evt_3" });
    // the operator re-binds acme to cus_evil on purpose: the refused checkout may then be retried and runs
    store.set(bound({ stripeCustomer: "cus_evil", subscription: "sub_e", boundBy: "operator" }));
    queue.retryFailed(queue.jobForEvent("evt_2")!.id, new Date());
    const again = new Worker(queue, ops, { log: () => {}, pollMs: 20, authorize: bindingAuthorizer(store, async () => false) });
    again.start();
    await again.settled();
    await again.stop();
    // superseded: evt_5 (newer) was applied, so the old checkout does not run even now
    assert.equal(queue.jobForEvent("evt_2")!.status, "ignored");
    queue.close();
    store.close();
  });

  it("a customer with a stack file exists (made by the CLI), whoever made it", async () => {
    const project = path.join(dir, "project");
    fs.mkdirSync(project, { recursive: true });
    fs.writeFileSync(path.join(project, "Pulumi.prod-legacy.yaml"),
      "config:\n  hardened-fleet:role: customer\n  hardened-fleet:customer: { id: legacy, environment: prod, plan: starter }\n");
    assert.equal(await customerExists(fleetContext(project), { customer: "legacy", environment: "prod" }), true);
  });

  it("a queue file of schema version 1 is migrated: jobs kept, the refused status and Stripe ids available", () => {
    const file = path.join(dir, "v1.db");
    const db = new DatabaseSync(file);
    db.exec(`CREATE TABLE events (id TEXT PRIMARY KEY, type TEXT NOT NULL, created INTEGER NOT NULL, livemode INTEGER NOT NULL, received_at TEXT NOT NULL) STRICT;
      CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE REFERENCES events(id), event_type TEXT NOT NULL,
        event_created INTEGER NOT NULL, environment TEXT NOT NULL, customer TEXT,
        action TEXT CHECK (action IN ('provision', 'plan-change', 'deprovision')), plan TEXT,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'ignored')),
        attempts INTEGER NOT NULL DEFAULT 0, interrupted INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL,
        last_error TEXT, note TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL) STRICT;
      CREATE TABLE customers (environment TEXT NOT NULL, customer TEXT NOT NULL, last_event_id TEXT NOT NULL, last_event_created INTEGER NOT NULL,
        action TEXT NOT NULL, plan TEXT, applied_at TEXT NOT NULL, PRIMARY KEY (environment, customer)) STRICT;
      INSERT INTO events VALUES ('evt_old', 'checkout.session.completed', 100, 1, 'x');
      INSERT INTO jobs (event_id, event_type, event_created, environment, customer, action, plan, status, attempts, next_attempt_at, created_at, updated_at)
        VALUES ('evt_old', 'checkout.session.completed', 100, 'prod', 'acme', 'provision', 'starter', 'done', 1, 'x', 'x', 'x');
      PRAGMA user_version = 1;`);
    db.close();
    const queue = JobQueue.open(file);
    assert.equal(queue.jobForEvent("evt_old")?.status, "done");
    assert.equal(queue.jobForEvent("evt_old")?.stripeCustomer, null);
    const e = live(checkoutCompleted("evt_new", 200, "acme", "starter"));
    const d = refuseTestModeInProduction(decideEvent(parseEnvelope(JSON.parse(JSON.stringify(e))), "prod"), false, "production", "prod");
    const { job } = queue.accept(e, "prod", d, new Date());
    assert.equal(job.status, "refused");
    assert.equal(job.stripeCustomer, "cus_acme");
    queue.close();
    assert.equal(JobQueue.open(file, { readOnly: true }).counts().refused, 1);
  });
});
