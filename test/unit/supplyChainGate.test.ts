/** The vulnerability gate: thresholds, waivers (package, expiry in UTC), the refusal's wording. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Finding } from "../../src/supplyChain/findings";
import { evaluateFindings, formatGateRefusal, isValidExpiry, type GatePolicy } from "../../src/supplyChain/gate";

const zlib: Finding = { id: "CVE-2023-45853", package: "zlib1g", installedVersion: "1:1.2.13.dfsg-1", severity: "CRITICAL", status: "will_not_fix" };
const high: Finding = { id: "CVE-2024-1111", package: "libssl3", installedVersion: "3.0.11-1", fixedVersion: "3.0.13-1", severity: "HIGH" };
const low: Finding = { id: "CVE-2022-0001", package: "tar", installedVersion: "1.34", severity: "LOW" };
const unknown: Finding = { id: "TEMP-0001", package: "tar", installedVersion: "1.34", severity: "UNKNOWN" };
const all = [low, zlib, unknown, high];
const day = (s: string) => new Date(s);

function policy(failOn: GatePolicy["failOn"], allow: GatePolicy["allow"] = []): GatePolicy {
  return { failOn, allow };
}

describe("vulnerability gate", () => {
  it("blocks findings at or above failOn, worst first, and counts every finding", () => {
    const r = evaluateFindings(all, policy("CRITICAL"), day("2026-01-01T12:00:00Z"));
    assert.equal(r.ok, false);
    assert.deepEqual(r.blocking, [zlib]);
    assert.deepEqual(r.counts, { UNKNOWN: 1, LOW: 1, MEDIUM: 0, HIGH: 1, CRITICAL: 1 });
    assert.deepEqual(evaluateFindings(all, policy("HIGH"), day("2026-01-01")).blocking, [zlib, high]);
    assert.deepEqual(evaluateFindings(all, policy("LOW"), day("2026-01-01")).blocking, [zlib, high, low]);
    // UNKNOWN is the lowest threshold: everything blocks, the unknown too
    assert.deepEqual(evaluateFindings(all, policy("UNKNOWN"), day("2026-01-01")).blocking.map((f) => f.id), [zlib.id, high.id, low.id, unknown.id]);
  });

  it("passes with no findings, with findings below the threshold, and with failOn none", () => {
    assert.equal(evaluateFindings([], policy("LOW"), day("2026-01-01")).ok, true);
    assert.equal(evaluateFindings([high, low], policy("CRITICAL"), day("2026-01-01")).ok, true);
    const none = evaluateFindings(all, policy("none"), day("2026-01-01"));
    assert.equal(none.ok, true);
    assert.equal(none.counts.CRITICAL, 1);
  });

  it("a waiver for the advisory lets it through; one for another package or another advisory does not", () => {
    const waiver = { id: "CVE-2023-45853", package: "zlib1g", reason: "minizip is not built into zlib1g", expires: "2026-03-31" };
    const r = evaluateFindings(all, policy("CRITICAL", [waiver]), day("2026-01-01"));
    assert.equal(r.ok, true);
    assert.deepEqual(r.waived, [{ finding: zlib, waiver }]);
    // any package when the waiver names none; the id's case does not matter
    assert.equal(evaluateFindings(all, policy("CRITICAL", [{ id: "cve-2023-45853", reason: "r", expires: "2026-03-31" }]), day("2026-01-01")).ok, true);
    const other = evaluateFindings(all, policy("CRITICAL", [{ ...waiver, package: "zlib1g-dev" }]), day("2026-01-01"));
    assert.equal(other.ok, false);
    assert.deepEqual(other.blocking, [zlib]);
    assert.deepEqual(other.expired, []);
    assert.equal(evaluateFindings(all, policy("CRITICAL", [{ ...waiver, id: "CVE-2023-45854" }]), day("2026-01-01")).ok, false);
  });

  it("a waiver applies through its expiry day (UTC) and blocks again from the next day, as an expired waiver", () => {
    const waiver = { id: zlib.id, reason: "minizip is not built", expires: "2026-03-31" };
    const at = (t: string) => evaluateFindings([zlib], policy("CRITICAL", [waiver]), day(t));
    assert.equal(at("2026-03-31T00:00:00Z").ok, true);
    assert.equal(at("2026-03-31T23:59:59.999Z").ok, true);
    const after = at("2026-04-01T00:00:00Z");
    assert.equal(after.ok, false);
    assert.deepEqual(after.blocking, [zlib]);
    assert.deepEqual(after.expired, [{ finding: zlib, waiver }]);
    assert.deepEqual(after.waived, []);
    // the calendar day is UTC's: 23:30 on the 31st in UTC-2 is already 1 April in UTC
    assert.equal(at("2026-03-31T23:30:00-02:00").ok, false);
  });

  it("a valid waiver wins over an expired one for the same finding", () => {
    const old = { id: zlib.id, reason: "first look", expires: "2025-12-31" };
    const renewed = { id: zlib.id, reason: "still not built", expires: "2026-06-30" };
    const r = evaluateFindings([zlib], policy("CRITICAL", [old, renewed]), day("2026-02-01"));
    assert.equal(r.ok, true);
    assert.deepEqual(r.waived, [{ finding: zlib, waiver: renewed }]);
  });

  it("a waiver with a malformed expiry date is an error, even when nothing needs it", () => {
    for (const expires of ["2026-02-30", "2026-3-31", "31.03.2026", ""]) {
      assert.equal(isValidExpiry(expires), false, expires);
      assert.throws(() => evaluateFindings([], policy("CRITICAL", [{ id: "CVE-1", reason: "r", expires }]), day("2026-01-01")), /expected a date YYYY-MM-DD/);
    }
    assert.equal(isValidExpiry("2028-02-29"), true);
  });

  it("the refusal names each blocking advisory, package, version and severity, the expired waivers and the fix", () => {
    const waiver = { id: zlib.id, package: "zlib1g", reason: "minizip is not built", expires: "2026-03-31" };
    const r = evaluateFindings(all, policy("HIGH", [waiver]), day("2026-04-02"));
    const text = formatGateRefusal("127.0.0.1:5000/hardened-fleet/customer-app@sha256:abc", r);
    assert.match(text, /refusing to promote 127\.0\.0\.1:5000\/hardened-fleet\/customer-app@sha256:abc: 2 findings at or above supplyChain\.failOn \(HIGH\)/);
    assert.match(text, /CVE-2023-45853 in zlib1g 1:1\.2\.13\.dfsg-1: CRITICAL, no fixed version \(will_not_fix\); its waiver expired 2026-03-31/);
    assert.match(text, /CVE-2024-1111 in libssl3 3\.0\.11-1: HIGH, fixed in 3\.0\.13-1/);
    assert.doesNotMatch(text, /CVE-2022-0001/);
    assert.match(text, /upgrade the base\/package and roll out again, or add a waiver under supplyChain\.allow with id, reason and expires/);
  });
});
