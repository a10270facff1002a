/**
 * What an operator does with the fleet: the public API of hardened-fleet's operations. The `fleet`
 * CLI is a thin layer over these; a payment webhook can call `provision`. Every function here
 * validates the names it is given, then loads the environment once (environment.ts) and passes it down.
 *
 *  - environment.ts: an environment loaded once: its config, engine and DeployTarget (src/targets)
 *  - customers.ts: provision (plan changes too), migrate, deprovision, with rollback on failure
 *  - rollout.ts: staging, gate, then prod in waves
 *  - move.ts: a customer to another node (target: swarm)
 *  - edge.ts: an environment's deployment with its edge ports checked, its local CA
 *  - volumes.ts: adopting data volumes of old deployments
 *  - listing.ts: the customer listing
 *  - backups.ts: restic backups of customers' data, restores, drills and pruning (src/backup/)
 * Running one stack is src/pulumi/stacks.ts; the project's files and locks are src/project/.
 */
import type { AuditFilter, ContainerAudit } from "../audit/audit";
import { parseCustomerTarget, parseEnvironmentName, parseStackTarget, type CustomerTarget } from "../config/targets";
import type { FleetContext } from "../project/context";
import { environmentNames } from "../project/stackFiles";
import { stderrLog, type Log } from "../pulumi/progress";
import { destroyEnvironment as destroyEnvironmentStack, previewStack, type UpResult } from "../pulumi/stacks";
import {
  deprovisionCustomer, migrateCustomer, provisionCustomer, upCustomer as upCustomerIn,
  type DeprovisionOptions, type DeprovisionResult, type ProvisionRequest,
} from "./customers";
import { edgeRootCertificate, upEnvironment } from "./edge";
import { loadEnvironment } from "./environment";
import { listCustomers as listIn, type CustomerListing } from "./listing";
import { moveCustomerToNode as moveIn, type MoveResult } from "./move";
import { rolloutEnvironments, type RolloutOptions, type RolloutReport } from "./rollout";
import type { AdoptResult } from "./volumes";
import {
  backupCustomer, backupMany, drill, initBackups, listSnapshots, openBackups, pruneBackups as pruneIn, restoreCustomer,
  type DrillResult, type PruneRequest, type PruneResult, type RestoreRequest, type RestoreResult, type RunSummary,
} from "./backups";
import type { BackupRecord } from "../backup/records";
import type { Snapshot } from "../backup/snapshots";

export { fleetContext, backupDir, type FleetContext } from "../project/context";
export { environmentNames } from "../project/stackFiles";
export { loadEnvironment, type Environment } from "./environment";
export { environmentImage, checkRequest, RolledBackError } from "./customers";
// for an entry point that loaded the environment already (loadEnvironment)
export { provisionCustomer, deprovisionCustomer, migrateCustomer } from "./customers";
export type { ProvisionRequest, DeprovisionOptions, DeprovisionResult } from "./customers";
export { previewStack, destroyStack, destroyEnvironment, changeCount, explainFailure, type UpResult } from "../pulumi/stacks";
export { listStacks, stackExists, stackImage } from "../pulumi/stackState";
export { adoptVolume, type AdoptResult } from "./volumes";
export { getThroughEdge } from "./edge";
export { formatRolloutReport, type RolloutOptions, type RolloutReport } from "./rollout";
export type { CustomerListing } from "./listing";
export type { MoveResult } from "./move";
export type { DrillResult, PruneResult, RestoreResult, RunSummary } from "./backups";
export type { BackupRecord } from "../backup/records";
export type { Snapshot } from "../backup/snapshots";

/** `pulumi preview` of one stack (an environment or a customer), with its environment's passphrase and engine. */
export async function preview(ctx: FleetContext, stack: string, log: Log = stderrLog): Promise<Record<string, number>> {
  const target = parseStackTarget(stack);
  return previewStack(ctx, target.stack, log, loadEnvironment(ctx, target.environment, "stack").stackSettings(target));
}

/** Destroys an environment stack that has no customer stacks left. */
export async function destroyEnvironmentOf(ctx: FleetContext, environment: string, log: Log = stderrLog): Promise<void> {
  const target = parseStackTarget(environment, "environment");
  await destroyEnvironmentStack(ctx, target.stack, log, loadEnvironment(ctx, target.environment, "environment").stackSettings(target));
}

/** Creates or updates a customer (a plan change included) and deploys it. */
export async function provision(ctx: FleetContext, req: ProvisionRequest, log: Log = stderrLog): Promise<UpResult> {
  const target = parseCustomerTarget(req.customer, req.environment);
  return provisionCustomer(loadEnvironment(ctx, target.environment), target, req.plan, log);
}

/** Adopts an old deployment of a customer (its volume archived and owned by 1000:1000), then deploys it. */
export async function migrate(ctx: FleetContext, req: { customer: string; environment: string },
  log: Log = stderrLog): Promise<AdoptResult & { up: UpResult }> {
  const target = parseCustomerTarget(req.customer, req.environment);
  return migrateCustomer(loadEnvironment(ctx, target.environment), target, log);
}

/**
 * Destroys a customer's stack and removes it, after a final snapshot where the environment has
 * backups. The data volume stays unless purgeData (deleted once a copy is verified equal to it).
 */
export async function deprovision(ctx: FleetContext, req: { customer: string; environment: string } & DeprovisionOptions,
  log: Log = stderrLog): Promise<DeprovisionResult> {
  const target = parseCustomerTarget(req.customer, req.environment);
  return deprovisionCustomer(loadEnvironment(ctx, target.environment), target, req, log);
}

/** `fleet up <env>-<customer>`: deploys the customer as configured, going back to what it ran on failure. */
export async function upCustomer(ctx: FleetContext, target: CustomerTarget, log: Log = stderrLog): Promise<UpResult> {
  return upCustomerIn(loadEnvironment(ctx, target.environment), target, log);
}

/** `fleet up <stack>`: an environment as configured (its edge ports checked first), or a customer with rollback to what it ran on failure. */
/** `fleet up`: `refresh` reads what exists first (what was removed outside fleet is made again). */
export async function upStack(ctx: FleetContext, stackName: string, log: Log = stderrLog, opts: { refresh?: boolean } = {}): Promise<UpResult> {
  const target = parseStackTarget(stackName);
  const environment = loadEnvironment(ctx, target.environment, "stack");
  return target.kind === "customer" ? upCustomerIn(environment, target, log, opts) : upEnvironment(environment, log, opts);
}

/** `fleet list`: the customers of these environments (default: every environment of the project). */
export async function listCustomers(ctx: FleetContext, environments: string[] = environmentNames(ctx.projectDir)): Promise<CustomerListing[]> {
  return listIn(environments.map((e) => loadEnvironment(ctx, e)));
}

/** `fleet rollout`: staging, gated, then prod in waves; one rollout at a time. */
export async function rollout(ctx: FleetContext, opts: RolloutOptions = {}, log: Log = stderrLog): Promise<RolloutReport> {
  const staging = loadEnvironment(ctx, opts.staging ?? "staging", "staging environment");
  const prod = loadEnvironment(ctx, opts.prod ?? "prod", "prod environment");
  return rolloutEnvironments(staging, prod, opts, log);
}

/** `fleet move`: a customer and its data to another node of its environment. */
export async function moveCustomerToNode(ctx: FleetContext, req: { customer: string; environment: string; to: string; plan?: string },
  log: Log = stderrLog): Promise<MoveResult> {
  const target = parseCustomerTarget(req.customer, req.environment);
  return moveIn(loadEnvironment(ctx, target.environment), target, req.to, log, req.plan);
}

/** `fleet audit`: what runs in each environment, on every engine its target uses; a container seen twice is reported once. */
export async function auditEnvironments(ctx: FleetContext, environments: string[], filter: Omit<AuditFilter, "environment"> = {}): Promise<ContainerAudit[]> {
  const audits: ContainerAudit[] = [];
  const seen = new Set<string>();
  for (const environment of environments.map((e) => loadEnvironment(ctx, e))) {
    for (const a of await environment.target.audit({ ...filter, environment: environment.name })) {
      if (!seen.has(a.container)) audits.push(a);
      seen.add(a.container);
    }
  }
  return audits;
}

/** `fleet edge ca`: the PEM root certificate of the environment's local CA (edge.tls: internal). */
export async function edgeCaCertificate(ctx: FleetContext, environment: string): Promise<string> {
  return edgeRootCertificate(loadEnvironment(ctx, environment));
}

/** `fleet backup init`: the environment's backup password, made when it has none (a Pulumi secret of its stack). */
export async function initEnvironmentBackups(ctx: FleetContext, environment: string, log: Log = stderrLog): Promise<{ created: boolean; repository: string }> {
  return initBackups(loadEnvironment(ctx, parseEnvironmentName(environment).environment), log);
}

/** `fleet backup <customer>`: one consistent snapshot of the customer's data now. */
export async function backup(ctx: FleetContext, req: { customer: string; environment: string }, log: Log = stderrLog): Promise<BackupRecord> {
  const target = parseCustomerTarget(req.customer, req.environment);
  return backupCustomer(await openBackups(loadEnvironment(ctx, target.environment)), target, "manual", log);
}

/** `fleet backup --all` (every customer) or `--due` (those whose scheduled slot passed, or whose last attempt failed). */
export async function backupEnvironment(ctx: FleetContext, environment: string, opts: { dueOnly: boolean }, log: Log = stderrLog): Promise<RunSummary> {
  return backupMany(await openBackups(loadEnvironment(ctx, parseEnvironmentName(environment).environment)), opts, log);
}

/** `fleet backups <customer>`: the snapshots of its repository, oldest first. */
export async function snapshotsOf(ctx: FleetContext, req: { customer: string; environment: string }): Promise<Snapshot[]> {
  const target = parseCustomerTarget(req.customer, req.environment);
  return listSnapshots(await openBackups(loadEnvironment(ctx, target.environment)), target);
}

/** `fleet restore <customer>`: from a snapshot (default: the newest), into the customer or into another volume. */
export async function restore(ctx: FleetContext, req: { customer: string; environment: string } & RestoreRequest, log: Log = stderrLog): Promise<RestoreResult> {
  const target = parseCustomerTarget(req.customer, req.environment);
  return restoreCustomer(await openBackups(loadEnvironment(ctx, target.environment)), target, req, log);
}

/** `fleet backup drill`: every customer's newest snapshot restored, checked and booted without a network. */
export async function drillBackups(ctx: FleetContext, environment: string, log: Log = stderrLog): Promise<DrillResult[]> {
  return drill(await openBackups(loadEnvironment(ctx, parseEnvironmentName(environment).environment)), log);
}

/** `fleet backup prune`: the retention policy, with the repository's delete credential (never kept by fleet). */
export async function pruneBackups(ctx: FleetContext, environment: string, req: PruneRequest, log: Log = stderrLog): Promise<PruneResult[]> {
  return pruneIn(await openBackups(loadEnvironment(ctx, parseEnvironmentName(environment).environment)), req, log);
}
