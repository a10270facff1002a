/**
 * What the status page shows, read at each request: every environment's customers as `fleet list`
 * has them (src/fleet/listing.ts: the watcher's state, else the engine's health), the watcher's
 * newest alerts (its store, read only) and the newest webhook jobs. Usage series are not collected
 * yet: rows have none.
 */
import * as fs from "node:fs";
import { listCustomers } from "../fleet/listing";
import { loadEnvironment } from "../fleet/environment";
import type { FleetContext } from "../project/context";
import { environmentNames } from "../project/stackFiles";
import { defaultWatchStorePath, WatchStore } from "../watch/store";
import type { Job } from "../webhooks/queue";
import type { StatusSnapshot } from "./server";

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
  if (fs.existsSync(watchDb)) {
    const store = WatchStore.open(watchDb, { readOnly: true });
    try {
      alerts = store.recentAlerts(recent);
    } finally {
      store.close();
    }
  }
  const jobs = [...sources.jobs(recent)].sort((a, b) => b.id - a.id);
  return {
    generatedAt: (sources.now?.() ?? new Date()).toISOString(),
    environments: names.map((name) => ({
      name,
      customers: listing.filter((c) => c.environment === name).map((c) => ({
        customer: c.customer, plan: c.plan, url: c.url, version: c.version, lastUpdate: c.lastUpdate, lastBackup: c.lastBackup,
        lastDrill: c.lastDrill, watcher: c.watcher, health: c.health,
      })),
    })),
    alerts,
    jobs,
  };
}
