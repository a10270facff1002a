/**
 * The conditions of what fleet itself owns that `fleet watch` alerts on (see health.ts CheckKind):
 * each holds or not at a given time, with the reason it holds. Pure: the callers read the records,
 * the job counts and the certificates, and feed the results to checkStep.
 */
import { latestByCustomer, type BackupRecord } from "../backup/records";
import { formatDuration } from "./alertText";
import type { CheckKind } from "./health";

export interface CheckResult {
  check: CheckKind;
  /** the customer, the hostname, or "jobs" */
  subject: string;
  active: boolean;
  reason: string;
}

const DAY = 86_400_000;

/**
 * Backups of a customer are stale when its last good snapshot is older than two intervals, or it has
 * none and its last attempt failed. Its drill has failed when the last one did.
 */
export function backupChecks(customers: string[], records: BackupRecord[], intervalSeconds: number, now: Date): CheckResult[] {
  const out: CheckResult[] = [];
  const goodBackups = latestByCustomer(records, "backup", true);
  const attempts = latestByCustomer(records, "backup");
  const drills = latestByCustomer(records, "drill");
  for (const customer of customers) {
    const good = goodBackups.get(customer);
    const attempt = attempts.get(customer);
    const ageMs = good ? now.getTime() - Date.parse(good.at) : undefined;
    const limitMs = 2 * intervalSeconds * 1000;
    let reason = "";
    if (ageMs !== undefined && ageMs > limitMs) {
      reason = `the last good backup is ${formatDuration(ageMs / 1000)} old (more than two intervals of ${formatDuration(intervalSeconds)})` +
        (attempt && !attempt.ok ? `; the last attempt failed: ${attempt.error ?? "no reason recorded"}` : "");
    } else if (!good && attempt && !attempt.ok) {
      reason = `no backup has succeeded yet; the last attempt failed: ${attempt.error ?? "no reason recorded"}`;
    }
    out.push({ check: "backup", subject: customer, active: reason !== "", reason });
    const drill = drills.get(customer);
    out.push({ check: "drill", subject: customer, active: drill !== undefined && !drill.ok,
      reason: drill && !drill.ok ? `the restore drill of ${drill.at} failed: ${drill.error ?? "no reason recorded"}` : "" });
  }
  return out;
}

/**
 * A certificate the edge shows is late to renew when it expires within `warningDays` and within a
 * third of its lifetime (a CA client renews at two thirds: the local CA's 12-hour certificates are
 * not late at 8 hours left, a 90-day one is at 14 days).
 */
export function certificateCheck(hostname: string, cert: { validFrom: string; validTo: string }, warningDays: number, now: Date): CheckResult {
  const left = Date.parse(cert.validTo) - now.getTime();
  const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
  const active = left < warningDays * DAY && left < lifetime / 3;
  return {
    check: "certificate", subject: hostname, active,
    reason: active ? (left <= 0 ? `the certificate expired at ${cert.validTo}` : `the certificate expires in ${formatDuration(left / 1000)} (${cert.validTo}) and was not renewed`) : "",
  };
}

/** Payment-webhook jobs that failed (they wait for `fleet jobs retry`). */
export function webhookJobsCheck(failed: { id: number; customer: string | null; error: string | null }[]): CheckResult {
  const listed = failed.slice(0, 5).map((j) => `#${j.id} ${j.customer ?? "-"}: ${(j.error ?? "").split("\n")[0]!.slice(0, 80)}`).join("; ");
  return { check: "webhooks", subject: "jobs", active: failed.length > 0, reason: failed.length > 0 ? `${failed.length} failed job(s): ${listed}` : "" };
}
