/**
 * The watcher's pure parts around the state machine: engine events turned into observations, the
 * checks of what fleet owns (stale backups, failed drills, late certificates, failed webhook jobs) and
 * their one-alert-per-incident step, the probe's failure kinds, and the metric names of the rules.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { parseEnvironmentConfig } from "../../src/config/load";
import type { BackupRecord } from "../../src/backup/records";
import { backupChecks, certificateCheck, webhookJobsCheck } from "../../src/watch/checks";
import { cursorTime, customerEventOf } from "../../src/watch/events";
import { checkStep, healthKey, initialHealth, type CustomerHealth } from "../../src/watch/health";
import { WatchMetrics } from "../../src/watch/metrics";
import { classify } from "../../src/watch/probe";

const labels = { "io.hardened-fleet.role": "customer-service", "io.hardened-fleet.environment": "prod", "io.hardened-fleet.customer": "acme", name: "hf-prod-acme-1a2b" };
const NOW = new Date("2026-12-06T12:00:00.000Z");
const hoursAgo = (h: number) => new Date(NOW.getTime() - h * 3600_000).toISOString();

describe("engine events", () => {
  it("turns die (with OOMKilled from the inspection), oom, start and health_status into observations of the labelled customer", () => {
    const base = { Type: "container", timeNano: "1765022400123456789", Actor: { ID: "c1", Attributes: { ...labels, exitCode: "137" } } };
    const died = customerEventOf({ ...base, Action: "die" }, { oomKilled: true });
    assert.deepEqual(died?.observation, { kind: "died", at: "2025-12-06T12:00:00.123Z", exitCode: 137, oomKilled: true, container: "hf-prod-acme-1a2b" });
    assert.equal(died?.cursor, "1765022400123456789");
    assert.equal(died?.customer, "acme");
    assert.equal(customerEventOf({ ...base, Action: "oom" })?.observation.kind, "oom");
    assert.equal(customerEventOf({ ...base, Action: "start" })?.observation.kind, "started");
    assert.deepEqual(customerEventOf({ ...base, Action: "health_status: unhealthy" }, { healthOutput: "unhealthy: timed out" })?.observation,
      { kind: "health", at: "2025-12-06T12:00:00.123Z", healthy: false, container: "hf-prod-acme-1a2b", output: "unhealthy: timed out" });
    assert.equal((customerEventOf({ ...base, Action: "health_status: healthy" })?.observation as { healthy: boolean }).healthy, true);
  });

  it("ignores other actions, other roles (the edge proxy, backup jobs) and containers without a customer", () => {
    const base = { Type: "container", timeNano: "1", Actor: { Attributes: labels } };
    assert.equal(customerEventOf({ ...base, Action: "exec_start: sh" }), undefined);
    assert.equal(customerEventOf({ ...base, Action: "die", Actor: { Attributes: { ...labels, "io.hardened-fleet.role": "edge-proxy" } } }), undefined);
    assert.equal(customerEventOf({ ...base, Action: "die", Actor: { Attributes: { "io.hardened-fleet.role": "customer-service" } } }), undefined);
    assert.equal(customerEventOf({ ...base, Type: "network", Action: "connect" }), undefined);
  });

  it("keeps nanoseconds in the cursor, whatever the engine sends (time in seconds only)", () => {
    assert.equal(customerEventOf({ Action: "start", time: 1765022400, Actor: { Attributes: labels } })?.cursor, "1765022400000000000");
    assert.equal(cursorTime("1765022400999999999"), "2025-12-06T12:00:00.999Z");
  });
});

describe("checks of what fleet owns", () => {
  const rec = (kind: BackupRecord["kind"], ok: boolean, h: number, error?: string): BackupRecord =>
    ({ kind, customer: "acme", at: hoursAgo(h), ok, durationMs: 1, ...(error ? { error } : {}) }) as BackupRecord;

  it("backups are stale past two intervals, or when none ever succeeded and the last attempt failed; a failed drill is its own check", () => {
    const interval = 6 * 3600;
    const fresh = backupChecks(["acme"], [rec("backup", true, 7), rec("drill", true, 1)], interval, NOW);
    assert.deepEqual(fresh.map((c) => [c.check, c.active]), [["backup", false], ["drill", false]]);
    const stale = backupChecks(["acme"], [rec("backup", true, 13), rec("backup", false, 1, "repository unreachable")], interval, NOW);
    assert.equal(stale[0]!.active, true);
    assert.match(stale[0]!.reason, /13h 0m old .*repository unreachable/);
    const never = backupChecks(["acme"], [rec("backup", false, 1, "wrong password")], interval, NOW);
    assert.match(never[0]!.reason, /no backup has succeeded yet.*wrong password/);
    assert.equal(backupChecks(["acme"], [], interval, NOW)[0]!.active, false, "a customer with no attempt yet is not stale");
    const drill = backupChecks(["acme"], [rec("backup", true, 1), rec("drill", true, 30), rec("drill", false, 2, "snapshot differs")], interval, NOW);
    assert.equal(drill[1]!.active, true);
    assert.match(drill[1]!.reason, /snapshot differs/);
  });

  it("a certificate is late within the warning days and the last third of its lifetime: a 12-hour local one with 8 hours left is not", () => {
    const cert = (lifetimeH: number, leftH: number) => ({ validFrom: hoursAgo(lifetimeH - leftH), validTo: hoursAgo(-leftH) });
    assert.equal(certificateCheck("a.example.com", cert(90 * 24, 10 * 24), 14, NOW).active, true);
    assert.equal(certificateCheck("a.example.com", cert(90 * 24, 40 * 24), 14, NOW).active, false);
    assert.equal(certificateCheck("a.staging.localhost", cert(12, 8), 14, NOW).active, false);
    assert.equal(certificateCheck("a.staging.localhost", cert(12, 2), 14, NOW).active, true);
    assert.match(certificateCheck("a.staging.localhost", cert(12, -1), 14, NOW).reason, /expired/);
  });

  it("failed webhook jobs hold until retried, listed in the reason", () => {
    assert.equal(webhookJobsCheck([]).active, false);
    const c = webhookJobsCheck([{ id: 7, customer: "acme", error: "pulumi up failed\nstack trace" }]);
    assert.equal(c.active, true);
    assert.equal(c.reason, "1 failed job(s): #7 acme: pulumi up failed");
  });

  it("a check alerts once when it begins to hold and once when it stops, with the same incident", () => {
    let s: CustomerHealth = { ...initialHealth("prod", "acme", hoursAgo(3)), check: "backup" };
    assert.equal(healthKey(s), "backup:acme");
    let r = checkStep(s, false, "", hoursAgo(3));
    assert.deepEqual(r.alerts, []);
    r = checkStep(r.state, true, "stale 13h", hoursAgo(2));
    assert.equal(r.alerts.length, 1);
    const down = r.alerts[0]!;
    assert.equal(down.check, "backup");
    r = checkStep(r.state, true, "stale 14h", hoursAgo(1));
    assert.deepEqual(r.alerts, []);
    assert.equal(r.state.reason, "stale 14h");
    r = checkStep(r.state, false, "", hoursAgo(0));
    assert.equal(r.alerts.length, 1);
    assert.equal(r.alerts[0]!.kind, "recovered");
    assert.equal(r.alerts[0]!.incident, down.incident);
    assert.equal(r.alerts[0]!.durationSeconds, 7200);
    s = r.state;
    assert.equal(s.status, "up");
  });
});

describe("probe failures", () => {
  it("tells a timeout, a certificate problem and a refused connection apart", () => {
    assert.equal(classify(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), true), "timeout");
    assert.equal(classify(Object.assign(new Error("unable to verify the first certificate"), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }), false), "tls");
    assert.equal(classify(Object.assign(new Error("self-signed certificate"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }), false), "tls");
    assert.equal(classify(Object.assign(new Error("Hostname/IP does not match"), { code: "ERR_TLS_CERT_ALTNAME_INVALID" }), false), "tls");
    assert.equal(classify(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:443"), { code: "ECONNREFUSED" }), false), "connect");
  });
});

describe("metrics", () => {
  it("exports every name the shipped alert rules use", async () => {
    const m = new WatchMetrics();
    m.watching("prod", "acme");
    m.setHealth({ ...initialHealth("prod", "acme", NOW.toISOString()), status: "down" });
    m.probed("prod", "acme", { ok: true, ms: 30 });
    m.setResources("prod", "acme", { memoryBytes: 1, memoryLimitBytes: 2, cpuSeconds: 1, cpuLimitCores: 0.5, pids: 3, pidsLimit: 64 });
    m.setVolumeSize("prod", "acme", 10);
    m.setBackups("prod", "acme", { lastGood: NOW.toISOString(), stale: false, lastDrillGood: NOW.toISOString(), drillFailed: false });
    m.setCertificate("prod", "acme.example.com", { validFrom: hoursAgo(24), validTo: hoursAgo(-24) });
    m.setJobs({ failed: 0 });
    m.setDeliveries({ "webhook:prod": { queued: 0, delivered: 1, failed: 0 } });
    m.cycleDone(NOW);
    const text = await m.registry.metrics();
    const exported = new Set([...text.matchAll(/^(hardened_fleet_[a-z_]+?)(?:_bucket|_sum|_count)?[{ ]/gm)].map((x) => x[1]!));
    const rules = fs.readFileSync("docs/prometheus/rules.yml", "utf8");
    const used = new Set([...rules.matchAll(/hardened_fleet_[a-z_]+/g)].map((x) => x[0].replace(/_(bucket|sum|count)$/, "")));
    for (const name of used) assert.ok(exported.has(name), `the rules use ${name}, which the watcher does not export`);
    assert.match(text, /hardened_fleet_customer_up\{environment="prod",customer="acme"\} 0/);
    assert.match(text, /hardened_fleet_customer_oom_kills_total\{environment="prod",customer="acme"\} 0/);
    m.forget("prod", "acme");
    assert.doesNotMatch(await m.registry.metrics(), /customer="acme"/);
  });
});

describe("watch config", () => {
  it("defaults to a probe every 15 s with a 5 s timeout, and refuses a timeout longer than the interval naming the field", () => {
    const env = (parse(fs.readFileSync("Pulumi.staging.yaml", "utf8")) as { config: Record<string, any> }).config["hardened-fleet:environment"];
    const parsed = parseEnvironmentConfig({ ...env, watch: undefined });
    assert.equal(parsed.watch.intervalSeconds, 15);
    assert.equal(parsed.watch.timeoutSeconds, 5);
    assert.throws(() => parseEnvironmentConfig({ ...env, watch: { intervalSeconds: 5, timeoutSeconds: 10 } }), /watch\.timeoutSeconds.*at most intervalSeconds/s);
    assert.throws(() => parseEnvironmentConfig({ ...env, watch: { email: { host: "smtp.example.com", from: "a@example.com", to: [] } } }), /watch\.email\.to/);
  });
});
