/** `fleet up|preview|destroy <stack>` and `fleet provision|deprovision|list`: stacks on the Automation API. */
import * as path from "node:path";
import type { Command } from "commander";
import {
  changeCount, deprovision, destroyEnvironmentOf, environmentNames, fleetContext, formatRolloutReport, listCustomers, migrate, preview,
  provision, rollout, upStack, type CustomerListing, type FleetContext, type UpResult,
} from "../fleet/operations";
import { parseStackTarget } from "../config/targets";
import { formatTable } from "../table";

export function projectContext(): FleetContext {
  const here = path.resolve(__dirname, "..", "..", __dirname.includes(`${path.sep}dist${path.sep}`) ? ".." : "");
  return fleetContext(process.env.FLEET_PROJECT_DIR ?? here);
}

export function summarize(r: UpResult): string {
  const changes = Object.entries(r.changes).map(([op, n]) => `${op} ${n}`).join(", ") || "no resources";
  return `${r.stack}: ${changes} in ${r.seconds.toFixed(1)}s`;
}

export function registerStacks(program: Command): void {
  program.command("up <stack>").description("deploy a stack (staging, prod, or <env>-<customer>)")
    .option("--refresh", "read what exists on the engine first: what was removed outside fleet (a pruned network) is made again")
    .action(async (stack: string, opts: { refresh?: boolean }) => {
      const r = await upStack(projectContext(), stack, undefined, { refresh: opts.refresh });
      console.log(summarize(r));
    });

  program.command("preview <stack>").description("show what 'up' would change")
    .action(async (stack: string) => {
      const summary = await preview(projectContext(), stack);
      console.log(`${stack}: ${changeCount(summary)} change(s) ${JSON.stringify(summary)}`);
    });

  program.command("destroy <stack>").description("tear a stack down (customer data volumes are kept); environments only without customers")
    .action(async (stack: string) => {
      const ctx = projectContext();
      const target = parseStackTarget(stack);
      if (target.kind === "customer") {
        const r = await deprovision(ctx, { customer: target.customer, environment: target.environment });
        console.log(`${r.stack}: destroyed and removed; volume ${r.volume} kept`);
      } else {
        await destroyEnvironmentOf(ctx, stack);
        console.log(`${stack}: destroyed`);
      }
    });

  program.command("provision <customer>").description("create or update a customer's stack and deploy it")
    .requiredOption("--env <environment>", "environment stack, e.g. staging or prod")
    .option("--plan <plan>", "plan from the environment's config (default: the customer's current plan, else the first)")
    .action(async (customer: string, opts: { env: string; plan?: string }) => {
      const r = await provision(projectContext(), { customer, environment: opts.env, plan: opts.plan });
      console.log(summarize(r));
      console.log(`${r.outputs.customerId}: ${r.outputs.url} (plan ${r.outputs.plan}, image ${String(r.outputs.image).slice(0, 19)}, version ${r.outputs.version})`);
    });

  program.command("deprovision <customer>").description("destroy a customer's stack and remove it (after a final snapshot, where the environment has backups); the data volume stays")
    .requiredOption("--env <environment>", "environment, e.g. staging or prod")
    .option("--purge-data", "also delete the data volume, only once a final backup (a snapshot restored and compared file by file; " +
      "without backups: an archive, 0600 in a 0700 directory) is verified equal to it; needs --yes")
    .option("--yes", "confirm --purge-data")
    .option("--no-final-backup", "in an environment with backups: remove it without the final snapshot")
    .action(async (customer: string, opts: { env: string; purgeData?: boolean; yes?: boolean; finalBackup: boolean }) => {
      if (opts.purgeData && !opts.yes) throw new Error("--purge-data deletes the customer's data volume: add --yes to confirm (a final backup is written and checked first)");
      const r = await deprovision(projectContext(), { customer, environment: opts.env, purgeData: opts.purgeData, skipFinalBackup: !opts.finalBackup });
      // a deletion is reported only where one happened
      const on = (r.deletedOn ?? []).filter(Boolean);
      if (r.snapshot && r.volumeKept) console.log(`${r.stack}: final snapshot ${r.snapshot.slice(0, 8)}`);
      console.log(r.volumeKept ? `${r.stack}: removed; data volume ${r.volume} kept`
        : r.deletedOn?.length === 0 ? `${r.stack}: removed; no data volume ${r.volume} found: nothing to delete`
          : `${r.stack}: removed; data volume ${r.volume} deleted${on.length ? ` on ${on.join(", ")}` : ""}${r.archive ? `, final backup: ${r.archive}` : ""}` +
            `${!r.archive && r.snapshot ? `, final snapshot ${r.snapshot.slice(0, 8)} (verified equal to it)` : ""}`);
    });

  program.command("list").description("customers per environment: plan, runtime, image, health, URL, last update")
    .option("--env <environment>", "only this environment")
    .option("--json", "print JSON")
    .action(async (opts: { env?: string; json?: boolean }) => {
      const ctx = projectContext();
      const rows = await listCustomers(ctx, opts.env ? [opts.env] : environmentNames(ctx.projectDir));
      if (opts.json) { console.log(JSON.stringify(rows, null, 2)); return; }
      const head = ["environment", "customer", "plan", "runtime", "health", "url", "version", "image", "findings", "last update", "last backup", "last drill"];
      const outcome = (o: CustomerListing["lastBackup"]) => (o ? `${o.at.slice(0, 16).replace("T", " ")} ${o.ok ? "ok" : "FAILED"}` : "never");
      const table = rows.map((r) => [r.environment, r.customer, r.plan, r.runtime, r.health, r.url, r.version, r.image.slice(0, 19), r.findings, r.lastUpdate,
        outcome(r.lastBackup), outcome(r.lastDrill)]);
      console.log(rows.length === 0 ? "no customers" : formatTable(head, table));
    });

  program.command("rollout").description("staging first, gate, then prod in waves (canary first); rolls failed stacks back")
    .option("--wave-size <n>", "prod customers per wave after the canary (default: prod's rollout.waveSize)", (v) => Number(v))
    .option("--concurrency <n>", "customers of a wave deployed at the same time (default: prod's rollout.concurrency, else one per CPU core)", (v) => Number(v))
    .option("--staging <environment>", "the environment that goes first and gates (default: staging)")
    .option("--prod <environment>", "the environment that follows in waves (default: prod)")
    .action(async (opts: { waveSize?: number; concurrency?: number; staging?: string; prod?: string }) => {
      const report = await rollout(projectContext(), { waveSize: opts.waveSize, concurrency: opts.concurrency, staging: opts.staging, prod: opts.prod });
      console.log(formatRolloutReport(report));
      if (!report.ok) process.exitCode = 1;
    });

  program.command("migrate <customer>").description("adopt an old deployment: archive its volume, make it owned by 1000:1000, start the hardened service")
    .requiredOption("--env <environment>", "environment, e.g. staging or prod")
    .action(async (customer: string, opts: { env: string }) => {
      const r = await migrate(projectContext(), { customer, environment: opts.env });
      console.log(r.adopted ? `${customer}: archived to ${r.archive}; ${r.foreign.length}${r.foreign.length >= 20 ? "+" : ""} path(s) now owned by 1000:1000`
        : `${customer}: nothing owned by another user; no change to the volume`);
      console.log(summarize(r.up));
    });
}
