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
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import { readEnvironmentConfig } from "../config/stackFiles";
import { parseCustomerTarget, parseEnvironmentName, type CustomerTarget } from "../config/targets";
import { configuredDockerHost, engineFor } from "../engine/connection";
import { ArchiveError, archiveVolume } from "../engine/oneShot";
import { customerNames } from "../hardening/names";
import { customersLock, stackLock, withLock, withWaitingLock } from "./lock";
import { stderrLog, type Log } from "./progress";
import { readStack } from "./backendState";
import { outputImage, prepareStack, removeStack, runDestroy, runUp, stackImage, unprotectAll, withStack, type FleetStack, type UpResult } from "./stacks";
import { customerConfigs, readCustomerConfig, stackFile, writeCustomerStackFile } from "./stackFiles";
import { chooseNode, dataEngine, dataNode, ensureImage, nodesWithVolume } from "./swarm";
import { adoptVolume, backupDir, stopForeignUsers, type AdoptResult } from "./volumes";
import type { FleetContext } from "./workspace";

export interface ProvisionRequest {
  customer: string;
  environment: string;
  plan?: string;
}

/** A failed update that was undone: the customer runs what it ran before. */
export class RolledBackError extends Error {}

/** The environment's config and the customer's plan, checked before anything is created. */
export function checkRequest(projectDir: string, target: CustomerTarget, plan?: string): { env: EnvironmentConfig; plan: string } {
  if (!fs.existsSync(stackFile(projectDir, target.environment))) {
    throw new ConfigError("--env", [{ path: "--env", found: JSON.stringify(target.environment),
      message: `names no environment stack of this project (no Pulumi.${target.environment}.yaml): use staging or prod, or add that file` }]);
  }
  const env = readEnvironmentConfig(projectDir, target.environment);
  const chosen = plan ?? readCustomerConfig(projectDir, target.stack)?.plan ?? Object.keys(env.plans)[0]!;
  if (!Object.hasOwn(env.plans, chosen)) { // own keys only: 'constructor' is `in` every object
    throw new ConfigError("--plan", [{ path: "--plan", found: JSON.stringify(chosen), message: `must be one of the plans of '${env.name}': ${Object.keys(env.plans).join(", ")}` }]);
  }
  // a customer id the environment's edge proxy uses for its own names is refused here, before anything exists
  // (on a swarm its node is its own, or the one provision chooses next)
  const node = env.target !== "swarm" ? undefined
    : readCustomerConfig(projectDir, target.stack)?.node ?? chooseNode(env, customerConfigs(projectDir, target.environment));
  checkCustomerInEnvironment({ id: target.customer, environment: target.environment, plan: chosen, node }, env);
  return { env, plan: chosen };
}

/** Writes the customer's stack file; the files of one environment are written one at a time. */
async function recordCustomer(ctx: FleetContext, target: CustomerTarget, plan?: string, dataHome?: string): Promise<CustomerConfig> {
  return withWaitingLock(ctx.projectDir, customersLock(target.environment), async () => {
    const checked = checkRequest(ctx.projectDir, target, plan);
    const mine = readCustomerConfig(ctx.projectDir, target.stack);
    // on a swarm a new customer goes to the node its data is on (provisioned again), else to the
    // least loaded node, and stays there until 'fleet move'
    const node = checked.env.target !== "swarm" ? undefined
      : mine?.node ?? dataHome ?? chooseNode(checked.env, customerConfigs(ctx.projectDir, target.environment));
    const customer: CustomerConfig = { id: target.customer, environment: target.environment, plan: checked.plan, image: mine?.image, node };
    writeCustomerStackFile(ctx.projectDir, customer, configuredDockerHost(ctx.projectDir, target.environment));
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
async function deployWithRollback(ctx: FleetContext, target: CustomerTarget, stack: FleetStack, envImage: string, log: Log,
  change: () => Promise<void>): Promise<UpResult> {
  const before = readCustomerConfig(ctx.projectDir, target.stack);
  const previousImage = before ? await stackImage(ctx, target) : undefined;
  await change();
  try {
    return await runUp(stack, log);
  } catch (err) {
    if (!before || !previousImage) throw err;
    const failure = (err as Error).message;
    // pinned only when the image it ran is not the one its config would give it anyway
    const image = (before.image ?? envImage) === previousImage ? before.image : previousImage;
    log(`${target.stack}: the update failed; going back to image ${previousImage.slice(0, 19)} and plan ${before.plan}`);
    writeCustomerStackFile(ctx.projectDir, { ...before, image }, configuredDockerHost(ctx.projectDir, target.environment));
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
export async function provision(ctx: FleetContext, req: ProvisionRequest, log: Log = stderrLog): Promise<UpResult> {
  const target = parseCustomerTarget(req.customer, req.environment);
  checkRequest(ctx.projectDir, target, req.plan); // every input error surfaces here, before anything exists
  const envImage = await environmentImage(ctx, target.environment); // and a missing environment too
  // on a swarm, a customer without a node (new, or deprovisioned) whose data volume is on a node goes back there
  const env = readEnvironmentConfig(ctx.projectDir, target.environment);
  const dataHome = env.target === "swarm" && !readCustomerConfig(ctx.projectDir, target.stack)?.node
    ? await dataNode(env, target.customer, envImage) : undefined;
  if (dataHome) log(`${target.stack}: its data volume is on ${dataHome}: it goes there`);
  return withStack(ctx, target, log, async (stack) => {
    return deployWithRollback(ctx, target, stack, envImage, log, async () => {
      const customer = await recordCustomer(ctx, target, req.plan, dataHome);
      // the volume is on the customer's node (swarm) or the environment's engine
      const engine = dataEngine(ctx.projectDir, readEnvironmentConfig(ctx.projectDir, target.environment), customer);
      await adoptVolume(ctx, engine, customerNames(target.environment, target.customer).dataVolume, envImage, log);
    });
  });
}

/** `fleet up <env>-<customer>`: deploys the customer as configured, going back to what it ran on failure. */
export async function upCustomer(ctx: FleetContext, target: CustomerTarget, log: Log = stderrLog): Promise<UpResult> {
  checkRequest(ctx.projectDir, target);
  if (!readCustomerConfig(ctx.projectDir, target.stack)) {
    throw new Error(`no customer stack file for ${target.stack}: run 'fleet provision ${target.customer} --env ${target.environment}'`);
  }
  const envImage = await environmentImage(ctx, target.environment);
  return withStack(ctx, target, log, async (stack) => deployWithRollback(ctx, target, stack, envImage, log, async () => {}));
}

export async function migrate(ctx: FleetContext, req: { customer: string; environment: string },
  log: Log = stderrLog): Promise<AdoptResult & { up: UpResult }> {
  const target = parseCustomerTarget(req.customer, req.environment);
  checkRequest(ctx.projectDir, target);
  const image = await environmentImage(ctx, target.environment);
  return withStack(ctx, target, log, async (stack) => {
    const engine = engineFor(ctx.projectDir, target.environment);
    const volume = customerNames(target.environment, target.customer).dataVolume;
    let adopted: AdoptResult = { adopted: false, foreign: [] };
    const up = await deployWithRollback(ctx, target, stack, image, log, async () => {
      const isNew = readCustomerConfig(ctx.projectDir, target.stack) === undefined;
      const customer = await recordCustomer(ctx, target);
      if (isNew) log(`adopting ${customer.id} into ${customer.environment}`);
      // the old deployment must not write while owners change; hardened-fleet's own container keeps running
      await stopForeignUsers(engine, volume, log);
      adopted = await adoptVolume(ctx, engine, volume, image, log);
    });
    return { ...adopted, up };
  });
}

export interface DeprovisionResult {
  stack: string;
  volume: string;
  volumeKept: boolean;
  archive?: string;
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

/** Destroys a customer's stack and removes it. The data volume stays unless purgeData (archived first). */
export async function deprovision(ctx: FleetContext, req: { customer: string; environment: string; purgeData?: boolean },
  log: Log = stderrLog): Promise<DeprovisionResult> {
  const target = parseCustomerTarget(req.customer, req.environment);
  const volume = customerNames(target.environment, target.customer).dataVolume;
  return withLock(ctx.projectDir, stackLock(target.stack), async () => {
    const config = readCustomerConfig(ctx.projectDir, target.stack);
    let image: string | undefined;
    if (await readStack(ctx, target.stack)) {
      const stack = await prepareStack(ctx, target, log, false);
      image = await stackImage(ctx, target);
      await unprotectAll(stack);
      await runDestroy(stack, log);
      await removeStack(stack);
    } else {
      log(`stack ${target.stack} does not exist; nothing to destroy`);
    }
    fs.rmSync(stackFile(ctx.projectDir, target.stack), { force: true });
    if (!req.purgeData) return { stack: target.stack, volume, volumeKept: true };
    const env = readEnvironmentConfig(ctx.projectDir, target.environment);
    // on a swarm, on every node that has it (every node's engine is asked: the stack file may be gone,
    // or name another node); elsewhere, on the environment's engine
    const holders = env.target === "swarm" ? await nodesWithVolume(env, volume) : await (async () => {
      const engine = dataEngine(ctx.projectDir, env, config);
      return (await engine.getVolume(volume).inspect().then(() => true, () => false)) ? [{ node: undefined as string | undefined, engine }] : [];
    })();
    const deletedOn: string[] = [];
    let archive: string | undefined;
    for (const { node, engine } of holders) {
      const runImage = image ?? (await environmentImage(ctx, target.environment));
      if (node) await ensureImage(engine, runImage);
      // the volume goes only once its archive is on the disk (fsynced) and read back equal to it
      try {
        archive = await archiveVolume(engine, runImage, volume, backupDir(ctx), node);
      } catch (err) {
        const where = err instanceof ArchiveError ? (err.kept ? ` (the archive stays at ${err.archive} for inspection)` : ` (archive ${err.archive})`) : "";
        throw new Error(`${target.stack}: removed, but the data volume ${volume}${node ? ` on ${node}` : ""} is KEPT: its final backup could not be written and checked${where}: ` +
          `${(err as Error).message}\n  fix the cause (space, permissions of ${backupDir(ctx)}), then run ` +
          `'fleet deprovision ${target.customer} --env ${target.environment} --purge-data --yes' again`);
      }
      log(`final backup of ${volume}${node ? ` on ${node}` : ""}: ${archive} (read back and checked against the volume)`);
      await removeVolume(engine, volume);
      deletedOn.push(node ?? "");
    }
    return { stack: target.stack, volume, volumeKept: false, archive, deletedOn };
  });
}
