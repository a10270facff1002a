/**
 * Verifying a Stripe webhook delivery: the official stripe package checks the Stripe-Signature header
 * (HMAC-SHA256 of the raw body with the endpoint's signing secret, and the timestamp within the
 * tolerance, so an old delivery cannot be replayed), then the event's envelope is checked for the
 * fields the queue needs. Anything wrong is a WebhookRejected: the server answers 400 and writes nothing.
 */
import Stripe from "stripe";
import type { StripeEventEnvelope } from "./stripeEvents";

/** Stripe's own default: a signature older than 5 minutes is refused. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export class WebhookRejected extends Error {}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The envelope of a parsed event, or a WebhookRejected naming the first field that is wrong. */
export function parseEnvelope(value: unknown): StripeEventEnvelope {
  const event = record(value);
  if (!event) throw new WebhookRejected("malformed event: the body is not a JSON object");
  const { id, type, created, livemode } = event;
  if (typeof id !== "string" || id.length === 0 || id.length > 255) throw new WebhookRejected("malformed event: id must be a string (evt_...)");
  if (typeof type !== "string" || type.length === 0) throw new WebhookRejected("malformed event: type must be a string");
  if (typeof created !== "number" || !Number.isSafeInteger(created) || created <= 0) {
    throw new WebhookRejected("malformed event: created must be a positive integer (unix seconds)");
  }
  const data = record(event.data);
  const object = record(data?.object);
  if (!data || !object) throw new WebhookRejected("malformed event: data.object must be an object");
  const previous = data.previous_attributes === undefined ? undefined : record(data.previous_attributes);
  if (data.previous_attributes !== undefined && !previous) throw new WebhookRejected("malformed event: data.previous_attributes must be an object");
  return { id, type, created, livemode: livemode === true, data: { object, ...(previous ? { previous_attributes: previous } : {}) } };
}

/** Verifies one delivery and returns its event; throws WebhookRejected with the reason otherwise. */
export function verifyStripeEvent(rawBody: Buffer, signatureHeader: string | string[] | undefined, secret: string,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS): StripeEventEnvelope {
  if (signatureHeader === undefined || signatureHeader === "") throw new WebhookRejected("missing Stripe-Signature header");
  if (Array.isArray(signatureHeader)) throw new WebhookRejected("more than one Stripe-Signature header");
  let event: unknown;
  try {
    event = Stripe.webhooks.constructEvent(rawBody, signatureHeader, secret, toleranceSeconds);
  } catch (err) {
    if (err instanceof SyntaxError) throw new WebhookRejected(`malformed event: the body is not JSON (${err.message})`);
    const message = err instanceof Error ? err.message : String(err);
    throw new WebhookRejected(`signature verification failed: ${message.split("\n")[0]!.trim()}`);
  }
  return parseEnvelope(event);
}
