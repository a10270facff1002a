/**
 * The vulnerability gate prod applies before it promotes an image: findings at or above
 * `supplyChain.failOn` block, unless a waiver under `supplyChain.allow` names them and has not
 * expired. An expired waiver blocks again. Pure.
 */
import { countBySeverity, compareFindings, severityAtLeast, type Finding, type Severity, type SeverityCounts } from "./findings";

export interface Waiver {
  /** the advisory id, as the scanner reports it (CVE-2023-45853) */
  id: string;
  /** only this package (as the scanner names it); every package when absent */
  package?: string;
  reason: string;
  /** YYYY-MM-DD, the last day (UTC) the waiver applies */
  expires: string;
}

export interface GatePolicy {
  failOn: Severity | "none";
  allow: Waiver[];
}

export interface WaivedFinding {
  finding: Finding;
  waiver: Waiver;
}

export interface GateResult {
  ok: boolean;
  failOn: Severity | "none";
  /** every finding that stops the image, those with an expired waiver included (worst first) */
  blocking: Finding[];
  /** findings at or above failOn with a waiver that still applies */
  waived: WaivedFinding[];
  /** blocking findings whose only waivers have expired */
  expired: WaivedFinding[];
  /** all findings by severity, below the threshold too */
  counts: SeverityCounts;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** `s` is a real calendar date written YYYY-MM-DD. */
export function isValidExpiry(s: string): boolean {
  const m = DAY.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === s;
}

/** The UTC calendar day of `d`, YYYY-MM-DD. */
export function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/**
 * A waiver expiring on day D still applies on all of D in UTC, and no longer from D+1 00:00 UTC.
 * YYYY-MM-DD strings compare as dates.
 */
export function waiverApplies(w: Waiver, today: Date): boolean {
  if (!isValidExpiry(w.expires)) throw new Error(`supplyChain.allow: waiver ${w.id} has expires "${w.expires}": expected a date YYYY-MM-DD`);
  return utcDay(today) <= w.expires;
}

function matches(w: Waiver, f: Finding): boolean {
  return w.id.toUpperCase() === f.id.toUpperCase() && (w.package === undefined || w.package === f.package);
}

/** The latest-expiring of `ws`. */
function latest(ws: Waiver[]): Waiver | undefined {
  return [...ws].sort((a, b) => (a.expires < b.expires ? 1 : a.expires > b.expires ? -1 : 0))[0];
}

export function evaluateFindings(findings: readonly Finding[], policy: GatePolicy, today: Date): GateResult {
  const blocking: Finding[] = [];
  const waived: WaivedFinding[] = [];
  const expired: WaivedFinding[] = [];
  for (const waiver of policy.allow) waiverApplies(waiver, today); // a malformed date fails even when unused
  const sorted = [...findings].sort(compareFindings);
  if (policy.failOn !== "none") {
    for (const finding of sorted) {
      if (!severityAtLeast(finding.severity, policy.failOn)) continue;
      const candidates = policy.allow.filter((w) => matches(w, finding));
      const valid = latest(candidates.filter((w) => waiverApplies(w, today)));
      if (valid) {
        waived.push({ finding, waiver: valid });
        continue;
      }
      blocking.push(finding);
      const lapsed = latest(candidates);
      if (lapsed) expired.push({ finding, waiver: lapsed });
    }
  }
  return { ok: blocking.length === 0, failOn: policy.failOn, blocking, waived, expired, counts: countBySeverity(findings) };
}

function describe(f: Finding): string {
  const fix = f.fixedVersion ? `fixed in ${f.fixedVersion}` : "no fixed version";
  return `${f.id} in ${f.package} ${f.installedVersion || "(version unknown)"}: ${f.severity}, ${fix}${f.status ? ` (${f.status})` : ""}`;
}

/** Why prod refuses `imageRef`, naming every blocking advisory and each expired waiver, and the way out. */
export function formatGateRefusal(imageRef: string, result: GateResult): string {
  const n = result.blocking.length;
  const lines = [`refusing to promote ${imageRef}: ${n} finding${n === 1 ? "" : "s"} at or above supplyChain.failOn (${result.failOn}):`];
  for (const f of result.blocking) {
    const lapsed = result.expired.find((e) => e.finding === f);
    lines.push(`  - ${describe(f)}${lapsed ? `; its waiver expired ${lapsed.waiver.expires} (reason was: ${lapsed.waiver.reason})` : ""}`);
  }
  if (result.waived.length) lines.push(`  (${result.waived.length} more waived under supplyChain.allow: ${result.waived.map((w) => `${w.finding.id} until ${w.waiver.expires}`).join(", ")})`);
  const f = result.blocking[0];
  lines.push(
    "Fix: upgrade the base/package and roll out again, or add a waiver under supplyChain.allow with id, reason and expires (YYYY-MM-DD)" +
      (f ? `, e.g. { id: ${f.id}, package: ${f.package}, reason: "<why it may ship>", expires: <YYYY-MM-DD> }` : ""),
  );
  return lines.join("\n");
}
