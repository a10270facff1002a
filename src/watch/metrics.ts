/**
 * What `fleet watch` exports for Prometheus (docs/prometheus/: a scrape config and alert rules on
 * these names). One registry per watcher; the names follow Prometheus conventions (base units,
 * `_total` counters, `_seconds`, `_bytes`, timestamps as `_timestamp_seconds`).
 */
import * as http from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { CustomerHealth, Status } from "./health";

const CUSTOMER = ["environment", "customer"] as const;
const STATUSES: Status[] = ["up", "degraded", "down", "unknown"];

export interface ResourceUse {
  memoryBytes?: number;
  memoryLimitBytes?: number;
  /** cumulative CPU time of the container, seconds */
  cpuSeconds?: number;
  cpuLimitCores?: number;
  pids?: number;
  pidsLimit?: number;
}

export class WatchMetrics {
  readonly registry = new Registry();
  private readonly up = new Gauge({ name: "hardened_fleet_customer_up", help: "1 when the customer answers through its edge hostname (up or degraded), 0 when down", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly status = new Gauge({ name: "hardened_fleet_customer_status", help: "1 for the customer's current status as the watcher sees it", labelNames: [...CUSTOMER, "status"], registers: [this.registry] });
  private readonly probe = new Histogram({
    name: "hardened_fleet_probe_duration_seconds", help: "end-to-end HTTPS probes through the edge proxy that got an answer",
    labelNames: CUSTOMER, buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10], registers: [this.registry],
  });
  private readonly probeFailures = new Counter({ name: "hardened_fleet_probe_failures_total", help: "failed probes, by kind (timeout, tls, connect, http)", labelNames: [...CUSTOMER, "reason"], registers: [this.registry] });
  private readonly restarts = new Counter({ name: "hardened_fleet_customer_restarts_total", help: "starts of a customer's container after it died", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly ooms = new Counter({ name: "hardened_fleet_customer_oom_kills_total", help: "times the kernel killed a customer's process for memory", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly memory = new Gauge({ name: "hardened_fleet_customer_memory_bytes", help: "memory the customer's container uses", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly memoryLimit = new Gauge({ name: "hardened_fleet_customer_memory_limit_bytes", help: "the plan's memory limit", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly cpu = new Counter({ name: "hardened_fleet_customer_cpu_seconds_total", help: "CPU time the customer's container used", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly cpuLimit = new Gauge({ name: "hardened_fleet_customer_cpu_limit_cores", help: "the plan's CPU limit, in cores", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly pids = new Gauge({ name: "hardened_fleet_customer_pids", help: "processes and threads in the customer's container", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly pidsLimit = new Gauge({ name: "hardened_fleet_customer_pids_limit", help: "the PIDs limit of the customer's container (the plan's pids; a sandboxed plan's adds its sandbox's own tasks)", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly volume = new Gauge({ name: "hardened_fleet_customer_data_volume_bytes", help: "size of the customer's data volume", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly backupLast = new Gauge({ name: "hardened_fleet_backup_last_success_timestamp_seconds", help: "when the customer's last good backup was taken", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly backupStale = new Gauge({ name: "hardened_fleet_backup_stale", help: "1 when the customer's backups are stale (no good one within two intervals)", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly drillLast = new Gauge({ name: "hardened_fleet_drill_last_success_timestamp_seconds", help: "when the customer's last good restore drill ran", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly drillFailed = new Gauge({ name: "hardened_fleet_drill_failed", help: "1 when the customer's last restore drill failed", labelNames: CUSTOMER, registers: [this.registry] });
  private readonly certificate = new Gauge({ name: "hardened_fleet_certificate_expiry_timestamp_seconds", help: "when the certificate the edge shows for a hostname expires", labelNames: ["environment", "hostname"], registers: [this.registry] });
  private readonly certificateLifetime = new Gauge({ name: "hardened_fleet_certificate_lifetime_seconds", help: "how long that certificate is valid in all (renewal is due at two thirds)", labelNames: ["environment", "hostname"], registers: [this.registry] });
  private readonly jobs = new Gauge({ name: "hardened_fleet_webhook_jobs", help: "payment-webhook jobs by status", labelNames: ["status"], registers: [this.registry] });
  private readonly deliveries = new Gauge({ name: "hardened_fleet_alert_deliveries", help: "alert deliveries by sink and status", labelNames: ["sink", "status"], registers: [this.registry] });
  private readonly lastCycle = new Gauge({ name: "hardened_fleet_watch_last_cycle_timestamp_seconds", help: "when the watcher last finished a round of probes", registers: [this.registry] });
  private readonly lastCpu = new Map<string, number>();

  /** A customer being watched: its counters start at 0, so the first restart or OOM kill is an increase. */
  watching(environment: string, customer: string): void {
    const labels = { environment, customer };
    this.restarts.inc(labels, 0);
    this.ooms.inc(labels, 0);
    for (const reason of ["timeout", "tls", "connect", "http"]) this.probeFailures.inc({ ...labels, reason }, 0);
  }

  setHealth(h: CustomerHealth): void {
    const labels = { environment: h.environment, customer: h.customer };
    if (h.status === "unknown") this.up.remove(labels);
    else this.up.set(labels, h.status === "down" ? 0 : 1);
    for (const s of STATUSES) this.status.set({ ...labels, status: s }, s === h.status ? 1 : 0);
  }

  probed(environment: string, customer: string, result: { ok: true; ms: number } | { ok: false; failure: string }): void {
    if (result.ok) this.probe.observe({ environment, customer }, result.ms / 1000);
    else this.probeFailures.inc({ environment, customer, reason: result.failure });
  }

  restarted(environment: string, customer: string): void { this.restarts.inc({ environment, customer }); }
  oomKilled(environment: string, customer: string): void { this.ooms.inc({ environment, customer }); }

  setResources(environment: string, customer: string, use: ResourceUse): void {
    const labels = { environment, customer };
    const set = (g: Gauge, v: number | undefined) => { if (v !== undefined && Number.isFinite(v)) g.set(labels, v); };
    set(this.memory, use.memoryBytes);
    set(this.memoryLimit, use.memoryLimitBytes);
    set(this.cpuLimit, use.cpuLimitCores);
    set(this.pids, use.pids);
    set(this.pidsLimit, use.pidsLimit);
    if (use.cpuSeconds !== undefined) {
      // a counter: what was used since the last reading (a new container starts from 0 again)
      const key = `${environment}/${customer}`;
      const before = this.lastCpu.get(key);
      const delta = before === undefined ? use.cpuSeconds : use.cpuSeconds >= before ? use.cpuSeconds - before : use.cpuSeconds;
      if (delta > 0) this.cpu.inc(labels, delta);
      this.lastCpu.set(key, use.cpuSeconds);
    }
  }

  setVolumeSize(environment: string, customer: string, bytes: number): void { this.volume.set({ environment, customer }, bytes); }

  setBackups(environment: string, customer: string, b: { lastGood?: string; stale: boolean; lastDrillGood?: string; drillFailed: boolean }): void {
    const labels = { environment, customer };
    if (b.lastGood) this.backupLast.set(labels, Date.parse(b.lastGood) / 1000);
    this.backupStale.set(labels, b.stale ? 1 : 0);
    if (b.lastDrillGood) this.drillLast.set(labels, Date.parse(b.lastDrillGood) / 1000);
    this.drillFailed.set(labels, b.drillFailed ? 1 : 0);
  }

  setCertificate(environment: string, hostname: string, cert: { validFrom: string; validTo: string }): void {
    this.certificate.set({ environment, hostname }, Date.parse(cert.validTo) / 1000);
    this.certificateLifetime.set({ environment, hostname }, (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 1000);
  }
  setJobs(counts: Record<string, number>): void { for (const [status, n] of Object.entries(counts)) this.jobs.set({ status }, n); }

  setDeliveries(pending: Record<string, Record<string, number>>): void {
    for (const [sink, byStatus] of Object.entries(pending)) for (const [status, n] of Object.entries(byStatus)) this.deliveries.set({ sink, status }, n);
  }

  cycleDone(at: Date): void { this.lastCycle.set(at.getTime() / 1000); }

  /** Drops every series of a customer that is gone (deprovisioned). */
  forget(environment: string, customer: string): void {
    const labels = { environment, customer };
    for (const m of [this.up, this.probe, this.restarts, this.ooms, this.memory, this.memoryLimit, this.cpu, this.cpuLimit, this.pids,
      this.pidsLimit, this.volume, this.backupLast, this.backupStale, this.drillLast, this.drillFailed]) m.remove(labels);
    for (const s of STATUSES) this.status.remove({ ...labels, status: s });
    for (const reason of ["timeout", "tls", "connect", "http"]) this.probeFailures.remove({ ...labels, reason });
    this.lastCpu.delete(`${environment}/${customer}`);
  }

  /** Serves GET /metrics (and /healthz) on address:port; resolves with the port once listening. */
  serve(address: string, port: number): Promise<{ server: http.Server; port: number }> {
    const server = http.createServer((req, res) => {
      if (req.method === "GET" && req.url === "/metrics") {
        this.registry.metrics().then((text) => {
          res.writeHead(200, { "content-type": this.registry.contentType });
          res.end(text);
        }, (err: Error) => { res.writeHead(500); res.end(err.message); });
      } else if (req.method === "GET" && req.url === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok\n");
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, address, () => {
        server.off("error", reject);
        resolve({ server, port: (server.address() as { port: number }).port });
      });
    });
  }
}
