/**
 * Running one Pulumi stack: up, preview, destroy, its outputs. Every run holds the fleet lock of the
 * stack (one operation per stack, across processes) and first clears what a crash may have left:
 * a stale Pulumi lock and interrupted operations (recovery.ts).
 */
import type { OutputMap, Stack } from "@pulumi/pulumi/automation";
import { parseStackTarget, type StackTarget } from "../config/targets";
import { engineFor } from "../engine/connection";
import { ensureBuilt } from "./build";
import { BUILD_LOCK, stackLock, withLock, withWaitingLock } from "./lock";
import { pulumiOutput, stderrLog, type Log } from "./progress";
import { clearStaleLocks, resolvePendingOperations } from "./recovery";
import { listStacks, openStack, type FleetContext } from "./workspace";

export interface UpResult {
  stack: string;
  outputs: Record<string, unknown>;
  changes: Record<string, number>;
  seconds: number;
}

function plainOutputs(outputs: OutputMap): Record<string, unknown> {
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.secret ? "[secret]" : v.value]));
}

/**
 * Opens a stack ready to run: the program compiled, a Pulumi lock left by a crashed run cleared and
 * interrupted operations reconciled. The caller holds the stack's fleet lock.
 */
export async function prepareStack(ctx: FleetContext, target: StackTarget, log: Log, create = true): Promise<Stack> {
  await withWaitingLock(ctx.projectDir, BUILD_LOCK, () => ensureBuilt(ctx.projectDir, log));
  await clearStaleLocks(ctx.backendUrl, target.stack, log);
  const stack = await openStack(ctx, target, create);
  await resolvePendingOperations(stack, engineFor(ctx.projectDir, target.environment), log, ctx.backendUrl);
  return stack;
}

/** Runs fn on the prepared stack under its fleet lock (one operation per stack, across processes). */
export async function withStack<T>(ctx: FleetContext, target: StackTarget, log: Log, fn: (stack: Stack) => Promise<T>,
  create = true): Promise<T> {
  return withLock(ctx.projectDir, stackLock(target.stack), async () => fn(await prepareStack(ctx, target, log, create)));
}

/** The image ID in a stack's `image` output: an object with `ref` on environment stacks, a string on customer stacks. */
export function outputImage(outputs: OutputMap): string | undefined {
  const value = outputs.image?.value;
  return typeof value === "string" ? value : (value as { ref?: string } | undefined)?.ref;
}

/** `pulumi up` of a validated stack; the caller holds the stack's lock (see withStack). */
export async function runUp(stack: Stack, log: Log): Promise<UpResult> {
  log(`pulumi up ${stack.name}`);
  const t0 = Date.now();
  const result = await stack.up({ onOutput: pulumiOutput(stack.name, log), color: "never" })
    .catch((err: unknown) => { throw explainFailure(stack.name, "up", err); });
  const changes = (result.summary.resourceChanges ?? {}) as Record<string, number>;
  return { stack: stack.name, outputs: plainOutputs(result.outputs), changes, seconds: (Date.now() - t0) / 1000 };
}

/** Deploys a stack as it is configured (no rollback: see customers.ts for customer stacks). */
export async function upTarget(ctx: FleetContext, target: StackTarget, log: Log = stderrLog): Promise<UpResult> {
  return withStack(ctx, target, log, (stack) => runUp(stack, log));
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

export async function previewStack(ctx: FleetContext, stackName: string, log: Log = stderrLog): Promise<Record<string, number>> {
  const target = parseStackTarget(stackName);
  return withStack(ctx, target, log, async (stack) => {
    log(`pulumi preview ${stack.name}`);
    const result = await stack.preview({ onOutput: pulumiOutput(stack.name, log), color: "never", diff: false })
      .catch((err: unknown) => { throw explainFailure(stack.name, "preview", err); });
    return result.changeSummary as Record<string, number>;
  });
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
export async function stackImage(ctx: FleetContext, target: StackTarget, known?: Set<string>): Promise<string | undefined> {
  if (!(known ? known.has(target.stack) : await stackExists(ctx, target.stack))) return undefined;
  return outputImage(await (await openStack(ctx, target)).outputs());
}

/** Destroys a stack's resources (data volumes are kept by retainOnDelete); the caller holds the lock. */
export async function runDestroy(stack: Stack, log: Log): Promise<void> {
  log(`pulumi destroy ${stack.name}`);
  await stack.destroy({ onOutput: pulumiOutput(stack.name, log), color: "never" })
    .catch((err: unknown) => { throw explainFailure(stack.name, "destroy", err); });
}

/** `fleet destroy`-style teardown of one stack by name (data volumes are kept); returns the stack, still listed. */
export async function destroyStack(ctx: FleetContext, stackName: string, log: Log = stderrLog): Promise<Stack> {
  const target = parseStackTarget(stackName);
  return withStack(ctx, target, log, async (stack) => {
    await runDestroy(stack, log);
    return stack;
  }, false);
}

/** Production protects data volumes; a deliberate deprovision lifts that in the state first (retainOnDelete still keeps the volume). */
export async function unprotectAll(stack: Stack): Promise<void> {
  const state = await stack.exportStack();
  const resources = (state.deployment as { resources?: { protect?: boolean }[] }).resources ?? [];
  if (!resources.some((r) => r.protect)) return;
  for (const r of resources) r.protect = false;
  await stack.importStack(state);
}

/** Destroys an environment stack, refusing while customer stacks of it exist. */
export async function destroyEnvironment(ctx: FleetContext, environment: string, log: Log = stderrLog): Promise<void> {
  const target = parseStackTarget(environment, "environment");
  if (target.kind !== "environment") throw new Error(`'${environment}' is a customer stack: use 'fleet deprovision'`);
  const live = (await listStacks(ctx)).filter((s) => s.startsWith(`${environment}-`));
  if (live.length > 0) {
    throw new Error(`environment stack '${environment}' still has customer stacks: ${live.join(", ")}; deprovision them first (fleet deprovision <customer> --env ${environment})`);
  }
  await withStack(ctx, target, log, (stack) => runDestroy(stack, log), false);
}
