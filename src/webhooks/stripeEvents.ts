/**
 * What a verified Stripe event asks of the fleet: a pure function from the event to a decision.
 *
 *  - checkout.session.completed (paid or free) and checkout.session.async_payment_succeeded:
 *    provision the session's `client_reference_id` on the plan in the session's `metadata.plan`;
 *  - customer.subscription.updated whose `metadata.plan` changed: plan change of the subscription's
 *    `metadata.customer_id` to its `metadata.plan`;
 *  - customer.subscription.deleted: deprovision the subscription's `metadata.customer_id` (the data
 *    volume is kept);
 *  - invoice.payment_failed, invoice.paid and every other type: recorded, nothing done.
 *
 * The customer id is parsed with config/targets.ts, like every other entry point; an invalid or missing
 * id or plan is a "reject": a failed job with the reason, never run. Each acting event also names who
 * pays (the Stripe customer and subscription), which webhooks/authorize.ts checks against the customer's owner.
 */
import { ConfigError } from "../config/errors";
import { parseCustomerTarget } from "../config/targets";
import { parseStripeId } from "../project/bindings";

export type JobAction = "provision" | "plan-change" | "deprovision";

/** The parts of a Stripe event (any API version) that the fleet reads. */
export interface StripeEventEnvelope {
  id: string;
  type: string;
  /** unix seconds */
  created: number;
  livemode: boolean;
  data: { object: Record<string, unknown>; previous_attributes?: Record<string, unknown> };
}

/** Who pays: the Stripe customer and subscription an event comes from (webhooks/authorize.ts checks them). */
export interface Payer {
  customer: string;
  subscription: string | null;
}

export type EventDecision =
  | { kind: "run"; action: JobAction; customer: string; plan: string | null; payer: Payer }
  | { kind: "reject"; action: JobAction; customer: string | null; plan: string | null; reason: string }
  /** valid, but not allowed to act (a test-mode event on a production environment): never run */
  | { kind: "refuse"; action: JobAction; customer: string; plan: string | null; payer: Payer; reason: string }
  | { kind: "ignore"; customer: string | null; reason: string };

export const PAYMENT_EVENTS_NOTE = "payment events are recorded only: a subscription Stripe cancels after failed payments " +
  "arrives as customer.subscription.deleted (deprovision, data volume kept)";

/**
 * A ConfigError in one line: each problem with its field, what was found and what is allowed
 * (the stored reason of a job that failed on its input).
 */
export function explainConfigError(err: ConfigError): string {
  const problems = err.problems.map((p) => `${p.path}: ${p.message}${p.found === undefined ? "" : ` (found ${p.found})`}`);
  return `invalid request, nothing was created: ${problems.join("; ")}`;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** A non-empty string field, else undefined. */
function stringField(obj: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = obj?.[key];
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

/** What is stored for an id that did not parse: the value as received, shortened, or null. */
function rawCustomer(raw: unknown): string | null {
  return typeof raw === "string" && raw.length > 0 ? raw.slice(0, 64) : null;
}

interface Wanted {
  action: JobAction;
  /** where the customer id comes from, named in errors */
  customerField: string;
  customerRaw: unknown;
  /** where the plan comes from; undefined for a deprovision */
  planField?: string;
  planRaw?: unknown;
  /** the Stripe customer (cus_...) and subscription (sub_...) of the event, and where they come from */
  payerFields: { customer: string; subscription: string };
  payerRaw: { customer: unknown; subscription: unknown };
  /** how the operator makes Stripe send the right values */
  fix: string;
}

/** An id field that Stripe may send expanded (an object with an id). */
function idOf(value: unknown): unknown {
  return record(value)?.id ?? value;
}

function decide(wanted: Wanted, environment: string): EventDecision {
  const plan = typeof wanted.planRaw === "string" && wanted.planRaw.length > 0 ? wanted.planRaw : null;
  let customer: string;
  try {
    customer = parseCustomerTarget(wanted.customerRaw, environment, { customer: wanted.customerField }).customer;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { kind: "reject", action: wanted.action, customer: rawCustomer(wanted.customerRaw), plan, reason: `${explainConfigError(err)}\n  fix: ${wanted.fix}` };
  }
  if (wanted.planField && plan === null) {
    const found = wanted.planRaw === undefined ? "nothing" : JSON.stringify(wanted.planRaw);
    return { kind: "reject", action: wanted.action, customer, plan: null,
      reason: `invalid request, nothing was created: ${wanted.planField}: must name one of the environment's plans (found ${found})\n  fix: ${wanted.fix}` };
  }
  let payer: Payer;
  try {
    const sub = wanted.payerRaw.subscription;
    payer = {
      customer: parseStripeId(wanted.payerRaw.customer, "customer", wanted.payerFields.customer),
      subscription: sub === null || sub === undefined ? null : parseStripeId(sub, "subscription", wanted.payerFields.subscription),
    };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { kind: "reject", action: wanted.action, customer, plan,
      reason: `${explainConfigError(err)}\n  fix: Checkout Sessions in subscription mode carry the customer and subscription` };
  }
  return { kind: "run", action: wanted.action, customer, plan, payer };
}

function checkout(event: StripeEventEnvelope, environment: string): EventDecision {
  const session = event.data.object;
  const paymentStatus = stringField(session, "payment_status");
  if (event.type === "checkout.session.completed" && paymentStatus === "unpaid") {
    return { kind: "ignore", customer: rawCustomer(session.client_reference_id),
      reason: "checkout completed but not paid yet (payment_status unpaid): provisioned on checkout.session.async_payment_succeeded" };
  }
  return decide({
    action: "provision",
    customerField: "client_reference_id", customerRaw: session.client_reference_id,
    planField: "metadata.plan", planRaw: record(session.metadata)?.plan,
    payerFields: { customer: "customer", subscription: "subscription" },
    payerRaw: { customer: idOf(session.customer), subscription: idOf(session.subscription) },
    fix: "create the Checkout Session with client_reference_id set to the customer id and metadata.plan to its plan",
  }, environment);
}

const SUBSCRIPTION_FIX = "create the Checkout Session with subscription_data.metadata.customer_id (the customer id) and " +
  "subscription_data.metadata.plan; change plans by updating the subscription's metadata.plan";

const SUBSCRIPTION_PAYER = { customer: "subscription customer", subscription: "subscription id" };

function subscriptionUpdated(event: StripeEventEnvelope, environment: string): EventDecision {
  const subscription = event.data.object;
  const metadata = record(subscription.metadata);
  const before = record(event.data.previous_attributes?.metadata);
  const changed = before !== undefined && Object.hasOwn(before, "plan") && before.plan !== metadata?.plan;
  if (!changed) {
    return { kind: "ignore", customer: rawCustomer(metadata?.customer_id), reason: "no plan change (metadata.plan unchanged)" };
  }
  return decide({
    action: "plan-change",
    customerField: "subscription metadata.customer_id", customerRaw: metadata?.customer_id,
    planField: "subscription metadata.plan", planRaw: metadata?.plan,
    payerFields: SUBSCRIPTION_PAYER, payerRaw: { customer: idOf(subscription.customer), subscription: subscription.id ?? null },
    fix: SUBSCRIPTION_FIX,
  }, environment);
}

function subscriptionDeleted(event: StripeEventEnvelope, environment: string): EventDecision {
  const subscription = event.data.object;
  const metadata = record(subscription.metadata);
  return decide({
    action: "deprovision",
    customerField: "subscription metadata.customer_id", customerRaw: metadata?.customer_id,
    payerFields: SUBSCRIPTION_PAYER, payerRaw: { customer: idOf(subscription.customer), subscription: subscription.id ?? null },
    fix: SUBSCRIPTION_FIX,
  }, environment);
}

/** The decision for one verified event, in `environment` (already validated by the caller). */
export function decideEvent(event: StripeEventEnvelope, environment: string): EventDecision {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
      return checkout(event, environment);
    case "customer.subscription.updated":
      return subscriptionUpdated(event, environment);
    case "customer.subscription.deleted":
      return subscriptionDeleted(event, environment);
    case "invoice.payment_failed":
    case "invoice.paid":
      return { kind: "ignore", customer: null, reason: PAYMENT_EVENTS_NOTE };
    default:
      return { kind: "ignore", customer: null, reason: `event type ${event.type} is not acted on` };
  }
}
