/**
 * `fleet watch`: one process that watches every customer of the given environments and what fleet
 * owns for them, between deployments.
 *
 *  - Probes: every `watch.intervalSeconds`, each deployed customer is asked for its healthcheck path
 *    through its edge hostname over HTTPS (the environment's CA), within `watch.timeoutSeconds`.
 *  - Events: the container events of every engine of the environment (the host's, or each swarm
 *    node's): died (with OOMKilled), oom, started, health_status; read on from a cursor kept in the store.
 *  - Resources: memory, CPU and PIDs of each customer's container against its plan, every
 *    `watch.usageSampleSeconds`, kept in the store as samples for `fleet usage` (removed after
 *    `watch.usageRetentionDays`); its data volume's size.
 *  - Checks: the certificate each hostname is served with, stale backups and failed drills (the
 *    environment's backup records), failed payment-webhook jobs (the queue of `fleet serve`).
 *
 * Every observation goes through the state machine of health.ts (checks through checkStep) and is
 * saved with its alerts in one transaction of the store; the alerts then go to the environment's sinks
 * (deliver.ts). A watcher killed at any point and started again reads its states back: no alert is
 * repeated, none is missed.
 */
import * as fs from "node:fs";
import * as https from "node:https";
import type Dockerode from "dockerode";
import { latestByCustomer, readRecords } from "../backup/records";
import { durationSeconds, type CustomerConfig, type EnvironmentConfig } from "../config/schema";
import { customerHostname, customerUrl } from "../edge/edgeSpec";
import { edgeRootCertificate } from "../fleet/edge";
import type { Environment } from "../fleet/environment";
import { customerNames, LABEL_CUSTOMER, LABEL_ENVIRONMENT, LABEL_ROLE, ROLE_CUSTOMER } from "../hardening/names";
import { readStacks } from "../pulumi/stackState";
import { backupChecks, certificateCheck, webhookJobsCheck, type CheckResult } from "./checks";
import { deliverDue, type Sink } from "./deliver";
import { followCustomerEvents, type CustomerEvent, type FollowHandle } from "./events";
import {
  checkStep, healthKey, incidentIdAt, initialHealth, observe, policyOf, type Alert, type CustomerHealth, type Observation, type Policy,
} from "./health";
import type { WatchMetrics } from "./metrics";
import { EdgeRequestError, requestThroughEdge } from "./probe";
import type { ContainerSample, WatchStore } from "./store";
import { cgroupPidsLimit } from "../hardening/sandbox";

export interface WatchedEnvironment {
  env: Environment;
  /** where its alerts go (names unique across environments: "webhook:staging") */
  sinks: Sink[];
}

/** What the watcher reads of the payment-webhook job queue: counts by status, and the failed jobs. */
export interface JobsView {
  counts: Record<string, number>;
  failed: { id: number; environment: string; customer: string | null; error: string | null }[];
}

export interface WatcherOptions {
  environments: WatchedEnvironment[];
  store: WatchStore;
  metrics: WatchMetrics;
  log: (line: string) => void;
  /** the payment-webhook job queue to watch for failed jobs, when there is one */
  jobs?: () => JobsView | undefined;
  /** seconds between two looks at the checks (backups, drills, jobs); default 30 */
  checkEverySeconds?: number;
  /** seconds between two measures of the data volumes (a walk of every volume); default 300 */
  volumeEverySeconds?: number;
}

interface Watched {
  env: Environment;
  config: EnvironmentConfig;
  policy: Policy;
  sinkNames: string[];
  ca?: string;
  /** the deployed customers of the last probe round */
  customers: Set<string>;
  /** customers whose stack has been deployed (their stack state has a URL) */
  deployed: Set<string>;
  /** the connections of its probes (agentOf) */
  agent?: { agent: https.Agent; ca: string | undefined; since: number };
  /** its customers' stack files as last read, and the project directory's mtime then */
  configs?: CustomerConfig[];
  configsAt?: number;
  followers: FollowHandle[];
}

const ms = (seconds: number) => seconds * 1000;
/** samples older than the retention are removed at most this often */
const PRUNE_EVERY_MS = 10 * 60_000;
/** how long the probes' connections are kept before new ones (a fresh TLS handshake per hostname) */
const AGENT_RENEW_MS = 60_000;

export function policyOfConfig(config: EnvironmentConfig): Policy {
  const w = config.watch;
  return policyOf({ downAfterFailures: w.downAfterFailures, upAfterSuccesses: w.upAfterSuccesses, restartLoopAfter: w.restartLoopAfter });
}

export class Watcher {
  private readonly watched: Watched[];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly running = new Set<Promise<unknown>>();
  /** when each environment's old samples were last removed */
  private readonly lastPrune = new Map<string, number>();
  /** the states as saved, by "<environment>/<key>" (undefined: none saved) */
  private readonly states = new Map<string, CustomerHealth | undefined>();

  constructor(private readonly opts: WatcherOptions) {
    this.watched = opts.environments.map(({ env, sinks }) => ({
      env, config: env.config, policy: policyOfConfig(env.config), sinkNames: sinks.map((s) => s.name), customers: new Set(), deployed: new Set(), followers: [],
    }));
  }

  private get allSinks(): Sink[] {
    return this.opts.environments.flatMap((e) => e.sinks);
  }

  /** Starts every loop; the first probe round runs at once. */
  start(): void {
    this.opts.metrics.cycleDone(new Date()); // a watcher stuck in its first round is seen as stalled
    for (const w of this.watched) {
      for (const { node, engine } of w.env.target.engines()) this.follow(w, engine, node);
      this.every(ms(w.config.watch.intervalSeconds), () => this.probeRound(w));
      // apart from the probes: a slow engine never delays the next round of probes
      this.every(ms(w.config.watch.usageSampleSeconds), () => this.measure(w));
      // apart from the samples: the engine's df walks every volume and may take long
      this.every(ms(this.opts.volumeEverySeconds ?? 300), () => this.measureVolumes(w));
    }
    this.every(1000, () => this.deliver());
    this.every(ms(this.opts.checkEverySeconds ?? 30), () => this.checkRound());
  }

  /** Stops the loops and waits for what runs; the store stays open (the caller closes it). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const w of this.watched) {
      for (const f of w.followers) f.stop();
      w.agent?.agent.destroy();
    }
    await Promise.allSettled([...this.running]);
  }

  /**
   * Runs `fn` now and then every `periodMs` from the start of the last run (at a fixed rate, so a
   * round that waits on a timeout does not push the next one back), never two at once: a run longer
   * than the period is followed by the next at once.
   */
  private every(periodMs: number, fn: () => Promise<void>): void {
    const run = () => {
      if (this.stopped) return;
      const started = Date.now();
      const p = fn().catch((err: Error) => this.opts.log(`watch: ${err.stack ?? err.message}`));
      this.running.add(p);
      void p.finally(() => {
        this.running.delete(p);
        if (this.stopped) return;
        const timer = setTimeout(() => { this.timers.delete(timer); run(); }, Math.max(0, started + periodMs - Date.now()));
        this.timers.add(timer);
      });
    };
    run();
  }

  // --- state -------------------------------------------------------------------------------------

  /** The saved state (read from the store once, then kept here: one watcher per store), if any. */
  private saved(environment: string, key: string): CustomerHealth | undefined {
    const id = `${environment}/${key}`;
    if (!this.states.has(id)) this.states.set(id, this.opts.store.healthOf(environment, key));
    return this.states.get(id);
  }

  private stateOf(environment: string, key: { customer: string; check?: CheckResult["check"] }, at: string): CustomerHealth {
    return this.saved(environment, healthKey(key)) ?? { ...initialHealth(environment, key.customer, at), ...(key.check ? { check: key.check } : {}) };
  }

  /** Applies one observation to a customer's state and saves it with its alerts (synchronously: nothing interleaves). */
  private observe(w: Watched, customer: string, observation: Observation, cursor?: { source: string; position: string }): void {
    const before = this.stateOf(w.env.name, { customer }, observation.at);
    const { state, alerts } = observe(before, observation, w.policy, () => incidentIdAt(w.env.name, customer, observation.at));
    // a steady customer's probe changes nothing but the time: no write (the round's time is saved once)
    if (alerts.length > 0 || cursor || !sameState(before, state) || !this.saved(w.env.name, customer)) this.save(w, state, alerts, cursor);
    this.opts.metrics.setHealth(state);
  }

  private check(w: Watched, result: CheckResult, at: string): void {
    const before = this.stateOf(w.env.name, { customer: result.subject, check: result.check }, at);
    const { state, alerts } = checkStep(before, result.active, result.reason, at);
    if (alerts.length === 0 && sameState(before, state) && this.saved(w.env.name, healthKey(state))) return;
    this.save(w, state, alerts);
  }

  private save(w: Watched, state: CustomerHealth, alerts: Alert[], cursor?: { source: string; position: string }): void {
    const queued = this.opts.store.apply(w.env.name, healthKey(state), state, alerts, w.sinkNames, new Date(), cursor);
    this.states.set(`${w.env.name}/${healthKey(state)}`, state); // once written
    for (const alert of alerts) {
      if (queued.includes(alert.id)) this.opts.log(`${alert.kind.toUpperCase()} ${alert.environment}/${healthKey(alert)}: ${alert.reason} (incident ${alert.incident})`);
    }
  }

  // --- engine events -----------------------------------------------------------------------------

  private follow(w: Watched, engine: Dockerode, node: string | undefined): void {
    const source = `${w.env.name}@${node ?? "host"}`;
    const since = this.opts.store.cursor(source);
    const handle = followCustomerEvents(engine, since, async (e: CustomerEvent) => this.onEvent(w, source, e),
      (line) => this.opts.log(`${source}: ${line}`));
    w.followers.push(handle);
  }

  private async onEvent(w: Watched, source: string, e: CustomerEvent): Promise<void> {
    const cursor = { source, position: e.cursor };
    if (e.environment !== w.env.name || !w.customers.has(e.customer)) {
      this.opts.store.saveCursor(source, e.cursor);
      return;
    }
    const o = e.observation;
    if (o.kind === "oom") this.opts.metrics.oomKilled(e.environment, e.customer);
    if (o.kind === "started" && this.saved(w.env.name, e.customer)?.stopped) this.opts.metrics.restarted(e.environment, e.customer);
    this.observe(w, e.customer, o, cursor);
  }

  // --- probes ------------------------------------------------------------------------------------

  /** The customers of the environment a probe should reach: those whose stack has been deployed. */
  /** The environment's customers, read again only when a stack file was written (the project directory changed). */
  private customerConfigs(w: Watched): CustomerConfig[] {
    const mtime = fs.statSync(w.env.ctx.projectDir).mtimeMs;
    if (!w.configs || w.configsAt !== mtime) {
      w.configs = w.env.customers();
      w.configsAt = mtime;
    }
    return w.configs;
  }

  private async deployedCustomers(w: Watched): Promise<string[]> {
    const ids = this.customerConfigs(w).map((c) => c.id);
    // the backend is read only when a customer is not known to be deployed yet (one being provisioned)
    if (ids.some((id) => !w.deployed.has(id))) {
      const states = await readStacks(w.env.ctx);
      w.deployed = new Set(ids.filter((id) => states.get(`${w.env.name}-${id}`)?.outputs?.url !== undefined));
    }
    return ids.filter((id) => w.deployed.has(id));
  }

  private async caOf(w: Watched, refresh = false): Promise<string | undefined> {
    if (w.config.edge.tls !== "internal") return undefined;
    if (w.ca === undefined || refresh) {
      try {
        w.ca = await edgeRootCertificate(w.env);
      } catch (err) {
        this.opts.log(`${w.env.name}: the edge's CA cannot be read (${(err as Error).message}); probes fail as TLS errors until it can`);
      }
    }
    return w.ca;
  }

  /**
   * The connections probes go through: kept between rounds, and made anew every minute (and when the
   * CA changes), so each hostname gets a fresh TLS handshake, and its certificate a fresh check, that often.
   */
  private agentOf(w: Watched, ca: string | undefined, renew = false): https.Agent {
    if (!w.agent || renew || w.agent.ca !== ca || Date.now() - w.agent.since >= AGENT_RENEW_MS) {
      w.agent?.agent.destroy();
      w.agent = { agent: new https.Agent({ keepAlive: true, maxSockets: 2, ca }), ca, since: Date.now() };
    }
    return w.agent.agent;
  }

  private async probeRound(w: Watched): Promise<void> {
    const customers = await this.deployedCustomers(w);
    const current = new Set(customers);
    for (const id of current) if (!w.customers.has(id)) this.opts.metrics.watching(w.env.name, id);
    for (const gone of w.customers) if (!current.has(gone)) this.opts.metrics.forget(w.env.name, gone);
    w.customers = current;
    let ca = await this.caOf(w);
    const agent = this.agentOf(w, ca);
    const { edge, watch, app } = w.config;
    const results = await Promise.all(customers.map(async (id) => {
      const url = `${customerUrl(edge, id)}${app.healthcheck.path}`;
      try {
        let r;
        try {
          r = await requestThroughEdge(edge.address, url, ca, ms(watch.timeoutSeconds), agent);
        } catch (err) {
          // the edge's CA may be new (its volume made again): read it once more before calling it a TLS error
          if (!(err instanceof EdgeRequestError && err.failure === "tls" && edge.tls === "internal")) throw err;
          ca = await this.caOf(w, true);
          r = await requestThroughEdge(edge.address, url, ca, ms(watch.timeoutSeconds), this.agentOf(w, ca, true));
        }
        return { id, r };
      } catch (err) {
        return { id, err: err as Error };
      }
    }));
    const now = new Date();
    for (const { id, r, err } of results) {
      if (this.stopped) return;
      const at = now.toISOString();
      if (r) {
        if (r.certificate) {
          const host = customerHostname(edge, id);
          this.opts.metrics.setCertificate(w.env.name, host, r.certificate);
          this.check(w, certificateCheck(host, r.certificate, watch.certificateWarningDays, now), at);
        }
        if (r.status >= 200 && r.status < 300) {
          this.opts.metrics.probed(w.env.name, id, { ok: true, ms: r.ms });
          this.observe(w, id, { kind: "probe", at, ok: true, ms: r.ms });
        } else {
          this.opts.metrics.probed(w.env.name, id, { ok: false, failure: "http" });
          this.observe(w, id, { kind: "probe", at, ok: false, failure: "http", detail: `HTTP ${r.status}${r.body ? `: ${r.body.trim().slice(0, 120)}` : ""}` });
        }
      } else {
        const failure = err instanceof EdgeRequestError ? err.failure : "connect";
        this.opts.metrics.probed(w.env.name, id, { ok: false, failure });
        this.observe(w, id, { kind: "probe", at, ok: false, failure, detail: (err?.message ?? "").replace(/^GET \S+ through \S+: /, "") });
      }
    }
    // states of customers that are gone (deprovisioned), and of their checks, are dropped; their alerts stay
    const keep = new Set(["webhooks:jobs", ...customers.flatMap((id) => [id, `backup:${id}`, `drill:${id}`, `certificate:${customerHostname(edge, id)}`])]);
    for (const gone of this.opts.store.forgetExcept(w.env.name, keep)) this.states.delete(`${w.env.name}/${gone}`);
    this.opts.store.saveRound(w.env.name, now);
    this.opts.metrics.cycleDone(new Date());
  }

  // --- resources ---------------------------------------------------------------------------------

  /**
   * Memory, CPU and PIDs of each customer's running container (one-shot stats), saved as one round of
   * samples at one time: when the last reading came (the engine answers with its next reading, up to
   * a second later).
   */
  private async measure(w: Watched): Promise<void> {
    const samples: ContainerSample[] = [];
    const plans = new Map(this.customerConfigs(w).map((c) => [c.id, w.config.plans[c.plan]]));
    for (const { engine } of w.env.target.engines()) {
      let containers: Dockerode.ContainerInfo[];
      try {
        containers = await engine.listContainers({ filters: { label: [`${LABEL_ROLE}=${ROLE_CUSTOMER}`, `${LABEL_ENVIRONMENT}=${w.env.name}`], status: ["running"] } });
      } catch (err) {
        this.opts.log(`${w.env.name}: listing containers failed: ${(err as Error).message.split("\n")[0]}`);
        continue;
      }
      await Promise.all(containers.map(async (c) => {
        const customer = c.Labels[LABEL_CUSTOMER];
        if (!customer || !w.customers.has(customer)) return;
        try {
          const s = (await engine.getContainer(c.Id).stats({ stream: false, "one-shot": true } as { stream: false })) as unknown as DockerStats;
          const plan = plans.get(customer);
          const inactive = s.memory_stats?.stats?.inactive_file ?? s.memory_stats?.stats?.total_inactive_file ?? 0;
          const memoryBytes = s.memory_stats?.usage !== undefined ? Math.max(0, s.memory_stats.usage - inactive) : undefined;
          const cpuNanos = s.cpu_stats?.cpu_usage?.total_usage;
          // a container that stopped meanwhile answers without them: no sample
          if (memoryBytes !== undefined && cpuNanos !== undefined) samples.push({ customer, container: c.Id, cpuNanos, memoryBytes });
          this.opts.metrics.setResources(w.env.name, customer, {
            memoryBytes,
            memoryLimitBytes: plan ? plan.memoryMb * 1024 * 1024 : s.memory_stats?.limit,
            cpuSeconds: s.cpu_stats?.cpu_usage?.total_usage !== undefined ? s.cpu_stats.cpu_usage.total_usage / 1e9 : undefined,
            cpuLimitCores: plan?.cpus,
            pids: s.pids_stats?.current,
            // the limit the container's host tasks count against: a sandbox's is more than its plan's pids (sandbox.ts)
            pidsLimit: plan ? cgroupPidsLimit(plan.pids, plan.sandbox) : s.pids_stats?.limit,
          });
        } catch {
          // gone meanwhile (replaced by a deployment)
        }
      }));
    }
    if (this.stopped) return;
    this.opts.store.saveSamples(w.env.name, new Date(), samples);
    if (Date.now() - (this.lastPrune.get(w.env.name) ?? 0) >= PRUNE_EVERY_MS) {
      this.lastPrune.set(w.env.name, Date.now());
      this.opts.store.pruneSamples(w.env.name, new Date(Date.now() - w.config.watch.usageRetentionDays * 86_400_000));
    }
  }

  /** The size of each customer's data volume (the engine's df). */
  private async measureVolumes(w: Watched): Promise<void> {
    for (const { engine } of w.env.target.engines()) {
      try {
        const df = (await engine.df()) as { Volumes?: { Name: string; UsageData?: { Size: number } }[] };
        for (const id of w.customers) {
          const v = df.Volumes?.find((x) => x.Name === customerNames(w.env.name, id).dataVolume);
          if (v?.UsageData && v.UsageData.Size >= 0) this.opts.metrics.setVolumeSize(w.env.name, id, v.UsageData.Size);
        }
      } catch (err) {
        this.opts.log(`${w.env.name}: measuring volumes failed: ${(err as Error).message.split("\n")[0]}`);
      }
    }
  }

  // --- checks and deliveries ---------------------------------------------------------------------

  private async checkRound(): Promise<void> {
    const now = new Date();
    const at = now.toISOString();
    const jobs = this.opts.jobs?.();
    if (jobs) this.opts.metrics.setJobs(jobs.counts);
    for (const w of this.watched) {
      const customers = [...w.customers];
      if (w.config.backup) {
        const records = readRecords(w.env.ctx.projectDir, w.env.name);
        const results = backupChecks(customers, records, durationSeconds(w.config.backup.schedule), now);
        for (const r of results) this.check(w, r, at);
        const goodBackups = latestByCustomer(records, "backup", true);
        const goodDrills = latestByCustomer(records, "drill", true);
        const active = (check: CheckResult["check"], id: string) => results.some((r) => r.check === check && r.subject === id && r.active);
        for (const id of customers) {
          this.opts.metrics.setBackups(w.env.name, id, {
            lastGood: goodBackups.get(id)?.at, stale: active("backup", id),
            lastDrillGood: goodDrills.get(id)?.at, drillFailed: active("drill", id),
          });
        }
      }
      if (jobs) this.check(w, webhookJobsCheck(jobs.failed.filter((j) => j.environment === w.env.name)), at);
    }
    this.opts.metrics.setDeliveries(this.opts.store.pending());
  }

  private async deliver(): Promise<void> {
    await deliverDue(this.opts.store, this.allSinks, new Date(), this.opts.log);
    this.opts.metrics.setDeliveries(this.opts.store.pending());
  }
}

/** Whether two states differ in anything but the time of their last observation. Pure. */
export function sameState(a: CustomerHealth, b: CustomerHealth): boolean {
  return JSON.stringify({ ...a, lastAt: undefined }) === JSON.stringify({ ...b, lastAt: undefined });
}

/** The fields of the engine's stats this module reads (cgroup v1 and v2). */
interface DockerStats {
  memory_stats?: { usage?: number; limit?: number; stats?: { inactive_file?: number; total_inactive_file?: number } };
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  pids_stats?: { current?: number; limit?: number };
}
