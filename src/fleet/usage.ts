/**
 * `fleet usage`: each customer's use of an environment over a window, for billing and for sizing
 * plans. Read, not measured now: CPU and memory from the samples `fleet watch` keeps in its store
 * (src/watch/store.ts), requests and bytes from each customer's access log in the edge proxy, the data
 * volume's size from the engine's df (as of now), the Stripe customer from the project's bindings. The
 * figures come from src/usage/usage.ts and src/usage/accessLog.ts.
 */
import * as fs from "node:fs";
import { customerNames } from "../hardening/names";
import { BindingStore, defaultBindingsPath } from "../project/bindings";
import { aggregateByHost, type Traffic } from "../usage/accessLog";
import { usageRows, type CustomerUsageInput, type UsageRow } from "../usage/usage";
import { defaultWatchStorePath, WatchStore } from "../watch/store";
import type { Environment } from "./environment";
import { accessLogLines } from "./logs";

export interface UsageRequest {
  from: Date;
  to: Date;
  /** the watcher's store (default <project>/.fleet/watch/watch.db) */
  db?: string;
}

export interface UsageReport {
  rows: UsageRow[];
  /** what the operator should know about the figures (customers gone, a volume not found) */
  notes: string[];
}

/** No samples cover the window: nothing to report (no zeros printed as if measured). */
export class NoSamplesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoSamplesError";
  }
}

/** A sample holds at most this long (a gap in the sampling, the watcher stopped, stays uncovered). */
export function maxHoldSeconds(sampleSeconds: number): number {
  return 2 * sampleSeconds + 10;
}

/** Each customer's requests in the window, from its access log in the edge proxy (one file set per customer). */
async function trafficOf(env: Environment, customers: string[], window: { from: string; to: string }): Promise<Map<string, Traffic>> {
  const lines = await accessLogLines(env, customers);
  const out = new Map<string, Traffic>();
  for (const customer of customers) {
    const t = aggregateByHost(lines.get(customer) ?? [], window, () => customer).get(customer);
    if (t) out.set(customer, t);
  }
  return out;
}

/** The size of each customer's data volume now, from the df of every engine of the environment. */
async function volumeSizes(env: Environment, customers: string[], notes: string[]): Promise<Map<string, number>> {
  const wanted = new Map(customers.map((id) => [customerNames(env.name, id).dataVolume, id]));
  const out = new Map<string, number>();
  for (const { node, engine } of env.target.engines()) {
    try {
      const df = (await engine.df()) as { Volumes?: { Name: string; UsageData?: { Size: number } | null }[] };
      for (const v of df.Volumes ?? []) {
        const id = wanted.get(v.Name);
        if (id !== undefined && v.UsageData && v.UsageData.Size >= 0) out.set(id, (out.get(id) ?? 0) + v.UsageData.Size);
      }
    } catch (err) {
      notes.push(`data volume sizes of ${node ?? "the engine"} not measured: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  return out;
}

export async function customerUsage(env: Environment, req: UsageRequest): Promise<UsageReport> {
  const file = req.db ?? defaultWatchStorePath(env.ctx.projectDir);
  const window = { from: req.from.toISOString(), to: req.to.toISOString() };
  const watch = `the watcher takes them: run 'fleet watch --env ${env.name}' (it samples every ${env.config.watch.usageSampleSeconds}s)`;
  if (!fs.existsSync(file)) throw new NoSamplesError(`no usage samples of ${env.name}: there is no watcher store at ${file}; ${watch}`);
  const configured = env.customers();
  const store = WatchStore.open(file, { readOnly: true });
  let samples: Map<string, CustomerUsageInput["samples"]>;
  try {
    if (store.sampleCount(env.name, req.from, req.to) === 0) {
      const span = store.sampleSpan(env.name);
      throw new NoSamplesError(`no usage samples of ${env.name} from ${window.from} to ${window.to} ` +
        `(${span ? `its samples go from ${span.first} to ${span.last}` : "it has none"}): ${watch} for the whole window`);
    }
    samples = store.samplesFor(env.name, req.from, req.to, configured.map((c) => c.id));
  } finally {
    store.close();
  }

  const notes: string[] = [];
  const stripe = new Map(BindingStore.readAll(defaultBindingsPath(env.ctx.projectDir))
    .filter((b) => b.environment === env.name).map((b) => [b.customer, b.stripeCustomer]));
  const inputs: CustomerUsageInput[] = configured.map((c) => {
    const limits = env.config.plans[c.plan];
    return { customer: c.id, plan: c.plan, limits: limits ?? { memoryMb: 0, cpus: 0 }, samples: samples.get(c.id) ?? [] };
  });
  // customers deprovisioned since: their use in the window still counts
  for (const [id, list] of samples) {
    if (configured.some((c) => c.id === id)) continue;
    if (!list.some((s) => s.at >= window.from && s.at < window.to)) continue;
    notes.push(`${id} is no longer a customer of ${env.name}: its plan is unknown (shares of the plan are 0)`);
    inputs.push({ customer: id, plan: "", limits: { memoryMb: 0, cpus: 0 }, samples: list });
  }
  const ids = inputs.map((c) => c.customer);
  const traffic = await trafficOf(env, ids, window);
  const sizes = await volumeSizes(env, ids, notes);
  for (const c of inputs) {
    const cus = stripe.get(c.customer);
    if (cus) c.stripeCustomer = cus;
    const size = sizes.get(c.customer);
    if (size !== undefined) c.dataVolumeBytes = size;
  }
  const rows = usageRows(env.name, window, inputs, traffic, { maxHoldSeconds: maxHoldSeconds(env.config.watch.usageSampleSeconds) });
  for (const r of rows) {
    if (r.samples === 0 && r.coverageSeconds === 0) notes.push(`${r.customer}: no samples in the window (not running, or not yet deployed then)`);
    else if (r.coverageSeconds < 0.9 * r.windowSeconds) {
      notes.push(`${r.customer}: samples cover ${Math.round(r.coverageSeconds)} s of the window's ${Math.round(r.windowSeconds)} s (the watcher stopped, or the customer was not running)`);
    }
  }
  return { rows, notes };
}
