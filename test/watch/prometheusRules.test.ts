/**
 * The Prometheus config and alert rules shipped in docs/prometheus/: promtool accepts the config and
 * the rules and passes their unit tests (rules.test.yml), every alert has a test that fires it and
 * one that expects none, and a real Prometheus (test/support/prometheus.ts) loading rules.yml fires
 * HardenedFleetCustomerDown for a customer a hand-written /metrics reports down, not for its neighbour.
 * Needs prometheus and promtool on PATH (scripts/ensure-prometheus.sh); installs nothing. No watcher,
 * no engine.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { prometheusTool, startPrometheus, type Prometheus, type PromAlert } from "../support/prometheus";

const DOCS = path.resolve(__dirname, "../../docs/prometheus");
const CONFIG = path.join(DOCS, "prometheus.yml");
const RULES = path.join(DOCS, "rules.yml");
const RULES_TEST = path.join(DOCS, "rules.test.yml");

interface Run { code: number; output: string }

/** promtool with `args` in docs/prometheus; never throws, the exit code tells */
function promtool(args: string[]): Promise<Run> {
  const bin = prometheusTool("promtool");
  return new Promise((resolve) => {
    execFile(bin, args, { cwd: DOCS, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}`.trim() || String(err ?? "") });
    });
  });
}

async function assertPasses(args: string[]): Promise<string> {
  const r = await promtool(args);
  assert.equal(r.code, 0, `promtool ${args.join(" ")} exited ${r.code}:\n${r.output}`);
  return r.output;
}

interface Rule { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }

/** the alerts the brief of issue 23 names; rules.yml must have exactly these */
const ALERTS = [
  "HardenedFleetCustomerDown", "HardenedFleetProbeSlow", "HardenedFleetMemoryNearLimit", "HardenedFleetPidsNearLimit",
  "HardenedFleetRestarting", "HardenedFleetOOMKilled", "HardenedFleetBackupStale", "HardenedFleetDrillFailed",
  "HardenedFleetCertificateExpiringSoon", "HardenedFleetWebhookJobsFailed", "HardenedFleetAlertDeliveryFailing",
  "HardenedFleetWatcherDown", "HardenedFleetWatcherStalled",
];

/** alerts about one customer: their texts name it and how to look further */
const CUSTOMER_ALERTS = ALERTS.slice(0, 8);

describe("docs/prometheus: promtool", () => {
  it("accepts prometheus.yml (and the rules file it loads)", async () => {
    const out = await assertPasses(["check", "config", CONFIG]);
    assert.match(out, /SUCCESS: 13 rules found/);
  });

  it("accepts rules.yml", async () => {
    await assertPasses(["check", "rules", RULES]);
  });

  it("passes the unit tests in rules.test.yml", async () => {
    const out = await assertPasses(["test", "rules", RULES_TEST]);
    assert.match(out, /SUCCESS/);
  });
});

describe("docs/prometheus: contents", () => {
  const config = parse(fs.readFileSync(CONFIG, "utf8")) as {
    global: { scrape_interval: string }; rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const groups = (parse(fs.readFileSync(RULES, "utf8")) as { groups: { name: string; rules: Rule[] }[] }).groups;
  const tests = (parse(fs.readFileSync(RULES_TEST, "utf8")) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
  }).tests;

  it("scrapes the watcher as hardened-fleet-watch on 127.0.0.1:9464 every 15s and loads rules.yml", () => {
    assert.equal(config.global.scrape_interval, "15s");
    assert.deepEqual(config.rule_files, ["rules.yml"]);
    assert.equal(config.scrape_configs.length, 1);
    assert.equal(config.scrape_configs[0]!.job_name, "hardened-fleet-watch");
    assert.deepEqual(config.scrape_configs[0]!.static_configs.flatMap((s) => s.targets), ["127.0.0.1:9464"]);
  });

  it("has one group, hardened-fleet, with each alert once, a severity and both annotations", () => {
    assert.deepEqual(groups.map((g) => g.name), ["hardened-fleet"]);
    const rules = groups[0]!.rules;
    assert.deepEqual(rules.map((r) => r.alert).sort(), [...ALERTS].sort());
    for (const r of rules) {
      assert.match(r.labels?.severity ?? "", /^(critical|warning)$/, `${r.alert}: severity`);
      assert.ok(r.annotations?.summary, `${r.alert}: summary`);
      assert.ok(r.annotations?.description, `${r.alert}: description`);
    }
    const down = rules.find((r) => r.alert === "HardenedFleetCustomerDown")!;
    assert.ok(down.for === undefined || down.for === "0m" || down.for === "0s", "CustomerDown: the watcher already waits for two failed probes");
  });

  it("names the customer, its environment and the fleet command in every customer alert", () => {
    for (const r of groups[0]!.rules.filter((x) => CUSTOMER_ALERTS.includes(x.alert))) {
      assert.match(r.annotations!.summary!, /\{\{ \$labels\.customer \}\}.*\{\{ \$labels\.environment \}\}/, `${r.alert}: summary`);
      assert.ok(r.annotations!.description!.includes("npm run fleet -- status {{ $labels.customer }} --env {{ $labels.environment }}"),
        `${r.alert}: description without the status command`);
    }
  });

  it("tests every alert both firing and not firing", () => {
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const name of ALERTS) {
      const mine = cases.filter((c) => c.alertname === name);
      assert.ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${name}: no test where it fires`);
      assert.ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${name}: no test where it does not fire`);
    }
  });
});

describe("docs/prometheus: a real Prometheus with rules.yml", { timeout: 90_000 }, () => {
  // what the watcher would export: acme down, globex up, a probe round just finished
  const up: Record<string, number> = { acme: 0, globex: 1 };
  const exposition = () => [
    "# HELP hardened_fleet_customer_up 1 when the customer is up or degraded, 0 when down",
    "# TYPE hardened_fleet_customer_up gauge",
    ...Object.entries(up).map(([c, v]) => `hardened_fleet_customer_up{environment="staging",customer="${c}"} ${v}`),
    "# HELP hardened_fleet_watch_last_cycle_timestamp_seconds when the watcher last finished a probe round",
    "# TYPE hardened_fleet_watch_last_cycle_timestamp_seconds gauge",
    `hardened_fleet_watch_last_cycle_timestamp_seconds ${(Date.now() / 1000).toFixed(3)}`,
    "",
  ].join("\n");

  let server: http.Server;
  let prom: Prometheus;
  let scrapes = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url !== "/metrics") { res.writeHead(404).end(); return; }
      scrapes++;
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(exposition());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    prom = await startPrometheus({ targets: [`127.0.0.1:${port}`], rulesFile: RULES, scrapeIntervalSeconds: 1 });
  });

  after(async () => {
    await prom?.stop();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  const downFor = (alerts: PromAlert[], customer: string) =>
    alerts.find((a) => a.labels.alertname === "HardenedFleetCustomerDown" && a.labels.customer === customer);

  it("fires HardenedFleetCustomerDown for acme within 20 s, not for globex", async () => {
    const firing = await prom.waitFor(async () => {
      const a = downFor(await prom.alerts(), "acme");
      return a?.state === "firing" ? a : undefined;
    }, 20_000, "HardenedFleetCustomerDown firing for acme");
    assert.equal(firing.labels.environment, "staging");
    assert.equal(firing.labels.severity, "critical");
    assert.equal(firing.labels.job, "hardened-fleet-watch");
    assert.equal(firing.annotations.summary, "acme (staging) is down");
    assert.ok(firing.annotations.description!.includes("npm run fleet -- status acme --env staging"), firing.annotations.description);

    const alerts = await prom.alerts();
    assert.equal(downFor(alerts, "globex"), undefined, JSON.stringify(alerts));
    // the watcher itself is scraped and ticking: neither of its alerts
    assert.deepEqual(alerts.map((a) => a.labels.alertname), ["HardenedFleetCustomerDown"], JSON.stringify(alerts));
    const upSeries = await prom.query('up{job="hardened-fleet-watch"}');
    assert.deepEqual(upSeries.map((s) => s.value), [1]);
    const globex = await prom.query('hardened_fleet_customer_up{customer="globex"}');
    assert.deepEqual(globex.map((s) => s.value), [1]);
    assert.ok(scrapes > 0);
  });

  it("resolves it once acme is up again, and never fires for globex", async () => {
    up.acme = 1;
    await prom.waitFor(async () => downFor(await prom.alerts(), "acme") === undefined, 20_000, "HardenedFleetCustomerDown resolved for acme");
    assert.equal(downFor(await prom.alerts(), "globex"), undefined);
  });
});
