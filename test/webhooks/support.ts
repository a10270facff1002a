/**
 * Helpers for the webhook tests: Stripe events of the kinds `fleet serve` acts on, signed the way
 * Stripe signs them (the stripe package's generateTestHeaderString), and a POST to the server.
 */
import Stripe from "stripe";

export const SECRET = "whsec_test_hardened_fleet";
export const JOBS_TOKEN = "jobs-token-for-tests";

export interface TestEvent {
  id: string;
  object: "event";
  type: string;
  created: number;
  livemode: boolean;
  api_version: string;
  data: { object: Record<string, unknown>; previous_attributes?: Record<string, unknown> };
}

function event(id: string, type: string, created: number, object: Record<string, unknown>, previous?: Record<string, unknown>): TestEvent {
  return { id, object: "event", type, created, livemode: false, api_version: "2025-10-29.clover",
    data: { object, ...(previous ? { previous_attributes: previous } : {}) } };
}

/**
 * Who pays: the Stripe customer and subscription of an event. By default each fleet customer `x`
 * has its own Stripe customer `cus_x` and subscription `sub_x`; null leaves the field out.
 */
export interface Payer {
  stripeCustomer?: string | null;
  subscription?: string | null;
}

const token = (customer: unknown) => String(customer).replace(/[^A-Za-z0-9]/g, "") || "none";
const stripeCustomerOf = (customer: unknown, payer: Payer) => payer.stripeCustomer === undefined ? `cus_${token(customer)}` : payer.stripeCustomer;
const subscriptionOf = (customer: unknown, payer: Payer) => payer.subscription === undefined ? `sub_${token(customer)}` : payer.subscription;

export function checkoutCompleted(id: string, created: number, customer: unknown, plan: unknown,
  paymentStatus = "paid", payer: Payer = {}): TestEvent {
  return event(id, "checkout.session.completed", created, {
    id: `cs_${id}`, object: "checkout.session", mode: "subscription", payment_status: paymentStatus, status: "complete",
    client_reference_id: customer, metadata: plan === undefined ? {} : { plan },
    customer: stripeCustomerOf(customer, payer), subscription: subscriptionOf(customer, payer),
  });
}

export function subscriptionUpdated(id: string, created: number, customer: unknown, plan: string, previousPlan: string, payer: Payer = {}): TestEvent {
  return event(id, "customer.subscription.updated", created,
    { id: subscriptionOf(customer, payer), object: "subscription", status: "active", customer: stripeCustomerOf(customer, payer),
      metadata: { customer_id: customer, plan } },
    { metadata: { plan: previousPlan } });
}

export function subscriptionDeleted(id: string, created: number, customer: unknown, payer: Payer = {}): TestEvent {
  return event(id, "customer.subscription.deleted", created,
    { id: subscriptionOf(customer, payer), object: "subscription", status: "canceled", customer: stripeCustomerOf(customer, payer),
      metadata: { customer_id: customer } });
}

/** The same event from live mode (a production-tier environment acts only on those). */
export function live(e: TestEvent): TestEvent {
  return { ...e, livemode: true };
}

export function invoiceEvent(id: string, created: number, type: "invoice.paid" | "invoice.payment_failed"): TestEvent {
  return event(id, type, created, { id: `in_${id}`, object: "invoice", customer: "cus_123" });
}

export interface Delivery {
  body: string;
  signature: string;
}

/** The body and Stripe-Signature header Stripe would send (timestamp: unix seconds, default now). */
export function sign(payload: TestEvent | string, opts: { secret?: string; timestamp?: number } = {}): Delivery {
  const body = typeof payload === "string" ? payload : JSON.stringify(payload);
  const signature = Stripe.webhooks.generateTestHeaderString({
    payload: body, secret: opts.secret ?? SECRET, ...(opts.timestamp !== undefined ? { timestamp: opts.timestamp } : {}),
  });
  return { body, signature };
}

export interface Answer {
  status: number;
  json: Record<string, unknown>;
  ms: number;
}

/** POST /webhooks/stripe with the given body and signature header (none when undefined). */
export async function deliver(base: string, body: string, signature: string | undefined): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(`${base}/webhooks/stripe`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(signature === undefined ? {} : { "stripe-signature": signature }) },
    body,
  });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, json, ms: performance.now() - started };
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(url, { headers });
  return { status: res.status, json: (await res.json()) as Record<string, unknown>, ms: performance.now() - started };
}
