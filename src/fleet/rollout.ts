/**
 * Staged rollout: staging builds and deploys, every staging customer must pass the gate (healthy,
 * audit clean), then prod takes the same image ID and moves its customers in waves (a canary
 * first). A failed wave stops the rollout, returns the failed stacks to their previous image ID,
 * leaves the stacks not yet reached alone and reports who runs what.
 *
 * The customers of one group (staging's, or one prod wave) are independent: they move at the same
 * time, at most `concurrency` at once, each with its own deployment, gate and rollback. What every
 * stack runs is read once, from the backend's state, not by a Pulumi process per customer.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { Document, parse } from "yaml";
import { ENVIRONMENT_KEY } from "../config/load";
import type { CustomerConfig } from "../config/schema";
import { parseCustomerTarget, parseEnvironmentName, type CustomerTarget } from "../config/targets";
import { ROLLOUT_LOCK, withLock } from "../project/lock";
import { readCustomerConfig, stackFile, writeCustomerStackFile, writeFileAtomic } from "../project/stackFiles";
import { stderrLog, type Log } from "../pulumi/progress";
import { outputImage, readStacks } from "../pulumi/stackState";
import { upTarget } from "../pulumi/stacks";
import { formatTable } from "../table";
import { upEnvironment } from "./edge";
import type { Environment } from "./environment";
import { baseStatus } from "./supplyChain";

export type CustomerOutcome = "updated" | "rolled back" | "failed" | "untouched";

export interface CustomerState {
  environment: string;
  customer: string;
  digest: string;
  outcome: CustomerOutcome;
  reason?: string;
}

export interface RolloutReport {
  ok: boolean;
  digest: string;
  /** where it stopped: staging, a prod wave, or done */
  stoppedAt?: string;
  customers: CustomerState[];
}

/** Runs fn on every item, at most `limit` at once; results in the items' order. */
export async function mapBounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}

/** Customers of a wave deployed at once: --concurrency, else prod's rollout.concurrency, else one per CPU core. */
export function defaultConcurrency(configured: number | undefined, cores = os.availableParallelism()): number {
  return configured ?? Math.max(2, cores);
}

/** Waves of prod customers: a canary of one, then waves of `size`. Pure. */
export function planWaves<T>(items: T[], size: number): T[][] {
  if (items.length === 0) return [];
  const waves: T[][] = [[items[0]!]];
  for (let i = 1; i < items.length; i += size) waves.push(items.slice(i, i + size));
  return waves;
}

/** Sets (or clears) the promoted image ID in an environment stack file, keeping the rest. */
export function setEnvironmentDigest(projectDir: string, stack: string, digest: string | undefined): void {
  const file = stackFile(projectDir, stack);
  const doc = new Document(parse(fs.readFileSync(file, "utf8")));
  const keyPath = ["config", ENVIRONMENT_KEY, "image", "digest"];
  if (digest) doc.setIn(keyPath, digest);
  else doc.deleteIn(keyPath);
  writeFileAtomic(file, doc.toString());
}

function pin(environment: Environment, customer: CustomerConfig, image: string | undefined): void {
  writeCustomerStackFile(environment.ctx.projectDir, { ...customer, image }, environment.dockerHost);
}

const targetOf = (c: CustomerConfig): CustomerTarget => parseCustomerTarget(c.id, c.environment);

/** Deploys one customer as its stack file says now (no rollback here: runGroup rolls a failed group back). */
function deployCustomer(environment: Environment, customer: CustomerConfig, log: Log) {
  const target = targetOf(customer);
  return upTarget(environment.ctx, target, log, environment.stackSettings(target));
}

/**
 * Puts one customer on its environment's image and waits for its gate (DeployTarget.gate: healthy and
 * audit-clean). Returns the failure reason, if any.
 */
async function updateAndGate(environment: Environment, customer: CustomerConfig, log: Log): Promise<string | undefined> {
  pin(environment, customer, undefined);
  let container: string;
  try {
    container = String((await deployCustomer(environment, customer, log)).outputs.containerName);
  } catch (err) {
    return (err as Error).message.split("\n").slice(0, 3).join(" ");
  }
  return environment.target.gate(container);
}

async function rollBack(environment: Environment, customer: CustomerConfig, previous: string | undefined, log: Log): Promise<CustomerOutcome> {
  if (!previous) return "failed";
  log(`rolling ${customer.environment}-${customer.id} back to ${previous.slice(0, 19)}`);
  pin(environment, customer, previous);
  try {
    await deployCustomer(environment, customer, log);
    return "rolled back";
  } catch (err) {
    log(`rollback of ${customer.id} failed: ${(err as Error).message.split("\n")[0]}`);
    return "failed";
  }
}

/** Deployed customers of an environment (stack file and stack both exist), in id order. */
function deployedCustomers(environment: Environment, known: Set<string>): CustomerConfig[] {
  return environment.customers().filter((c) => known.has(targetOf(c).stack));
}

/** What every stack runs now, from one read of the backend's state. */
type Images = Map<string, string | undefined>;

async function readImages(environment: Environment): Promise<Images> {
  return new Map([...(await readStacks(environment.ctx))].map(([name, state]) => [name, outputImage(state.outputs)]));
}

/**
 * Moves one group of customers, `concurrency` at a time, and gates each; the failed ones are rolled
 * back to what they ran (also concurrently). Returns whether all passed.
 */
async function runGroup(environment: Environment, group: CustomerConfig[], digest: string, states: CustomerState[], images: Images,
  concurrency: number, log: Log): Promise<boolean> {
  const reasons = await mapBounded(group, concurrency, async (c) => {
    const reason = await updateAndGate(environment, c, log);
    log(`${c.environment}-${c.id}: ${reason ? `FAILED the gate: ${reason}` : "healthy, audit clean"}`);
    return reason;
  });
  await mapBounded(group, concurrency, async (c) => {
    const state = states.find((s) => s.environment === c.environment && s.customer === c.id)!;
    const reason = reasons[group.indexOf(c)];
    if (!reason) {
      Object.assign(state, { digest, outcome: "updated" });
      return;
    }
    const previous = images.get(targetOf(c).stack);
    const outcome = await rollBack(environment, c, previous, log);
    Object.assign(state, { outcome, reason, digest: outcome === "rolled back" ? previous! : "unknown" });
  });
  return reasons.every((r) => !r);
}

/**
 * One rollout at a time (the `rollout` lock). Nothing is left half-written: prod's config gets the
 * new image only for prod's deployment, and goes back to the previous one when that fails.
 */
export interface RolloutOptions {
  /** prod customers per wave after the canary (default: prod's rollout.waveSize) */
  waveSize?: number;
  /** customers of one wave deployed at the same time (default: prod's rollout.concurrency, else one per CPU core) */
  concurrency?: number;
  staging?: string;
  prod?: string;
}

/** `staging` and `prod` loaded once by the caller (fleet/operations.ts rollout). */
export async function rolloutEnvironments(staging: Environment, prod: Environment, opts: Pick<RolloutOptions, "waveSize" | "concurrency"> = {},
  log: Log = stderrLog): Promise<RolloutReport> {
  const waveSize = opts.waveSize ?? prod.config.rollout.waveSize;
  if (!Number.isInteger(waveSize) || waveSize < 1) throw new Error(`--wave-size must be a whole number of at least 1 (found ${waveSize})`);
  const concurrency = opts.concurrency ?? defaultConcurrency(prod.config.rollout.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`--concurrency must be a whole number of at least 1 (found ${concurrency})`);
  return withLock(prod.ctx.projectDir, ROLLOUT_LOCK, () => runRollout(staging, prod, waveSize, concurrency, log));
}

async function runRollout(staging: Environment, prod: Environment, waveSize: number, concurrency: number, log: Log): Promise<RolloutReport> {
  const stagingName = staging.name;
  const prodName = prod.name;
  const prodTarget = parseEnvironmentName(prodName, "prod environment");
  const images = await readImages(prod);
  const known = new Set(images.keys());
  const staged = deployedCustomers(staging, known);
  if (staged.length === 0) {
    throw new Error(`${stagingName} has no deployed customer, so nothing could pass the gate before ${prodName}: ` +
      `provision one first (fleet provision <customer> --env ${stagingName})`);
  }
  const prodCustomers = deployedCustomers(prod, known);
  const states: CustomerState[] = [];
  for (const c of [...staged, ...prodCustomers]) {
    states.push({ environment: c.environment, customer: c.id, outcome: "untouched", digest: images.get(targetOf(c).stack) ?? "none" });
  }

  const base = await baseStatus(staging).catch(() => undefined);
  if (base?.state === "stale") {
    log(`base ${base.base} has a newer digest (${base.newest!.slice(0, 19)}) than the one ${stagingName}'s image was built from ` +
      `(${base.builtFrom!.slice(0, 19)}): ${stagingName} rebuilds on it, and the patched base reaches ${prodName} through this rollout`);
  }
  log(`rollout step 1: ${stagingName} builds and deploys the new image`);
  const stagingUp = await upEnvironment(staging, log);
  const digest = (stagingUp.outputs.image as { ref: string }).ref;
  log(`new image ${digest}`);

  log(`rollout step 2: ${staged.length} ${stagingName} customer(s), gated, ${concurrency} at a time`);
  if (!(await runGroup(staging, staged, digest, states, images, concurrency, log))) {
    return { ok: false, digest, stoppedAt: stagingName, customers: states };
  }

  log(`rollout step 3: ${prodName} takes ${digest.slice(0, 19)} (the image that passed ${stagingName})`);
  const previousProd = images.get(prodTarget.stack);
  const prodFile = stackFile(prod.ctx.projectDir, prodName);
  const prodFileBefore = fs.readFileSync(prodFile, "utf8");
  setEnvironmentDigest(prod.ctx.projectDir, prodName, digest);
  try {
    await upEnvironment(prod, log);
  } catch (err) {
    writeFileAtomic(prodFile, prodFileBefore);
    log(`${prodName} did not take the new image; its config is back as it was`);
    throw err;
  }

  const waves = planWaves(prodCustomers, waveSize);
  for (const [i, wave] of waves.entries()) {
    const label = i === 0 ? "canary" : `wave ${i}`;
    log(`rollout step 4: ${prodName} ${label}: ${wave.map((c) => c.id).join(", ")}`);
    if (await runGroup(prod, wave, digest, states, images, concurrency, log)) continue;
    // stop: customers already moved stay on the new image explicitly; new customers get the old one
    for (const done of states.filter((s) => s.environment === prodName && s.outcome === "updated")) {
      const c = readCustomerConfig(prod.ctx.projectDir, parseCustomerTarget(done.customer, prodName).stack)!;
      pin(prod, c, digest);
    }
    if (previousProd) {
      log(`${prodName} goes back to ${previousProd.slice(0, 19)} for customers provisioned from now on`);
      setEnvironmentDigest(prod.ctx.projectDir, prodName, previousProd);
      await upEnvironment(prod, log);
    }
    return { ok: false, digest, stoppedAt: `${prodName} ${label}`, customers: states };
  }
  return { ok: true, digest, customers: states };
}

export function formatRolloutReport(r: RolloutReport): string {
  const head = r.ok ? `rollout of ${r.digest} done` : `rollout of ${r.digest} STOPPED at ${r.stoppedAt}`;
  const rows = r.customers.map((c) => [`${c.environment}-${c.customer}`, c.outcome, c.digest, c.reason ?? ""]);
  return [head, "", formatTable(["stack", "outcome", "runs", "reason"], rows)].join("\n");
}
