/**
 * A customer's lifecycle: provision (also a plan change), migrate an old deployment, deprovision.
 * Every entry point validates its names first (config/targets.ts), before any path, lock, stack or
 * Docker name exists. A failed update of a customer that ran before goes back, automatically, to
 * what it ran (its image and plan), and the command still fails with the reason.
 */
import * as fs from "node:fs";
import type Dockerode from "dockerode";
import { ConfigError } from "../config/errors";
import { checkCustomerInEnvironment } from "../config/load";
import type { CustomerConfig } from "../config/schema";
import { parseEnvironmentName, type CustomerTarget } from "../config/targets";
import { ArchiveError, archiveVolume } from "../engine/oneShot";
import { customerNames } from "../hardening/names";
import { backupDir, type FleetContext } from "../project/context";
import { customersLock, stackLock, WAIT_FOR_BACKUPS, withLock, withWaitingLock } from "../project/lock";
import { customerConfigOrBare, readCustomerConfig, stackFile, writeCustomerStackFile } from "../project/stackFiles";
import { stderrLog, type Log } from "../pulumi/progress";
import { outputImage, readStack, stackImage } from "../pulumi/stackState";
import { prepareStack, removeStack, runDestroy, runUp, unprotectAll, withStack, type FleetStack, type UpResult } from "../pulumi/stacks";
import type { Environment } from "./environment";
import { finalSnapshot, verifiedSnapshotOfVolume } from "./backups";
import { adoptVolume, stopForeignUsers, type AdoptResult } from "./volumes";

export interface ProvisionRequest {
  customer: string;
  environment: string;
  plan?: string;
}

/** A failed update that was undone: the customer runs what it ran before. */
export class RolledBackError extends Error {}

/** What a request was checked to: the customer's plan, and its config as its stack file has it now (undefined: new). */
export interface CheckedRequest {
  plan: string;
  current: CustomerConfig | undefined;
}

/**
 * The customer's plan and id checked against its environment, before anything is created. A new
 * customer's node (on a swarm) is chosen when its stack file is written (recordCustomer), so it is
 * not checked here.
 */
export function checkRequest(environment: Environment, target: CustomerTarget, plan?: string): CheckedRequest {
  const env = environment.config;
  const current = readCustomerConfig(environment.ctx.projectDir, target.stack);
  const chosen = plan ?? current?.plan ?? Object.keys(env.plans)[0]!;
  if (!Object.hasOwn(env.plans, chosen)) { // own keys only: 'constructor' is `in` every object
    throw new ConfigError("--plan", [{ path: "--plan", found: JSON.stringify(chosen), message: `must be one of the plans of '${env.name}': ${Object.keys(env.plans).join(", ")}` }]);
  }
  // a customer id the environment's edge proxy uses for its own names is refused here, before anything exists
  checkCustomerInEnvironment({ id: target.customer, environment: target.environment, plan: chosen, node: current?.node }, env,
    { placementPending: current === undefined || current.node === undefined });
  return { plan: chosen, current };
}

/**
 * Writes the customer's stack file; the files of one environment are written one at a time, and a
 * new customer's node is chosen (DeployTarget.placement) while no other provision writes one.
 */
async function recordCustomer(environment: Environment, target: CustomerTarget, plan: string, dataHome?: string): Promise<CustomerConfig> {
  const { ctx } = environment;
  return withWaitingLock(ctx.projectDir, customersLock(target.environment), async () => {
    const mine = readCustomerConfig(ctx.projectDir, target.stack);
    const node = environment.target.placement(mine, environment.customers(), dataHome, environment.config.plans[plan]!.sandbox);
    const customer: CustomerConfig = { id: target.customer, environment: target.environment, plan, image: mine?.image, node };
    // a node that does not fit the plan (its data on a node of the other kind) is refused before the stack file is written
    checkCustomerInEnvironment(customer, environment.config);
    writeCustomerStackFile(ctx.projectDir, customer, environment.dockerHost);
    return customer;
  });
}

/** The image the environment stack publishes; says what to run first when there is none. */
export async function environmentImage(ctx: FleetContext, environment: string): Promise<string> {
  const state = await readStack(ctx, parseEnvironmentName(environment, "environment").stack);
  if (!state) {
    throw new Error(`environment stack '${environment}' does not exist yet: run 'fleet up ${environment}' first`);
  }
  const ref = outputImage(state.outputs);
  if (!ref) throw new Error(`environment stack '${environment}' has no image yet: run 'fleet up ${environment}' first`);
  return ref;
}

/**
 * Applies `change` (which writes the customer's stack file) and deploys. When the deployment fails
 * and the customer ran before, its previous stack file comes back, pinned to the image it ran, and is
 * deployed again; the error says so. A first deployment has nothing to go back to: it just fails.
 */
async function deployWithRollback(environment: Environment, target: CustomerTarget, stack: FleetStack, envImage: string, log: Log,
  change: () => Promise<void>, opts: { refresh?: boolean } = {}): Promise<UpResult> {
  const { ctx } = environment;
  const before = readCustomerConfig(ctx.projectDir, target.stack);
  const previousImage = before ? await stackImage(ctx, target) : undefined;
  await change();
  try {
    return await runUp(stack, log, opts);
  } catch (err) {
    if (!before || !previousImage) throw err;
    const failure = (err as Error).message;
    // pinned only when the image it ran is not the one its config would give it anyway
    const image = (before.image ?? envImage) === previousImage ? before.image : previousImage;
    log(`${target.stack}: the update failed; going back to image ${previousImage.slice(0, 19)} and plan ${before.plan}`);
    writeCustomerStackFile(ctx.projectDir, { ...before, image }, environment.dockerHost);
    try {
      await runUp(stack, log);
    } catch (again) {
      throw new Error(`${failure}\n  going back to what ran before failed too: ${(again as Error).message.split("\n").slice(0, 2).join(" ")}\n` +
        `  ${target.customer} is down: fix the cause, then run 'fleet up ${target.stack}'`);
    }
    const pinned = image ? `, pinned to that image until a rollout moves it ('fleet rollout')` : "";
    throw new RolledBackError(`${failure}\n  rolled back: ${target.stack} runs ${previousImage.slice(0, 19)} on plan ${before.plan} again${pinned}; ` +
      "nothing was lost (the data volume is untouched)");
  }
}

/** Creates or updates a customer (a plan change included) and deploys it. */
export async function provisionCustomer(environment: Environment, target: CustomerTarget, plan: string | undefined,
  log: Log = stderrLog): Promise<UpResult> {
  const { ctx } = environment;
  const checked = checkRequest(environment, target, plan); // every input error surfaces here, before anything exists
  const envImage = await environmentImage(ctx, target.environment); // and a missing environment too
  // a customer without a node (new, or deprovisioned) whose data volume is on a node goes back there
  const dataHome = checked.current?.node === undefined ? await environment.target.findDataHome(target.customer, envImage) : undefined;
  if (dataHome) log(`${target.stack}: its data volume is on ${dataHome}: it goes there`);
  // the engine it goes to runs it as its plan says (recordCustomer places it the same way, under the customers' lock)
  const sandbox = environment.config.plans[checked.plan]!.sandbox;
  await environment.target.checkRuntime(checked.plan, sandbox, environment.target.placement(checked.current, environment.customers(), dataHome, sandbox));
  return withStack(ctx, target, log, async (stack) => {
    return deployWithRollback(environment, target, stack, envImage, log, async () => {
      const customer = await recordCustomer(environment, target, checked.plan, dataHome);
      // the volume is where the target keeps the customer's data (its node, or the host); the jobs
      // over it run fleet's tools image there, not the customer's
      const engine = environment.target.dataEngine(customer);
      await adoptVolume(ctx, engine, customerNames(target.environment, target.customer).dataVolume, log);
    });
  }, true, environment.stackSettings(target));
}

/** `fleet up <env>-<customer>`: deploys the customer as configured, going back to what it ran on failure. */
export async function upCustomer(environment: Environment, target: CustomerTarget, log: Log = stderrLog,
  opts: { refresh?: boolean } = {}): Promise<UpResult> {
  const { current } = checkRequest(environment, target);
  if (!current) {
    throw new Error(`no customer stack file for ${target.stack}: run 'fleet provision ${target.customer} --env ${target.environment}'`);
  }
  const envImage = await environmentImage(environment.ctx, target.environment);
  await environment.target.checkRuntime(current.plan, environment.config.plans[current.plan]!.sandbox, current.node);
  return withStack(environment.ctx, target, log, async (stack) => deployWithRollback(environment, target, stack, envImage, log, async () => {}, opts),
    true, environment.stackSettings(target));
}

/** Adopts an old deployment of the customer: its volume archived and owned by 1000:1000, then the hardened service deployed. */
export async function migrateCustomer(environment: Environment, target: CustomerTarget, log: Log = stderrLog): Promise<AdoptResult & { up: UpResult }> {
  const { ctx } = environment;
  const checked = checkRequest(environment, target);
  const image = await environmentImage(ctx, target.environment);
  return withStack(ctx, target, log, async (stack) => {
    const engine = environment.engine();
    const volume = customerNames(target.environment, target.customer).dataVolume;
    let adopted: AdoptResult = { adopted: false, foreign: [] };
    const up = await deployWithRollback(environment, target, stack, image, log, async () => {
      const isNew = readCustomerConfig(ctx.projectDir, target.stack) === undefined;
      const customer = await recordCustomer(environment, target, checked.plan);
      if (isNew) log(`adopting ${customer.id} into ${customer.environment}`);
      // the old deployment must not write while owners change; hardened-fleet's own container keeps running
      await stopForeignUsers(engine, volume, log);
      adopted = await adoptVolume(ctx, engine, volume, log);
    });
    return { ...adopted, up };
  }, true, environment.stackSettings(target));
}

export interface DeprovisionResult {
  stack: string;
  volume: string;
  volumeKept: boolean;
  archive?: string;
  /** the final snapshot (environments with backups); with purgeData, the one verified equal to the volume */
  snapshot?: string;
  /** with purgeData: where the volume was deleted (a node name on a swarm, "" on one host); empty when there was none */
  deletedOn?: string[];
}

/** Removes a volume; a swarm node removes a removed service's stopped task containers a moment later, so "in use" is waited out. */
async function removeVolume(engine: Dockerode, volume: string, waitSeconds = 60): Promise<void> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    try {
      await engine.getVolume(volume).remove();
      return;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return;
      if ((err as { statusCode?: number }).statusCode !== 409 || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export interface DeprovisionOptions {
  /** also delete the data volume: only once its final backup is verified */
  purgeData?: boolean;
  /** go without the final snapshot of an environment that has backups (the operator's explicit choice) */
  skipFinalBackup?: boolean;
}

/**
 * Destroys a customer's stack and removes it. In an environment with backups, a final snapshot is
 * taken first (the customer paused for it), and nothing is removed when it fails. The data volume
 * stays unless purgeData: then it is deleted only once a snapshot of it (backups) or an archive on
 * this host (no backups) is verified equal to it, file by file.
 */
export async function deprovisionCustomer(environment: Environment, target: CustomerTarget, opts: DeprovisionOptions = {},
  log: Log = stderrLog): Promise<DeprovisionResult> {
  const { ctx } = environment;
  const volume = customerNames(target.environment, target.customer).dataVolume;
  // a backup of the customer running now is waited for, as a deployment waits for it
  return withLock(ctx.projectDir, stackLock(target.stack), async () => {
    const config = readCustomerConfig(ctx.projectDir, target.stack);
    let finalBackup: Awaited<ReturnType<typeof finalSnapshot>>;
    if (config && environment.config.backup && !opts.skipFinalBackup &&
      (await environment.target.volumeHolders(volume, config)).length > 0) {
      try {
        finalBackup = await finalSnapshot(environment, config, log);
      } catch (err) {
        throw new Error(`${target.stack}: nothing was removed: ${(err as Error).message}\n  fix the cause and run this again, ` +
          `or add --no-final-backup to remove it without a final snapshot`);
      }
    }
    if (await readStack(ctx, target.stack)) {
      const stack = await prepareStack(ctx, target, log, false, environment.stackSettings(target));
      await unprotectAll(stack);
      await runDestroy(stack, log);
      await removeStack(stack);
    } else {
      log(`stack ${target.stack} does not exist; nothing to destroy`);
    }
    fs.rmSync(stackFile(ctx.projectDir, target.stack), { force: true });
    const snapshot = finalBackup?.record.snapshot;
    if (!opts.purgeData) return { stack: target.stack, volume, volumeKept: true, snapshot };
    // wherever the target keeps it (on a swarm every node's engine is asked: the stack file may be gone, or name another node)
    const found = await environment.target.volumeHolders(volume, config);
    // the customer's own node last: with backups, its final snapshot is then the newest (a copy a move left elsewhere is older)
    const ownLast = (h: (typeof found)[number]) => Number(h.node !== undefined && h.node === config?.node);
    const holders = [...found].sort((a, b) => ownLast(a) - ownLast(b));
    const deletedOn: string[] = [];
    let archive: string | undefined;
    let verified: string | undefined;
    for (const { node, engine } of holders) {
      const where = node ? ` on ${node}` : "";
      // the volume goes only once a copy of it is verified equal to it, file by file
      try {
        if (finalBackup) {
          verified = await verifiedSnapshotOfVolume(finalBackup.backups, { ...(config ?? customerConfigOrBare(ctx.projectDir, target)), node }, engine, log);
        } else {
          archive = await archiveVolume(engine, volume, backupDir(ctx), node);
          log(`final backup of ${volume}${where}: ${archive} (read back and checked against the volume)`);
        }
      } catch (err) {
        const kept = err instanceof ArchiveError ? (err.kept ? ` (the archive stays at ${err.archive} for inspection)` : ` (archive ${err.archive})`) : "";
        const fix = finalBackup ? "the backup repository" : `space, permissions of ${backupDir(ctx)}`;
        throw new Error(`${target.stack}: removed, but the data volume ${volume}${where} is KEPT: its final backup could not be written and checked${kept}: ` +
          `${(err as Error).message}\n  fix the cause (${fix}), then run ` +
          `'fleet deprovision ${target.customer} --env ${target.environment} --purge-data --yes' again`);
      }
      await removeVolume(engine, volume);
      deletedOn.push(node ?? "");
    }
    // reported in the order the target lists its nodes
    deletedOn.sort((a, b) => found.findIndex((h) => (h.node ?? "") === a) - found.findIndex((h) => (h.node ?? "") === b));
    return { stack: target.stack, volume, volumeKept: false, archive, snapshot: verified ?? snapshot, deletedOn };
  }, WAIT_FOR_BACKUPS);
}
