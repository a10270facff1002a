/**
 * What an operator does with the fleet, on the Automation API: deploy an environment, provision,
 * deprovision and list customers. The `fleet` CLI is a thin layer over these; a payment webhook can
 * call `provision` directly.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { OutputMap, Stack } from "@pulumi/pulumi/automation";
import Dockerode from "dockerode";
import { archiveVolume, chownVolume, foreignOwned } from "../engine/oneShot";
import { withLock, withWaitingLock } from "./lock";
import { parseCustomerId } from "../config/load";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import { readEnvironmentConfig } from "../config/stackFiles";
import { ConfigError } from "../config/errors";
import { customerNames, customerStackName } from "../hardening/names";
import { ensureBuilt } from "./build";
import { pulumiOutput, stderrLog, type Log } from "./progress";
import { customerConfigs, nextFreePort, readCustomerConfig, stackFile, writeCustomerStackFile } from "./stackFiles";
import { listStacks, openStack, stackSummaries, type FleetContext } from "./workspace";

export interface UpResult {
  stack: string;
  outputs: Record<string, unknown>;
  changes: Record<string, number>;
  seconds: number;
}

function plainOutputs(outputs: OutputMap): Record<string, unknown> {
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.secret ? "[secret]" : v.value]));
}

export async function upStack(ctx: FleetContext, stackName: string, log: Log = stderrLog, lock = true): Promise<UpResult> {
  if (lock) return withLock(ctx.projectDir, stackName, () => upStack(ctx, stackName, log, false));
  ensureBuilt(ctx.projectDir, log);
  const stack = await openStack(ctx, stackName);
  log(`pulumi up ${stackName}`);
  const t0 = Date.now();
  const result = await stack.up({ onOutput: pulumiOutput(stackName, log), color: "never" })
    .catch((err: unknown) => { throw explainFailure(stackName, "up", err); });
  const changes = (result.summary.resourceChanges ?? {}) as Record<string, number>;
  return { stack: stackName, outputs: plainOutputs(result.outputs), changes, seconds: (Date.now() - t0) / 1000 };
}

/** Turns Pulumi's long CommandError into the lines that matter, with what to do about an unhealthy container. */
export function explainFailure(stackName: string, op: string, err: unknown): Error {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text.split("\n").map((l) => l.trim());
  const errors = [...new Set(lines.filter((l) => /^error:|Error:|ConfigError|^- \S|unhealthy|is not on the Docker host/.test(l) && !/^error: update failed$/.test(l)))];
  const reason = (errors.length ? errors : lines.filter(Boolean).slice(-5)).slice(0, 12).join("\n  ");
  if (/unhealthy|health(y|check)|timeout waiting for container/i.test(text) && /container/i.test(text)) {
    return new Error(`${stackName}: ${op} failed: the container did not become healthy in time, so the deployment failed\n  ${reason}`);
  }
  return new Error(`${stackName}: ${op} failed\n  ${reason}`);
}

export async function previewStack(ctx: FleetContext, stackName: string, log: Log = stderrLog) {
  ensureBuilt(ctx.projectDir, log);
  const stack = await openStack(ctx, stackName);
  log(`pulumi preview ${stackName}`);
  const result = await stack.preview({ onOutput: pulumiOutput(stackName, log), color: "never", diff: false })
    .catch((err: unknown) => { throw explainFailure(stackName, "preview", err); });
  return result.changeSummary as Record<string, number>;
}

/** Resource operations other than 'same' in a change summary. */
export function changeCount(summary: Record<string, number>): number {
  return Object.entries(summary).filter(([op]) => op !== "same").reduce((n, [, c]) => n + c, 0);
}

export async function stackExists(ctx: FleetContext, stackName: string): Promise<boolean> {
  return (await listStacks(ctx)).includes(stackName);
}

/**
 * The image ID a stack runs, from its `image` output: an object with `ref` on environment stacks,
 * a string on customer stacks; undefined when the stack does not exist or has none.
 * `known` (the stacks that exist) spares a listing when the caller has one.
 */
export async function stackImage(ctx: FleetContext, stackName: string, known?: Set<string>): Promise<string | undefined> {
  if (!(known ? known.has(stackName) : await stackExists(ctx, stackName))) return undefined;
  const value = (await (await openStack(ctx, stackName)).outputs()).image?.value;
  return typeof value === "string" ? value : (value as { ref?: string } | undefined)?.ref;
}

export interface ProvisionRequest {
  customer: string;
  environment: string;
  plan?: string;
}

/** Checks a provision request against the environment's config before anything is created. */
export function planProvision(projectDir: string, req: ProvisionRequest): { env: EnvironmentConfig; customer: CustomerConfig } {
  const id = parseCustomerId(req.customer);
  if (!fs.existsSync(stackFile(projectDir, req.environment))) {
    throw new ConfigError("--env", [{ path: "--env", found: JSON.stringify(req.environment), message: "names no environment stack of this project (staging, prod)" }]);
  }
  const env = readEnvironmentConfig(projectDir, req.environment);
  const existing = customerConfigs(projectDir, env.name);
  const mine = existing.find((c) => c.id === id);
  const plan = req.plan ?? mine?.plan ?? Object.keys(env.plans)[0]!;
  if (!(plan in env.plans)) {
    throw new ConfigError("--plan", [{ path: "--plan", found: JSON.stringify(plan), message: `must be one of the plans of '${env.name}': ${Object.keys(env.plans).join(", ")}` }]);
  }
  const port = mine?.port ?? nextFreePort(env.publish.portRange, existing.map((c) => c.port));
  return { env, customer: { id, environment: env.name, plan, port, image: mine?.image } };
}

export async function provision(ctx: FleetContext, req: ProvisionRequest, log: Log = stderrLog): Promise<UpResult> {
  planProvision(ctx.projectDir, req); // every input error surfaces here, before anything exists
  const stackName = customerStackName(req.environment, req.customer);
  return withLock(ctx.projectDir, stackName, async () => {
    const envImage = await environmentImage(ctx, req.environment);
    const customer = await recordCustomer(ctx, req);
    await adoptVolume(ctx, customerNames(customer.environment, customer.id).dataVolume, envImage, log);
    return upStack(ctx, stackName, log, false);
  });
}

/** Writes the customer's stack file; port choice and file are serialized per environment. */
async function recordCustomer(ctx: FleetContext, req: ProvisionRequest): Promise<CustomerConfig> {
  return withWaitingLock(ctx.projectDir, `${req.environment}-ports`, async () => {
    const { customer } = planProvision(ctx.projectDir, req);
    writeCustomerStackFile(ctx.projectDir, customer);
    return customer;
  });
}

/** The image the environment stack publishes; says what to run first when there is none. */
export async function environmentImage(ctx: FleetContext, environment: string): Promise<string> {
  const known = new Set(await listStacks(ctx));
  if (!known.has(environment)) {
    throw new Error(`environment stack '${environment}' does not exist yet: run 'fleet up ${environment}' first`);
  }
  const ref = await stackImage(ctx, environment, known);
  if (!ref) throw new Error(`environment stack '${environment}' has no image yet: run 'fleet up ${environment}' first`);
  return ref;
}

export interface AdoptResult {
  adopted: boolean;
  archive?: string;
  foreign: string[];
}

/**
 * Adopts a data volume left by an old container that ran as root: archives it, then makes
 * everything in it owned by 1000:1000 (one-shot, CHOWN and DAC_READ_SEARCH only). Does nothing
 * when the volume does not exist or everything is already owned by 1000.
 */
export async function adoptVolume(ctx: FleetContext, volume: string, image: string, log: Log = stderrLog): Promise<AdoptResult> {
  const engine = new Dockerode();
  try {
    await engine.getVolume(volume).inspect();
  } catch {
    return { adopted: false, foreign: [] };
  }
  const foreign = await foreignOwned(engine, image, volume);
  if (foreign.length === 0) return { adopted: false, foreign };
  log(`volume ${volume} has files not owned by 1000:1000 (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", ..." : ""}): archiving it first`);
  const archive = await archiveVolume(engine, image, volume, backupDir(ctx));
  log(`archived to ${archive}; changing owners to 1000:1000`);
  await chownVolume(engine, image, volume);
  const left = await foreignOwned(engine, image, volume);
  if (left.length > 0) throw new Error(`volume ${volume} still has files not owned by 1000:1000 after the fix: ${left.join(", ")}`);
  return { adopted: true, archive, foreign };
}

export function backupDir(ctx: FleetContext): string {
  return process.env.FLEET_BACKUP_DIR ?? path.join(ctx.projectDir, ".fleet", "backups");
}

export async function migrate(ctx: FleetContext, req: { customer: string; environment: string }, log: Log = stderrLog): Promise<AdoptResult & { up: UpResult }> {
  planProvision(ctx.projectDir, req);
  const stackName = customerStackName(req.environment, req.customer);
  return withLock(ctx.projectDir, stackName, async () => {
    const image = await environmentImage(ctx, req.environment);
    const isNew = readCustomerConfig(ctx.projectDir, stackName) === undefined;
    const customer = await recordCustomer(ctx, req);
    if (isNew) log(`adopting ${customer.id} into ${customer.environment} on port ${customer.port}`);
    // the old container must not write while owners change: stop what runs on the volume
    const volume = customerNames(req.environment, req.customer).dataVolume;
    await stopUsers(volume, log);
    const adopted = await adoptVolume(ctx, volume, image, log);
    const up = await upStack(ctx, stackName, log, false);
    return { ...adopted, up };
  });
}

/** Stops (does not remove) containers other than hardened-fleet's that use the volume. */
async function stopUsers(volume: string, log: Log): Promise<void> {
  const engine = new Dockerode();
  const users = await engine.listContainers({ filters: { volume: [volume] } });
  for (const c of users) {
    log(`stopping ${c.Names[0]} (uses ${volume})`);
    await engine.getContainer(c.Id).stop().catch(() => {});
  }
}

export interface DeprovisionResult {
  stack: string;
  volume: string;
  volumeKept: boolean;
  archive?: string;
}

/** Destroys a customer's stack and removes it. The data volume stays unless purgeData (archived first). */
export async function deprovision(ctx: FleetContext, req: { customer: string; environment: string; purgeData?: boolean },
  log: Log = stderrLog): Promise<DeprovisionResult> {
  const id = parseCustomerId(req.customer);
  const stackName = customerStackName(req.environment, id);
  const volume = customerNames(req.environment, id).dataVolume;
  return withLock(ctx.projectDir, stackName, async () => {
    const known = new Set(await listStacks(ctx));
    const image = await stackImage(ctx, stackName, known);
    if (known.has(stackName)) {
      const stack = await openStack(ctx, stackName);
      await unprotectAll(stack);
      await destroyStack(ctx, stackName, log);
      await stack.workspace.removeStack(stackName);
    } else {
      log(`stack ${stackName} does not exist; nothing to destroy`);
    }
    fs.rmSync(stackFile(ctx.projectDir, stackName), { force: true });
    if (!req.purgeData) return { stack: stackName, volume, volumeKept: true };
    const engine = new Dockerode();
    try {
      await engine.getVolume(volume).inspect();
    } catch {
      return { stack: stackName, volume, volumeKept: false };
    }
    const archive = await archiveVolume(engine, image ?? (await environmentImage(ctx, req.environment)), volume, backupDir(ctx));
    log(`final backup of ${volume}: ${archive}`);
    await engine.getVolume(volume).remove();
    return { stack: stackName, volume, volumeKept: false, archive };
  });
}

/** Production protects data volumes; a deliberate deprovision lifts that in the state first (retainOnDelete still keeps the volume). */
async function unprotectAll(stack: Stack): Promise<void> {
  const state = await stack.exportStack();
  const resources = (state.deployment as { resources?: { protect?: boolean }[] }).resources ?? [];
  if (!resources.some((r) => r.protect)) return;
  for (const r of resources) r.protect = false;
  await stack.importStack(state);
}

export interface CustomerListing {
  environment: string;
  customer: string;
  plan: string;
  url: string;
  image: string;
  version: string;
  health: string;
  lastUpdate: string;
}

export async function listCustomers(ctx: FleetContext, environments: string[]): Promise<CustomerListing[]> {
  const engine = new Dockerode();
  const summaries = await stackSummaries(ctx);
  const out: CustomerListing[] = [];
  for (const environment of environments) {
    for (const c of customerConfigs(ctx.projectDir, environment)) {
      const stackName = customerStackName(environment, c.id);
      const summary = summaries.get(stackName);
      let outputs: Record<string, { value: unknown }> = {};
      if (summary) outputs = await (await openStack(ctx, stackName)).outputs();
      let health = "not deployed";
      try {
        const info = await engine.getContainer(customerNames(environment, c.id).container).inspect();
        health = info.State.Running ? info.State.Health?.Status ?? "running" : info.State.Status;
      } catch { /* no container */ }
      out.push({
        environment, customer: c.id, plan: c.plan,
        url: String(outputs.url?.value ?? `http://127.0.0.1:${c.port}`),
        image: String(outputs.image?.value ?? "-"),
        version: String(outputs.version?.value ?? "-"),
        health,
        lastUpdate: summary?.lastUpdate ?? "never",
      });
    }
  }
  return out;
}

/** Destroys a stack's resources (data volumes are kept by retainOnDelete). */
export async function destroyStack(ctx: FleetContext, stackName: string, log: Log = stderrLog): Promise<Stack> {
  ensureBuilt(ctx.projectDir, log);
  const stack = await openStack(ctx, stackName, false);
  log(`pulumi destroy ${stackName}`);
  await stack.destroy({ onOutput: pulumiOutput(stackName, log), color: "never" })
    .catch((err: unknown) => { throw explainFailure(stackName, "destroy", err); });
  return stack;
}

/** Destroys an environment stack, refusing while customer stacks of it exist. */
export async function destroyEnvironment(ctx: FleetContext, environment: string, log: Log = stderrLog): Promise<void> {
  const live: string[] = [];
  const stacks = await listStacks(ctx);
  for (const s of stacks) if (s.startsWith(`${environment}-`)) live.push(s);
  if (live.length > 0) {
    throw new Error(`environment stack '${environment}' still has customer stacks: ${live.join(", ")}; deprovision them first (fleet deprovision <customer> --env ${environment})`);
  }
  await withLock(ctx.projectDir, environment, () => destroyStack(ctx, environment, log));
}
