/**
 * What the status page shows, read at each request: every environment's customers as `fleet list`
 * has them (src/fleet/listing.ts: the watcher's state, else the engine's health), the watcher's
 * newest alerts (its store, read only) and the newest webhook jobs; each customer's CPU and memory
 * over the last hour from the watcher's samples (src/statusPage/usage.ts).
 */
import * as fs from "node:fs";
import { listCustomers } from "../fleet/listing";
import { maxHoldSeconds } from "../fleet/usage";
import { loadEnvironment } from "../fleet/environment";
import type { FleetContext } from "../project/context";
import { environmentNames } from "../project/stackFiles";
import { defaultWatchStorePath, WatchStore } from "../watch/store";
import type { Job } from "../webhooks/queue";
import type { UsageSeries } from "./pages";
import type { StatusSnapshot } from "./server";
import { GRAPH_SECONDS, usageGraphs } from "./usage";

export interface StatusSources {
  /** the newest `limit` webhook jobs, in any order (fleet serve: its own queue) */
  jobs: (limit: number) => Job[];
  /** the watcher's store (default <project>/.fleet/watch/watch.db) */
  watchDb?: string;
  /** alerts and jobs shown (default 20 each) */
  recent?: number;
  now?: () => Date;
}

export async function readStatus(ctx: FleetContext, sources: StatusSources): Promise<StatusSnapshot> {
  const recent = sources.recent ?? 20;
  const names = environmentNames(ctx.projectDir);
  const environments = names.map((name) => loadEnvironment(ctx, name, "environment"));
  const listing = await listCustomers(environments);
  const watchDb = sources.watchDb ?? defaultWatchStorePath(ctx.projectDir);
  let alerts: StatusSnapshot["alerts"] = [];
  const now = sources.now?.() ?? new Date();
  const usage = new Map<string, UsageSeries[]>();
  if (fs.existsSync(watchDb)) {
    const store = WatchStore.open(watchDb, { readOnly: true });
    try {
      alerts = store.recentAlerts(recent);
      for (const env of environments) {
        const samples = store.samplesFor(env.name, new Date(now.getTime() - GRAPH_SECONDS * 1000), now);
        for (const c of listing.filter((l) => l.environment === env.name)) {
          const plan = env.config.plans[c.plan];
          const list = samples.get(c.customer);
          if (plan && list) usage.set(`${env.name}/${c.customer}`, usageGraphs(list, plan, now, { maxHoldSeconds: maxHoldSeconds(env.config.watch.usageSampleSeconds) }));
        }
      }
    } finally {
      store.close();
    }
  }
  const jobs = [...sources.jobs(recent)].sort((a, b) => b.id - a.id);
  return {
    generatedAt: now.toISOString(),
    environments: names.map((name) => ({
      name,
      customers: listing.filter((c) => c.environment === name).map((c) => ({
        customer: c.customer, plan: c.plan, url: c.url, version: c.version, lastUpdate: c.lastUpdate, lastBackup: c.lastBackup,
        lastDrill: c.lastDrill, watcher: c.watcher, health: c.health,
        ...(usage.has(`${name}/${c.customer}`) ? { usage: usage.get(`${name}/${c.customer}`) } : {}),
      })),
    })),
    alerts,
    jobs,
  };
}
