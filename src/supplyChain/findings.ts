/**
 * A vulnerability scan's findings, read from trivy's JSON report (`trivy image --format json`):
 * one finding per advisory and installed package, whatever target of the image it was found in.
 * Pure.
 */

export const SEVERITIES = ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface Finding {
  /** the advisory: CVE-…, GHSA-…, TEMP-… */
  id: string;
  /** the package as the scanner names it (Debian: the binary package, e.g. zlib1g) */
  package: string;
  installedVersion: string;
  fixedVersion?: string;
  severity: Severity;
  title?: string;
  /** the vendor's status: affected, fixed, will_not_fix, fix_deferred, end_of_life ... */
  status?: string;
}

/** `s` as a Severity; anything else (absent, misspelt, a vendor's own word) is UNKNOWN. */
export function toSeverity(s: unknown): Severity {
  const upper = typeof s === "string" ? s.toUpperCase() : "";
  return (SEVERITIES as readonly string[]).includes(upper) ? (upper as Severity) : "UNKNOWN";
}

function rank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/** `s` is `threshold` or worse. */
export function severityAtLeast(s: Severity, threshold: Severity): boolean {
  return rank(s) >= rank(threshold);
}

/** Worst first, then by id, package and version. */
export function compareFindings(a: Finding, b: Finding): number {
  return rank(b.severity) - rank(a.severity) || cmp(a.id, b.id) || cmp(a.package, b.package) || cmp(a.installedVersion, b.installedVersion);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function text(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * The findings of a trivy JSON report (an object with `Results[].Vulnerabilities[]`), deduplicated
 * by advisory, package and installed version (the same library found twice in one image is one
 * finding; the worse severity wins), worst first. A report without results has none; anything that
 * is not a trivy report is an error.
 */
export function parseTrivyReport(json: unknown): Finding[] {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error("not a trivy JSON report: expected an object");
  const results = (json as { Results?: unknown }).Results;
  if (results === undefined || results === null) return [];
  if (!Array.isArray(results)) throw new Error("not a trivy JSON report: Results is not a list");
  const byKey = new Map<string, Finding>();
  for (const result of results) {
    const vulns = (result as { Vulnerabilities?: unknown } | null)?.Vulnerabilities;
    if (!Array.isArray(vulns)) continue;
    for (const v of vulns as Record<string, unknown>[]) {
      const id = text(v?.VulnerabilityID);
      const pkg = text(v?.PkgName);
      if (!id || !pkg) throw new Error(`not a trivy JSON report: a vulnerability without VulnerabilityID or PkgName: ${JSON.stringify(v).slice(0, 200)}`);
      const finding: Finding = { id, package: pkg, installedVersion: text(v.InstalledVersion) ?? "", severity: toSeverity(v.Severity) };
      const fixed = text(v.FixedVersion);
      if (fixed) finding.fixedVersion = fixed;
      const title = text(v.Title);
      if (title) finding.title = title;
      const status = text(v.Status);
      if (status) finding.status = status;
      const key = `${id}\0${pkg}\0${finding.installedVersion}`;
      const seen = byKey.get(key);
      if (!seen || rank(finding.severity) > rank(seen.severity)) byKey.set(key, finding);
    }
  }
  return [...byKey.values()].sort(compareFindings);
}

export type SeverityCounts = Record<Severity, number>;

/** How many findings of each severity (every severity present, 0 when none). */
export function countBySeverity(findings: readonly Finding[]): SeverityCounts {
  const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as SeverityCounts;
  for (const f of findings) counts[f.severity]++;
  return counts;
}

/** "1 CRITICAL, 2 HIGH" (worst first, severities with none left out); "none" for no findings. */
export function formatCounts(counts: SeverityCounts): string {
  const parts = [...SEVERITIES].reverse().filter((s) => counts[s] > 0).map((s) => `${counts[s]} ${s}`);
  return parts.length ? parts.join(", ") : "none";
}
