/**
 * Running one Pulumi stack: up, preview, destroy, its outputs. Every run holds the fleet lock of the
 * stack (one operation per stack, across processes) and first clears what a crash may have left:
 * a stale Pulumi lock and interrupted operations (recovery.ts).
 *
 * A deployment is one `pulumi up` process and nothing more: the stack is named on the command line
 * (no `stack select`), and what fleet needs afterwards (outputs, whether the stack exists, what it
 * runs) is read from the backend's state (stackState.ts), not from more Pulumi processes.
 *
 * The caller says what the run needs of the stack's environment (StackSettings: its passphrase and
 * engine, read once by fleet/environment.ts); without it they are read from the stack files here.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type Dockerode from "dockerode";
import { parseStackTarget, type StackTarget } from "../config/targets";
import { engineFor } from "../engine/connection";
import type { FleetContext } from "../project/context";
import { BUILD_LOCK, stackLock, WAIT_FOR_BACKUPS, withLock, withWaitingLock } from "../project/lock";
import { policyArgs, previewsFirst } from "../policy/packConfig";
import { readEnvironmentConfig } from "../project/stackFiles";
import { ensureBuilt, isBuilt } from "./build";
import { pulumiOutput, stderrLog, type Log } from "./progress";
import { clearStaleLocks, resolvePendingOperations } from "./recovery";
import { listStacks, readStack } from "./stackState";
import { openStack, passphraseFor, PulumiCommandError, runPulumi, type FleetStack } from "./workspace";

export type { FleetStack } from "./workspace";

export interface UpResult {
  stack: string;
  outputs: Record<string, unknown>;
  changes: Record<string, number>;
  seconds: number;
}

/** What a run needs of its stack's environment: the passphrase, and the engine (to reconcile a crash's leftovers). */
export interface StackSettings {
  passphrase: string;
  engine: () => Dockerode;
}

/** The settings read from the project's stack files, for a caller that has not read them. */
function settingsFromFiles(ctx: FleetContext, target: StackTarget): StackSettings {
  return { passphrase: passphraseFor(ctx.projectDir, target), engine: () => engineFor(ctx.projectDir, target.environment) };
}

/**
 * Opens a stack ready to run: the program compiled, the stack created when missing (`create`), a
 * Pulumi lock left by a crashed run cleared and interrupted operations reconciled. The caller holds
 * the stack's fleet lock.
 */
export async function prepareStack(ctx: FleetContext, target: StackTarget, log: Log, create = true,
  settings: StackSettings = settingsFromFiles(ctx, target)): Promise<FleetStack> {
  // the lock only when there is something to compile: concurrent commands then compile once
  if (!isBuilt(ctx.projectDir)) await withWaitingLock(ctx.projectDir, BUILD_LOCK, () => ensureBuilt(ctx.projectDir, log));
  await clearStaleLocks(ctx.backendUrl, target.stack, log);
  const stack: FleetStack = { ctx, target, name: target.stack, passphrase: settings.passphrase };
  const state = await readStack(ctx, target.stack);
  if (!state) {
    if (!create) throw new Error(`no stack named '${target.stack}' found`);
    await runPulumi(ctx, target, ["stack", "init", target.stack, "--non-interactive"], undefined, stack.passphrase);
    return stack;
  }
  // undefined: a backend that does not say without an export
  if (state.pendingOperations !== 0) await resolvePendingOperations(stack, settings.engine(), log);
  return stack;
}

/**
 * Runs fn on the prepared stack under its fleet lock (one operation per stack, across processes).
 * Another operation on the stack fails this one at once, but a backup of the customer (which holds
 * the lock while it pauses the customer, seconds) is waited for.
 */
export async function withStack<T>(ctx: FleetContext, target: StackTarget, log: Log, fn: (stack: FleetStack) => Promise<T>,
  create = true, settings?: StackSettings): Promise<T> {
  return withLock(ctx.projectDir, stackLock(target.stack), async () => fn(await prepareStack(ctx, target, log, create, settings)),
    WAIT_FOR_BACKUPS);
}

/** The resource changes of a run, from the summary event of Pulumi's engine event log (JSON lines). Pure. */
export function changesFromEventLog(text: string): Record<string, number> {
  let changes: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line.includes("summaryEvent")) continue;
    try {
      const event = JSON.parse(line) as { summaryEvent?: { resourceChanges?: Record<string, number> } };
      changes = event.summaryEvent?.resourceChanges ?? changes;
    } catch { /* a line being written */ }
  }
  return changes;
}

/** Runs `pulumi <op> --stack <stack>` with its output as progress; returns the change summary. */
async function runOperation(stack: FleetStack, op: string, args: string[], log: Log): Promise<Record<string, number>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-events-"));
  const events = path.join(dir, "events.jsonl");
  let opArgs = args;
  if (op === "up" || op === "preview") {
    // the policy pack judges every deployment; production previews first, so a violation touches nothing
    const env = readEnvironmentConfig(stack.ctx.projectDir, stack.target.environment);
    opArgs = [...(previewsFirst(env) ? args.filter((a) => a !== "--skip-preview") : args), ...policyArgs(stack.ctx.projectDir, env, dir)];
  }
  const run = () => runPulumi(stack.ctx, stack.target, [op, ...opArgs, "--stack", stack.name, "--color", "never", "--event-log", events],
    pulumiOutput(stack.name, log), stack.passphrase);
  try {
    await run().catch(async (err: unknown) => {
      // A command killed just as it started its pulumi leaves that pulumi running: its lock may appear
      // only after this command looked for stale ones. Wait for it as prepareStack would, then once more.
      if (!/the stack is currently locked/.test(String((err as Error).message))) throw err;
      log(`stack ${stack.name}: locked by a pulumi that started meanwhile; waiting for it, then trying again`);
      await clearStaleLocks(stack.ctx.backendUrl, stack.name, log);
      await run();
    }).catch((err: unknown) => { throw explainFailure(stack.name, op, err); });
    return changesFromEventLog(fs.existsSync(events) ? fs.readFileSync(events, "utf8") : "");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The stack's outputs after a run (secrets read "[secret]"). */
async function stackOutputs(stack: FleetStack): Promise<Record<string, unknown>> {
  return (await readStack(stack.ctx, stack.name))?.outputs ?? {};
}

/**
 * `pulumi up` of a validated stack; the caller holds the stack's lock (see withStack). `refresh`: read
 * what exists first, so what was removed behind Pulumi's back (a container, a volume) is made again.
 */
export async function runUp(stack: FleetStack, log: Log, opts: { refresh?: boolean } = {}): Promise<UpResult> {
  log(`pulumi up ${stack.name}${opts.refresh ? " --refresh" : ""}`);
  const t0 = Date.now();
  const changes = await runOperation(stack, "up", ["--yes", "--skip-preview", ...(opts.refresh ? ["--refresh"] : [])], log);
  return { stack: stack.name, outputs: await stackOutputs(stack), changes, seconds: (Date.now() - t0) / 1000 };
}

/** Deploys a stack as it is configured (no rollback: see fleet/customers.ts; no edge port check: see fleet/edge.ts). */
export async function upTarget(ctx: FleetContext, target: StackTarget, log: Log = stderrLog, settings?: StackSettings,
  opts: { refresh?: boolean } = {}): Promise<UpResult> {
  return withStack(ctx, target, log, (stack) => runUp(stack, log, opts), true, settings);
}

/** The engine's answer for an object the stack's state names but the engine does not have. */
const LOST_OBJECT = /Error response from daemon: (network|volume) (\S+) not found/;

/** Turns Pulumi's long CommandError into the lines that matter, with what to do about an unhealthy container. */
export function explainFailure(stackName: string, op: string, err: unknown): Error {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text.split("\n").map((l) => l.trim());
  const errors = [...new Set(lines.filter((l) => /^error:|Error:|ConfigError|^- \S|unhealthy|is not on the Docker host/.test(l) && !/^error: update failed$/.test(l)))];
  const reason = (errors.length ? errors : lines.filter(Boolean).slice(-5)).slice(0, 12).join("\n  ");
  const lost = LOST_OBJECT.exec(text);
  if (lost) {
    return new Error(`${stackName}: ${op} failed: the engine has no ${lost[1]} ${lost[2]}, which the stack's state still has ` +
      `(removed outside fleet, e.g. by 'docker ${lost[1]} prune', or a new engine): 'fleet up ${stackName} --refresh' reads what ` +
      `exists first and makes what is missing again\n  ${reason}`);
  }
  const violations = lines.filter((l) => /^- \[mandatory\]|^(docker\.Container|docker\.Service|SwarmService|docker\.Volume) \S+: /.test(l));
  if (violations.length > 0) {
    return new Error(`${stackName}: ${op} stopped by the policy pack (policies/, docs/policy-pack.md): ${violations.filter((l) => l.startsWith("-")).length} mandatory ` +
      `violation(s); ${/preview failed/.test(text) ? "nothing was changed" : "the resources before the violating one may have changed"}\n  ${violations.join("\n  ")}`);
  }
  if (/failed the hardening audit/.test(text)) {
    return new Error(`${stackName}: ${op} failed: the new container failed the hardening audit, so it got no traffic and the deployment failed\n  ${reason}`);
  }
  if (/unhealthy|health(y|check)|timeout waiting for container/i.test(text) && /container/i.test(text)) {
    return new Error(`${stackName}: ${op} failed: the container did not become healthy in time, so the deployment failed\n  ${reason}`);
  }
  return new Error(`${stackName}: ${op} failed\n  ${reason}`);
}

export async function previewStack(ctx: FleetContext, stackName: string, log: Log = stderrLog, settings?: StackSettings): Promise<Record<string, number>> {
  const target = parseStackTarget(stackName);
  return withStack(ctx, target, log, async (stack) => {
    log(`pulumi preview ${stack.name}`);
    return runOperation(stack, "preview", [], log);
  }, true, settings);
}

/** Resource operations other than 'same' in a change summary. */
export function changeCount(summary: Record<string, number>): number {
  return Object.entries(summary).filter(([op]) => op !== "same").reduce((n, [, c]) => n + c, 0);
}

/** Destroys a stack's resources (data volumes are kept by retainOnDelete); the caller holds the lock. */
export async function runDestroy(stack: FleetStack, log: Log): Promise<void> {
  log(`pulumi destroy ${stack.name}`);
  await runOperation(stack, "destroy", ["--yes", "--skip-preview"], log);
}

/** Removes a destroyed stack from the backend (and its history). */
export async function removeStack(stack: FleetStack): Promise<void> {
  await runPulumi(stack.ctx, stack.target, ["stack", "rm", stack.name, "--yes", "--non-interactive"], undefined, stack.passphrase);
}

/** `fleet destroy`-style teardown of one stack by name (data volumes are kept); returns the stack, still listed. */
export async function destroyStack(ctx: FleetContext, stackName: string, log: Log = stderrLog, settings?: StackSettings): Promise<FleetStack> {
  const target = parseStackTarget(stackName);
  return withStack(ctx, target, log, async (stack) => {
    await runDestroy(stack, log);
    return stack;
  }, false, settings);
}

/** Production protects data volumes; a deliberate deprovision lifts that in the state first (retainOnDelete still keeps the volume). */
export async function unprotectAll(fleetStack: FleetStack): Promise<void> {
  if ((await readStack(fleetStack.ctx, fleetStack.name))?.protectedResources === 0) return;
  const stack = await openStack(fleetStack.ctx, fleetStack.target, false, fleetStack.passphrase);
  const state = await stack.exportStack();
  const resources = (state.deployment as { resources?: { protect?: boolean }[] }).resources ?? [];
  if (!resources.some((r) => r.protect)) return;
  for (const r of resources) r.protect = false;
  await stack.importStack(state);
}

/** Destroys an environment stack, refusing while customer stacks of it exist. */
export async function destroyEnvironment(ctx: FleetContext, environment: string, log: Log = stderrLog, settings?: StackSettings): Promise<void> {
  const target = parseStackTarget(environment, "environment");
  if (target.kind !== "environment") throw new Error(`'${environment}' is a customer stack: use 'fleet deprovision'`);
  const live = (await listStacks(ctx)).filter((s) => s.startsWith(`${environment}-`));
  if (live.length > 0) {
    throw new Error(`environment stack '${environment}' still has customer stacks: ${live.join(", ")}; deprovision them first (fleet deprovision <customer> --env ${environment})`);
  }
  await withStack(ctx, target, log, (stack) => runDestroy(stack, log), false, settings);
}

/** A secret of the stack's config (`pulumi config get`, decrypted with its passphrase); undefined when it is not set. */
export async function readStackSecret(ctx: FleetContext, target: StackTarget, key: string, settings: StackSettings): Promise<string | undefined> {
  try {
    const { stdout } = await runPulumi(ctx, target, ["config", "get", key, "--stack", target.stack], undefined, settings.passphrase);
    return stdout.replace(/\n$/, "");
  } catch (err) {
    if (err instanceof PulumiCommandError && /not found/i.test(err.stderr + err.stdout)) return undefined;
    throw err;
  }
}

/**
 * Several secrets of the stack's config at once (one `pulumi config --json --show-secrets`, decrypted
 * with its passphrase); a key that is not set is undefined. The output is read here, never printed.
 */
export async function readStackSecrets<K extends string>(ctx: FleetContext, target: StackTarget, keys: readonly K[], settings: StackSettings): Promise<Record<K, string | undefined>> {
  const { stdout } = await runPulumi(ctx, target, ["config", "--json", "--show-secrets", "--stack", target.stack], undefined, settings.passphrase);
  const all = JSON.parse(stdout) as Record<string, { value?: unknown }>;
  const out = {} as Record<K, string | undefined>;
  for (const key of keys) {
    const v = all[key]?.value;
    out[key] = typeof v === "string" ? v : undefined;
  }
  return out;
}

/** Sets a secret in the stack's config, encrypted with its passphrase; the value goes through stdin, never a command line. */
export async function writeStackSecret(ctx: FleetContext, target: StackTarget, key: string, value: string, settings: StackSettings): Promise<void> {
  await runPulumi(ctx, target, ["config", "set", "--secret", key, "--stack", target.stack], undefined, settings.passphrase, value);
}
