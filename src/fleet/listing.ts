/** `fleet list`: each customer of the given environments with its plan, URL, image, health and last update. */
import { customerStackName } from "../config/targets";
import { readStacks } from "../pulumi/stackState";
import { BindingStore, defaultBindingsPath, type Binding } from "../project/bindings";
import { latestByCustomer, readRecords, type BackupRecord } from "../backup/records";
import type { Environment } from "./environment";
import { findingsColumn, recordedFindings } from "./supplyChain";
import { watcherView } from "./watch";

export interface CustomerListing {
  environment: string;
  customer: string;
  plan: string;
  url: string;
  image: string;
  version: string;
  /** known vulnerabilities in its image as fleet last scanned it (src/supplyChain): "0", "3 (1 critical)", "not scanned" */
  findings: string;
  health: string;
  /** the runtime its container runs under now: runc, or runsc (a sandboxed plan, docs/sandbox.md); "-" when none runs */
  runtime: string;
  lastUpdate: string;
  /** the Stripe customer and subscription whose payment events may act on it (`fleet bind`); null: none */
  binding: { stripeCustomer: string; subscription: string | null; boundAt: string; boundBy: string } | null;
  /** its last backup and last restore drill (src/backup/records.ts); null: never */
  lastBackup: BackupOutcome | null;
  lastDrill: BackupOutcome | null;
  /** what `fleet watch` last saw (src/watch/); null: no watcher state for it */
  watcher: { status: string; since: string; reason: string; updatedAt: string; stale: boolean } | null;
}

export interface BackupOutcome {
  at: string;
  ok: boolean;
  snapshot?: string;
  error?: string;
}

/** The customers of the given environments (each loaded once by the caller). */
export async function listCustomers(environments: Environment[]): Promise<CustomerListing[]> {
  const ctx = environments[0]?.ctx;
  if (!ctx) return [];
  const states = await readStacks(ctx); // one read of the backend, not a Pulumi process per customer
  const bindings = new Map(BindingStore.readAll(defaultBindingsPath(ctx.projectDir)).map((b) => [`${b.environment}/${b.customer}`, b]));
  const out: CustomerListing[] = [];
  for (const env of environments) {
    const environment = env.name;
    const records = readRecords(ctx.projectDir, environment);
    const backups = latestByCustomer(records, "backup");
    const drills = latestByCustomer(records, "drill");
    const watched = watcherView(env);
    for (const c of env.customers()) {
      const stack = customerStackName(environment, c.id);
      const state = states.get(stack);
      const outputs = state?.outputs ?? {};
      // the container the last deployment made (its name ends in the slot of its spec; on a swarm: the service)
      const container = typeof outputs.containerName === "string" ? outputs.containerName : undefined;
      const status = container ? await env.target.status(container) : { health: "not deployed", runtime: "-" };
      const w = watched.get(c.id);
      // the engine's healthcheck says healthy for a frozen container; the watcher's probes do not
      const health = w && !w.stale && (w.status === "down" || w.status === "degraded") ? `${w.status} since ${w.since.slice(0, 19)}Z: ${w.reason}` : status.health;
      out.push({
        environment, customer: c.id, plan: c.plan,
        url: String(outputs.url ?? "-"),
        image: String(outputs.image ?? "-"),
        version: String(outputs.version ?? "-"),
        findings: typeof outputs.image === "string" ? findingsColumn(recordedFindings(ctx.projectDir, outputs.image)) : "-",
        health,
        runtime: status.runtime,
        lastUpdate: state?.lastUpdate ?? "never",
        binding: bindingOf(bindings.get(`${environment}/${c.id}`)),
        lastBackup: outcomeOf(backups.get(c.id)),
        lastDrill: outcomeOf(drills.get(c.id)),
        watcher: w ? { status: w.status, since: w.since, reason: w.reason, updatedAt: w.updatedAt, stale: w.stale } : null,
      });
    }
  }
  return out;
}

function bindingOf(b: Binding | undefined): CustomerListing["binding"] {
  return b ? { stripeCustomer: b.stripeCustomer, subscription: b.subscription, boundAt: b.boundAt, boundBy: b.boundBy } : null;
}

function outcomeOf(r: BackupRecord | undefined): BackupOutcome | null {
  return r ? { at: r.at, ok: r.ok, snapshot: r.snapshot, error: r.error } : null;
}
