/**
 * When a customer's scheduled backup is due. Each customer has a slot in the interval (a hash of its
 * name), so the backups of an environment are spread over it rather than all at once; a customer
 * never backed up, or whose last attempt failed, is due at once. Pure.
 */
import { createHash } from "node:crypto";

/** Seconds into each interval (counted from the epoch) at which the customer's backup falls due. */
export function slotOffset(customer: string, intervalSeconds: number): number {
  const h = createHash("sha256").update(customer).digest();
  return h.readUInt32BE(0) % intervalSeconds;
}

/** The customer's latest slot at or before `now` (ms). */
export function latestSlot(nowMs: number, customer: string, intervalSeconds: number): number {
  const interval = intervalSeconds * 1000;
  const offset = slotOffset(customer, intervalSeconds) * 1000;
  return Math.floor((nowMs - offset) / interval) * interval + offset;
}

export interface LastAttempt {
  /** when it started (ms) */
  at: number;
  ok: boolean;
}

/** Due: never backed up, the last attempt failed, or its latest slot passed since the last success. */
export function isDue(nowMs: number, customer: string, intervalSeconds: number, last: LastAttempt | undefined): boolean {
  if (!last || !last.ok) return true;
  return last.at < latestSlot(nowMs, customer, intervalSeconds);
}

/** The customer's next slot after `nowMs`. */
export function nextSlot(nowMs: number, customer: string, intervalSeconds: number): number {
  return latestSlot(nowMs, customer, intervalSeconds) + intervalSeconds * 1000;
}
