/** trivy's JSON report read into findings (severities, deduplication, order, counts); trivy's command lines and environment. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { countBySeverity, formatCounts, parseTrivyReport, severityAtLeast, toSeverity } from "../../src/supplyChain/findings";
import { sbomArgs, scanArgs } from "../../src/supplyChain/scanner";
import { lastLines, trivyEnv, trivyPath } from "../../src/supplyChain/trivy";

/** the shape of `trivy image --format json` (schema 2), trimmed to what is read */
function report(...results: { Target: string; Class: string; Vulnerabilities?: Record<string, unknown>[] }[]) {
  return { SchemaVersion: 2, ArtifactName: "hardened-fleet/customer-app:x", ArtifactType: "container_image", Results: results };
}

const zlib = {
  VulnerabilityID: "CVE-2023-45853",
  PkgName: "zlib1g",
  InstalledVersion: "1:1.2.13.dfsg-1",
  Status: "will_not_fix",
  Severity: "CRITICAL",
  Title: "MiniZip in zlib through 1.3 has an integer overflow",
};

describe("trivy findings", () => {
  it("reads each vulnerability with its package, versions, severity, title and status", () => {
    const got = parseTrivyReport(report({ Target: "x (debian 12.12)", Class: "os-pkgs", Vulnerabilities: [
      zlib,
      { VulnerabilityID: "CVE-2024-0001", PkgName: "libc6", InstalledVersion: "2.36-9", FixedVersion: "2.36-9+deb12u4", Severity: "MEDIUM", Status: "fixed" },
    ] }));
    assert.deepEqual(got, [
      { id: "CVE-2023-45853", package: "zlib1g", installedVersion: "1:1.2.13.dfsg-1", severity: "CRITICAL", title: zlib.Title, status: "will_not_fix" },
      { id: "CVE-2024-0001", package: "libc6", installedVersion: "2.36-9", fixedVersion: "2.36-9+deb12u4", severity: "MEDIUM", status: "fixed" },
    ]);
  });

  it("sorts worst first, then by id; an unknown or missing severity is UNKNOWN and sorts last", () => {
    const got = parseTrivyReport(report({ Target: "t", Class: "os-pkgs", Vulnerabilities: [
      { VulnerabilityID: "CVE-2020-2", PkgName: "a", InstalledVersion: "1", Severity: "LOW" },
      { VulnerabilityID: "CVE-2020-9", PkgName: "a", InstalledVersion: "1", Severity: "negligible" },
      { VulnerabilityID: "CVE-2020-3", PkgName: "a", InstalledVersion: "1" },
      { VulnerabilityID: "CVE-2020-5", PkgName: "a", InstalledVersion: "1", Severity: "high" },
      { VulnerabilityID: "CVE-2020-1", PkgName: "a", InstalledVersion: "1", Severity: "HIGH" },
    ] }));
    assert.deepEqual(got.map((f) => [f.id, f.severity]), [
      ["CVE-2020-1", "HIGH"], ["CVE-2020-5", "HIGH"], ["CVE-2020-2", "LOW"], ["CVE-2020-3", "UNKNOWN"], ["CVE-2020-9", "UNKNOWN"],
    ]);
  });

  it("one finding per advisory, package and version, across targets; the worse severity wins; other versions stay apart", () => {
    const got = parseTrivyReport(report(
      { Target: "x (debian 12.12)", Class: "os-pkgs", Vulnerabilities: [{ ...zlib, Severity: "MEDIUM" }, zlib] },
      { Target: "Python", Class: "lang-pkgs", Vulnerabilities: [
        { VulnerabilityID: "GHSA-aaaa", PkgName: "requests", InstalledVersion: "2.31.0", Severity: "MEDIUM" },
        { VulnerabilityID: "GHSA-aaaa", PkgName: "requests", InstalledVersion: "2.31.0", Severity: "MEDIUM" },
        { VulnerabilityID: "GHSA-aaaa", PkgName: "requests", InstalledVersion: "2.30.0", Severity: "MEDIUM" },
      ] },
    ));
    assert.deepEqual(got.map((f) => `${f.id} ${f.package} ${f.installedVersion} ${f.severity}`), [
      "CVE-2023-45853 zlib1g 1:1.2.13.dfsg-1 CRITICAL",
      "GHSA-aaaa requests 2.30.0 MEDIUM",
      "GHSA-aaaa requests 2.31.0 MEDIUM",
    ]);
  });

  it("a report without results or vulnerabilities has no findings; something else is an error", () => {
    assert.deepEqual(parseTrivyReport({ SchemaVersion: 2, ArtifactName: "x" }), []);
    assert.deepEqual(parseTrivyReport(report({ Target: "x (debian 12.12)", Class: "os-pkgs" })), []);
    assert.throws(() => parseTrivyReport([]), /not a trivy JSON report/);
    assert.throws(() => parseTrivyReport({ Results: {} }), /Results is not a list/);
    assert.throws(() => parseTrivyReport(report({ Target: "t", Class: "os-pkgs", Vulnerabilities: [{ PkgName: "a" }] })), /without VulnerabilityID/);
  });

  it("severity thresholds", () => {
    assert.equal(severityAtLeast("CRITICAL", "CRITICAL"), true);
    assert.equal(severityAtLeast("HIGH", "CRITICAL"), false);
    assert.equal(severityAtLeast("HIGH", "MEDIUM"), true);
    assert.equal(severityAtLeast("UNKNOWN", "LOW"), false);
    assert.equal(severityAtLeast("LOW", "UNKNOWN"), true);
    assert.equal(toSeverity("Critical"), "CRITICAL");
    assert.equal(toSeverity(7), "UNKNOWN");
  });

  it("counts by severity, every severity present", () => {
    const counts = countBySeverity([
      { id: "a", package: "p", installedVersion: "1", severity: "CRITICAL" },
      { id: "b", package: "p", installedVersion: "1", severity: "CRITICAL" },
      { id: "c", package: "p", installedVersion: "1", severity: "LOW" },
    ]);
    assert.deepEqual(counts, { UNKNOWN: 0, LOW: 1, MEDIUM: 0, HIGH: 0, CRITICAL: 2 });
    assert.equal(formatCounts(counts), "2 CRITICAL, 1 LOW");
    assert.equal(formatCounts(countBySeverity([])), "none");
  });
});

describe("trivy's command lines and environment", () => {
  const offline = ["--skip-db-update", "--skip-java-db-update", "--offline-scan", "--skip-version-check", "--disable-telemetry"];

  it("scans offline from the engine, vulnerabilities only, the image after --", () => {
    const args = scanArgs("-x:evil", "/c");
    for (const flag of offline) assert.ok(args.includes(flag), flag);
    assert.deepEqual(args.slice(args.indexOf("--image-src"), args.indexOf("--image-src") + 2), ["--image-src", "docker"]);
    assert.deepEqual(args.slice(args.indexOf("--cache-dir"), args.indexOf("--cache-dir") + 2), ["--cache-dir", "/c"]);
    assert.deepEqual(args.slice(args.indexOf("--scanners"), args.indexOf("--scanners") + 2), ["--scanners", "vuln"]);
    assert.deepEqual(args.slice(-2), ["--", "-x:evil"]);
    assert.equal(args[0], "image");
  });

  it("the SBOM: CycloneDX, no --scanners (trivy then leaves vulnerabilities out)", () => {
    const args = sbomArgs("img:1", "/c");
    for (const flag of offline) assert.ok(args.includes(flag), flag);
    assert.deepEqual(args.slice(args.indexOf("--format"), args.indexOf("--format") + 2), ["--format", "cyclonedx"]);
    assert.equal(args.includes("--scanners"), false);
  });

  it("trivy sees the Docker connection and the base, not fleet's secrets nor TRIVY_* settings", () => {
    const env = trivyEnv({ PATH: "/bin", HOME: "/root", DOCKER_HOST: "unix:///a.sock", STRIPE_WEBHOOK_SECRET: "s", TRIVY_SEVERITY: "LOW", PULUMI_CONFIG_PASSPHRASE: "p" }, "tcp://127.0.0.1:2375");
    assert.deepEqual(env, { PATH: "/bin", HOME: "/root", DOCKER_HOST: "tcp://127.0.0.1:2375" });
    assert.equal(trivyEnv({ DOCKER_HOST: "unix:///a.sock" }).DOCKER_HOST, "unix:///a.sock");
  });

  it("not built: the error names the script", () => {
    assert.throws(() => trivyPath({ HARDENED_FLEET_CACHE: "/nonexistent-hf25" }), /trivy 0\.74\.0 is not built .*run scripts\/ensure-trivy\.sh \(npm run setup does it\)/);
  });

  it("an error's tail: the last non-empty lines", () => {
    assert.equal(lastLines("a\n\nb  \nc\n\n", 2), "b\nc");
  });
});
