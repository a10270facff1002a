/**
 * Which snapshots a retention policy keeps, the way `restic forget --keep-hourly/-daily/-weekly/-monthly`
 * decides it (restic 0.18): newest first, each rule keeps the newest snapshot of each of its last N
 * hours, days, ISO weeks or months that have one, and the oldest snapshot too while the rule has
 * counts left. Times are taken in UTC, the zone fleet's jobs run in. `fleet backup prune` checks
 * restic's result against this. Pure.
 */
import type { BackupConfig } from "../config/schema";

export type Retention = BackupConfig["retention"];

function isoWeek(d: Date): number {
  // the Thursday of the date's week decides its ISO year
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return t.getUTCFullYear() * 100 + week;
}

const BUCKETS: [keyof Retention, (d: Date) => number][] = [
  ["hourly", (d) => ((d.getUTCFullYear() * 100 + d.getUTCMonth() + 1) * 100 + d.getUTCDate()) * 100 + d.getUTCHours()],
  ["daily", (d) => (d.getUTCFullYear() * 100 + d.getUTCMonth() + 1) * 100 + d.getUTCDate()],
  ["weekly", isoWeek],
  ["monthly", (d) => d.getUTCFullYear() * 100 + d.getUTCMonth() + 1],
];

/** The ids of the snapshots `policy` keeps, among `snapshots` (any order). */
export function keptByPolicy(snapshots: { id: string; time: string }[], policy: Retention): Set<string> {
  const list = [...snapshots].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  const counts = BUCKETS.map(([k]) => policy[k]);
  const last: (number | undefined)[] = BUCKETS.map(() => undefined);
  const keep = new Set<string>();
  list.forEach((s, nr) => {
    const d = new Date(s.time);
    BUCKETS.forEach(([, bucket], i) => {
      if (counts[i]! <= 0) return;
      const val = bucket(d);
      if (val !== last[i] || nr === list.length - 1) {
        keep.add(s.id);
        last[i] = val;
        counts[i]!--;
      }
    });
  });
  return keep;
}

/** restic's options for the policy. */
export function forgetArgs(policy: Retention): string[] {
  // one customer's repository has one host: all its snapshots are one group, whatever their tags or paths
  return ["--group-by", "host", "--keep-hourly", String(policy.hourly), "--keep-daily", String(policy.daily),
    "--keep-weekly", String(policy.weekly), "--keep-monthly", String(policy.monthly)];
}
