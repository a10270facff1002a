/**
 * How much of a customer's lines is kept, from logging.collector (perCustomerMb, maxAgeDays): the
 * collector's files (logrotate) and the edge proxy's access log (Caddy's roll). Pure.
 */
import type { EnvironmentConfig } from "../config/schema";
import type { AccessLogRoll } from "../edge/routes";

/**
 * How logrotate bounds one customer's lines in the collector: rotated daily or at `maxSizeKib`, `keep`
 * rotated files, none older than `maxAgeDays`. (keep + 1) files of at most maxSizeKib: about
 * perCustomerMb on disk (a file can pass maxSizeKib by what arrives in the minute between two runs).
 */
export function rotation(env: Pick<EnvironmentConfig, "logging">): { maxSizeKib: number; keep: number; maxAgeDays: number } {
  const { perCustomerMb, maxAgeDays } = env.logging.collector;
  const keep = Math.min(maxAgeDays, 30);
  return { maxSizeKib: Math.max(64, Math.floor((perCustomerMb * 1024) / (keep + 1))), keep, maxAgeDays };
}

/** The access log of one customer in the edge proxy: 5 files of perCustomerMb / 5 (Caddy rolls by whole MiB). */
export function accessLogRoll(env: Pick<EnvironmentConfig, "logging">): AccessLogRoll {
  const { perCustomerMb, maxAgeDays } = env.logging.collector;
  return { maxMb: Math.max(1, Math.floor(perCustomerMb / 5)), keep: 4, keepForHours: maxAgeDays * 24 };
}
