/** What each Stripe event asks of the fleet (pure), envelope checks, and the settings of `fleet serve`. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { parseIntegerOption, parseListen, serveSettings } from "../../src/webhooks/config";
import { parseEnvelope, WebhookRejected } from "../../src/webhooks/signature";
import { decideEvent, type StripeEventEnvelope } from "../../src/webhooks/stripeEvents";
import { checkoutCompleted, invoiceEvent, subscriptionDeleted, subscriptionUpdated, type TestEvent } from "../webhooks/support";

const envelope = (e: TestEvent): StripeEventEnvelope => parseEnvelope(JSON.parse(JSON.stringify(e)));
const decide = (e: TestEvent) => decideEvent(envelope(e), "prod");
const ACME = { customer: "cus_acme", subscription: "sub_acme" };

describe("Stripe events to jobs", () => {
  it("checkout.session.completed provisions client_reference_id on metadata.plan", () => {
    assert.deepEqual(decide(checkoutCompleted("evt_1", 10, "acme", "starter")), { kind: "run", action: "provision", customer: "acme", plan: "starter", payer: ACME });
    // a free trial needs no payment: provisioned too
    assert.equal(decide(checkoutCompleted("evt_2", 10, "acme", "starter", "no_payment_required")).kind, "run");
  });

  it("an unpaid checkout (delayed payment method) waits for checkout.session.async_payment_succeeded", () => {
    const unpaid = decide(checkoutCompleted("evt_1", 10, "acme", "starter", "unpaid"));
    assert.equal(unpaid.kind, "ignore");
    assert.match(unpaid.kind === "ignore" ? unpaid.reason : "", /async_payment_succeeded/);
    const paid = { ...checkoutCompleted("evt_2", 11, "acme", "starter", "paid"), type: "checkout.session.async_payment_succeeded" };
    assert.deepEqual(decide(paid), { kind: "run", action: "provision", customer: "acme", plan: "starter", payer: ACME });
  });

  it("an invalid or missing customer id is rejected with the field, the rule and the fix", () => {
    const bad = decide(checkoutCompleted("evt_1", 10, "Acme!", "starter"));
    assert.equal(bad.kind, "reject");
    if (bad.kind !== "reject") return;
    assert.equal(bad.customer, "Acme!");
    assert.match(bad.reason, /client_reference_id: must be a lowercase DNS label.*\(found "Acme!"\)/);
    assert.match(bad.reason, /fix: create the Checkout Session with client_reference_id/);
    const missing = decide(checkoutCompleted("evt_2", 10, null, "starter"));
    assert.equal(missing.kind, "reject");
    assert.equal(missing.kind === "reject" ? missing.customer : "x", null);
    const traversal = decide(checkoutCompleted("evt_3", 10, "../../etc", "starter"));
    assert.equal(traversal.kind, "reject");
  });

  it("a checkout without metadata.plan is rejected (never a guessed plan)", () => {
    const d = decide(checkoutCompleted("evt_1", 10, "acme", undefined));
    assert.equal(d.kind, "reject");
    assert.match(d.kind === "reject" ? d.reason : "", /metadata\.plan: must name one of the environment's plans \(found nothing\)/);
  });

  it("customer.subscription.updated is a plan change only when metadata.plan changed", () => {
    assert.deepEqual(decide(subscriptionUpdated("evt_1", 10, "acme", "standard", "starter")),
      { kind: "run", action: "plan-change", customer: "acme", plan: "standard", payer: ACME });
    const other = { ...subscriptionUpdated("evt_2", 10, "acme", "standard", "starter") };
    other.data = { ...other.data, previous_attributes: { default_payment_method: "pm_old" } };
    const d = decide(other);
    assert.equal(d.kind, "ignore");
    assert.match(d.kind === "ignore" ? d.reason : "", /no plan change/);
    const bad = decide(subscriptionUpdated("evt_3", 10, "ACME", "standard", "starter"));
    assert.equal(bad.kind, "reject");
    assert.match(bad.kind === "reject" ? bad.reason : "", /subscription metadata\.customer_id: must be a lowercase DNS label/);
  });

  it("customer.subscription.deleted deprovisions metadata.customer_id", () => {
    assert.deepEqual(decide(subscriptionDeleted("evt_1", 10, "acme")), { kind: "run", action: "deprovision", customer: "acme", plan: null, payer: ACME });
    assert.equal(decide(subscriptionDeleted("evt_2", 10, undefined)).kind, "reject");
  });

  it("invoice.paid, invoice.payment_failed and other types are recorded only", () => {
    for (const type of ["invoice.paid", "invoice.payment_failed"] as const) {
      const d = decide(invoiceEvent("evt_1", 10, type));
      assert.equal(d.kind, "ignore");
      assert.match(d.kind === "ignore" ? d.reason : "", /customer\.subscription\.deleted/);
    }
    const other = { ...invoiceEvent("evt_2", 10, "invoice.paid"), type: "charge.refunded" };
    assert.deepEqual(decide(other), { kind: "ignore", customer: null, reason: "event type charge.refunded is not acted on" });
  });
});

describe("event envelope", () => {
  it("names the first field that is wrong", () => {
    const good = JSON.parse(JSON.stringify(checkoutCompleted("evt_1", 10, "acme", "starter"))) as Record<string, unknown>;
    assert.equal(parseEnvelope(good).id, "evt_1");
    const cases: [unknown, RegExp][] = [
      [[1, 2], /not a JSON object/],
      [{ ...good, id: 7 }, /id must be a string/],
      [{ ...good, type: "" }, /type must be a string/],
      [{ ...good, created: "yesterday" }, /created must be a positive integer/],
      [{ ...good, data: {} }, /data\.object must be an object/],
      [{ ...good, data: { object: {}, previous_attributes: "x" } }, /previous_attributes must be an object/],
    ];
    for (const [value, message] of cases) {
      assert.throws(() => parseEnvelope(value), (err: unknown) => err instanceof WebhookRejected && message.test(err.message));
    }
  });
});

describe("fleet serve settings", () => {
  const env = { STRIPE_WEBHOOK_SECRET: "whsec_x" };

  it("defaults: prod, 127.0.0.1:8787, concurrency 2, the project's queue file, 3 attempts, 30 s", () => {
    const s = serveSettings({}, env, "/srv/fleet");
    assert.deepEqual(s, { environment: "prod", host: "127.0.0.1", port: 8787, secret: "whsec_x", concurrency: 2,
      dbPath: "/srv/fleet/.fleet/webhooks/queue.db", maxAttempts: 3, retryBaseMs: 30_000 });
    assert.equal(serveSettings({}, { ...env, FLEET_JOBS_TOKEN: "t" }, "/srv/fleet").jobsToken, "t");
  });

  it("--listen takes host:port and [ipv6]:port", () => {
    assert.deepEqual(parseListen("0.0.0.0:9000"), { host: "0.0.0.0", port: 9000 });
    assert.deepEqual(parseListen("[::1]:8787"), { host: "::1", port: 8787 });
    assert.deepEqual(parseListen("localhost:0"), { host: "localhost", port: 0 });
    for (const bad of ["8787", "127.0.0.1:", "127.0.0.1:99999", "::1:8787", "a b:1"]) {
      assert.throws(() => parseListen(bad), /invalid --listen: .*\n  - --listen: must be host:port/);
    }
  });

  it("refuses to start without STRIPE_WEBHOOK_SECRET, or with a bad --env or number, naming it", () => {
    assert.throws(() => serveSettings({}, {}, "/p"), /STRIPE_WEBHOOK_SECRET: must be set to the signing secret/);
    assert.throws(() => serveSettings({ env: "../prod" }, env, "/p"), (err: unknown) => err instanceof ConfigError && /--env/.test(err.message));
    assert.throws(() => serveSettings({ concurrency: "0" }, env, "/p"), /--concurrency: must be a whole number from 1 to 32 \(found "0"\)/);
    assert.throws(() => parseIntegerOption("2.5", "--max-attempts", 1, 20), /--max-attempts/);
  });
});
