/** supplyChain settings (config schema), the gate policy made from them, and the pure parts of the operator's view. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { parseEnvironmentConfig } from "../../src/config/load";
import { baseState, findingsColumn } from "../../src/fleet/supplyChain";
import { countBySeverity, type Finding } from "../../src/supplyChain/findings";
import { evaluateFindings } from "../../src/supplyChain/gate";
import { gatePolicy } from "../../src/supplyChain/promotion";
import { generateSigningKey } from "../../src/supplyChain/signature";
import { rawEnvironment } from "../support/fixtures";

function problems(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail("expected a ConfigError");
}

const withSupplyChain = (stack: "staging" | "prod", supplyChain: unknown) => ({ ...rawEnvironment(stack), supplyChain });

describe("supplyChain config", () => {
  it("defaults: critical stops a promotion, no waiver, the user's cache, the source stack's key", () => {
    const { supplyChain: _demo, ...raw } = rawEnvironment("prod") as Record<string, unknown>;
    const prod = parseEnvironmentConfig(raw);
    assert.deepEqual(prod.supplyChain, { failOn: "critical", allow: [] });
  });

  it("accepts a waiver with id, package, reason and expiry, and a pinned P-256 public key", () => {
    const { publicKeyPem } = generateSigningKey();
    const env = parseEnvironmentConfig(withSupplyChain("prod", {
      failOn: "high", publicKey: publicKeyPem, database: ".fleet/trivy-db",
      allow: [{ id: "CVE-2023-45853", package: "zlib1g", reason: "minizip is not built into zlib1g", expires: "2027-01-31" }],
    }));
    assert.equal(env.supplyChain.failOn, "high");
    assert.equal(env.supplyChain.allow[0]!.package, "zlib1g");
  });

  const bad: { name: string; supplyChain: unknown; path: RegExp; message: RegExp }[] = [
    { name: "a waiver without expiry", supplyChain: { allow: [{ id: "CVE-2023-45853", reason: "accepted for now" }] },
      path: /supplyChain\.allow\[0\]\.expires/, message: /YYYY-MM-DD|expected string/ },
    { name: "a waiver expiring on no real day", supplyChain: { allow: [{ id: "CVE-2023-45853", reason: "accepted for now", expires: "2027-02-30" }] },
      path: /supplyChain\.allow\[0\]\.expires/, message: /real calendar date/ },
    { name: "a waiver without a reason", supplyChain: { allow: [{ id: "CVE-2023-45853", reason: "ok", expires: "2027-01-01" }] },
      path: /supplyChain\.allow\[0\]\.reason/, message: /say why/ },
    { name: "a waiver naming no advisory", supplyChain: { allow: [{ id: "zlib", reason: "accepted for now", expires: "2027-01-01" }] },
      path: /supplyChain\.allow\[0\]\.id/, message: /advisory id/ },
    { name: "an unknown severity", supplyChain: { failOn: "severe" }, path: /supplyChain\.failOn/, message: /critical/ },
    { name: "a private key pasted as the public key", supplyChain: { publicKey: generateSigningKey().privateKeyPem },
      path: /supplyChain\.publicKey/, message: /fleet signing-key/ },
    { name: "an unknown key", supplyChain: { failon: "high" }, path: /supplyChain/, message: /failon/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}, naming the key and the fix`, () => {
      const text = problems(() => parseEnvironmentConfig(withSupplyChain("staging", c.supplyChain)));
      assert.match(text, c.path);
      assert.match(text, c.message);
    });
  }

  it("production cannot turn the gate off", () => {
    const text = problems(() => parseEnvironmentConfig(withSupplyChain("prod", { failOn: "none" })));
    assert.match(text, /supplyChain\.failOn/);
    assert.match(text, /cannot be 'none' in production/);
  });
});

const finding = (id: string, severity: Finding["severity"], pkg = "zlib1g"): Finding => ({ id, package: pkg, installedVersion: "1:1.2.13.dfsg-1", severity });

describe("gate policy from config", () => {
  it("maps the config's lowercase severities to the scanner's and keeps every waiver", () => {
    const policy = gatePolicy({ failOn: "high", allow: [{ id: "CVE-1-1", reason: "accepted for now", expires: "2027-01-01" }] });
    assert.equal(policy.failOn, "HIGH");
    assert.equal(policy.allow.length, 1);
    const result = evaluateFindings([finding("CVE-2023-45853", "CRITICAL"), finding("CVE-2020-1", "MEDIUM")], policy, new Date("2026-12-06T12:00:00Z"));
    assert.equal(result.ok, false);
    assert.deepEqual(result.blocking.map((f) => f.id), ["CVE-2023-45853"]);
  });

  it("none never blocks", () => {
    const result = evaluateFindings([finding("CVE-2023-45853", "CRITICAL")], gatePolicy({ failOn: "none", allow: [] }), new Date());
    assert.equal(result.ok, true);
  });
});

describe("fleet list's findings column and fleet bases", () => {
  it("says not scanned, zero, or the total with the worst severities", () => {
    assert.equal(findingsColumn(undefined), "not scanned");
    assert.equal(findingsColumn({ imageRef: "sha256:x", scannedAt: "", counts: countBySeverity([]), findings: [] }), "0");
    const two = [finding("CVE-2023-45853", "CRITICAL"), finding("CVE-2020-1", "LOW", "libc6")];
    const column = findingsColumn({ imageRef: "sha256:x", scannedAt: "", counts: countBySeverity(two), findings: two });
    assert.match(column, /^2 \(/);
    assert.match(column, /1 critical/i);
  });

  it("a base is stale when its newest digest differs from the one the image was built from", () => {
    assert.equal(baseState("sha256:a", "sha256:a"), "current");
    assert.equal(baseState("sha256:a", "sha256:b"), "stale");
    assert.equal(baseState(undefined, "sha256:b"), "unknown");
    assert.equal(baseState("sha256:a", undefined), "unknown");
  });
});

describe("waiver dates as Pulumi hands them over", () => {
  it("an unquoted YAML date (a timestamp to Pulumi's reader) is read as that day", () => {
    const env = parseEnvironmentConfig(withSupplyChain("prod", {
      allow: [{ id: "CVE-2023-45853", reason: "minizip is not built into zlib1g", expires: "2027-01-31 00:00:00 +0000 UTC" }],
    }));
    assert.equal(env.supplyChain.allow[0]!.expires, "2027-01-31");
    assert.match(problems(() => parseEnvironmentConfig(withSupplyChain("prod", {
      allow: [{ id: "CVE-2023-45853", reason: "minizip is not built into zlib1g", expires: "2027-01-31 13:00:00 +0000 UTC" }],
    }))), /YYYY-MM-DD/);
  });
});
