/**
 * Pulumi on this project, fully offline: a project-local file backend by default, passphrase
 * secrets, no update check, no automatic plugin download.
 *
 * The hot paths (up, destroy, stack init and rm) run the toolchain's `pulumi` once each (runPulumi);
 * reading stacks and outputs needs no Pulumi process at all on a file backend (stackState.ts).
 * The Automation API (openStack) serves the rest: preview, refresh, export and import of state.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import type { EnvironmentConfig } from "../config/schema";
import type { StackTarget } from "../config/targets";
import type { StackState } from "../project/backendState";
import type { FleetContext } from "../project/context";
import { readEnvironmentConfig } from "../project/stackFiles";
import { childEnv, childEnvOverriding } from "./childEnv";
import { findToolchain, type Toolchain } from "./toolchain";

export { fleetContext, type FleetContext } from "../project/context";

/** Passphrase of the local demo only (an environment with `localDemo: true`); documented in the README. */
export const DEMO_PASSPHRASE = "hardened-fleet-local-demo";

/** A stack ready to run (stacks.ts prepareStack): its target, and its passphrase, decided once. */
export interface FleetStack {
  ctx: FleetContext;
  target: StackTarget;
  name: string;
  passphrase: string;
}

/**
 * The operator's PULUMI_CONFIG_PASSPHRASE; without one, the documented demo passphrase, but only for
 * the stacks of an environment whose config marks it as the local demo (never production: the
 * schema refuses that). Decided by the environment's config, not by the stack's name.
 */
export function passphraseFor(projectDir: string, target: StackTarget, env = process.env): string {
  if (env.PULUMI_CONFIG_PASSPHRASE) return env.PULUMI_CONFIG_PASSPHRASE;
  return passphraseOf(readEnvironmentConfig(projectDir, target.environment), target, env);
}

/** passphraseFor, with the environment's config already read. */
export function passphraseOf(config: EnvironmentConfig, target: StackTarget, env = process.env): string {
  if (env.PULUMI_CONFIG_PASSPHRASE) return env.PULUMI_CONFIG_PASSPHRASE;
  if (config.localDemo) return DEMO_PASSPHRASE;
  throw new Error(`stack '${target.stack}' belongs to environment '${config.name}' (tier ${config.tier}), which is not the local demo: ` +
    "set PULUMI_CONFIG_PASSPHRASE to its passphrase");
}

/**
 * The variables fleet sets for every Pulumi command, on top of the allowlist of childEnv.ts (a Pulumi
 * command never sees the rest of fleet's environment): the toolchain first on PATH, then the Node.js
 * this process runs on (so the program runs on it too), the toolchain's Pulumi home (project-local for the built
 * toolchain: <repo>/.fleet/pulumi-home), the backend, the passphrase, the offline switches and
 * Node's compile cache.
 */
export function pulumiEnv(ctx: FleetContext, passphrase: string): Record<string, string> {
  const tc = findToolchain();
  return {
    PATH: [tc.bin, path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter),
    ...(tc.home ? { PULUMI_HOME: tc.home } : {}),
    PULUMI_BACKEND_URL: ctx.backendUrl,
    PULUMI_CONFIG_PASSPHRASE: passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    PULUMI_SKIP_CONFIRMATIONS: "true",
    // the program and the dynamic provider are Node.js processes started for every run: V8's code
    // cache spares them compiling the Pulumi SDK each time (a few hundred milliseconds per process)
    NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? path.join(ctx.projectDir, ".fleet", "node-compile-cache"),
  };
}

/** The Automation API, loaded only by the paths that need it (it weighs a few hundred milliseconds). */
async function automation(): Promise<typeof import("@pulumi/pulumi/automation")> {
  return import("@pulumi/pulumi/automation");
}

/** The toolchain's `pulumi` for the Automation API (its version was checked by toolchain/locate.sh). */
async function pulumiCommand(tc: Toolchain = findToolchain()) {
  // PulumiCommand runs <root>/bin/pulumi; a bin directory named otherwise is found through PATH
  const root = path.basename(tc.bin) === "bin" ? path.dirname(tc.bin) : undefined;
  return (await automation()).PulumiCommand.get({ root, skipVersionCheck: true });
}

/** The stack on the Automation API (one `pulumi stack select`): for preview, refresh, export and import. */
export async function openStack(ctx: FleetContext, target: StackTarget, create = true,
  passphrase = passphraseFor(ctx.projectDir, target)): Promise<Stack> {
  const envVars = pulumiEnv(ctx, passphrase);
  const { LocalWorkspace } = await automation();
  const args = { stackName: target.stack, workDir: ctx.projectDir };
  // the Automation API adds process.env to its commands' environment: what the allowlist leaves out is unset
  const opts = { pulumiCommand: await pulumiCommand(), envVars: childEnvOverriding(process.env, "pulumi", envVars) };
  return create ? LocalWorkspace.createOrSelectStack(args, opts) : LocalWorkspace.selectStack(args, opts);
}

export class PulumiCommandError extends Error {
  constructor(readonly args: string[], readonly code: number | null, readonly stdout: string, readonly stderr: string) {
    super(`pulumi ${args.join(" ")} exited with ${code}\nstdout: ${stdout}\nstderr: ${stderr}`);
  }
}

/**
 * Runs the toolchain's `pulumi <args>` in the project with the fleet's environment, passing its
 * output on as it comes; `input` is its stdin (a secret, never an argument). One process; rejects with PulumiCommandError (its whole output) on failure.
 */
export function runPulumi(ctx: FleetContext, target: StackTarget | undefined, args: string[],
  onOutput?: (chunk: string) => void,
  passphrase = target ? passphraseFor(ctx.projectDir, target) : process.env.PULUMI_CONFIG_PASSPHRASE ?? DEMO_PASSPHRASE,
  input?: string): Promise<{ stdout: string; stderr: string }> {
  // PULUMI_DEBUG_COMMANDS exposes --event-log, the engine's machine-readable events (as the Automation API does)
  const env = childEnv(process.env, "pulumi", { ...pulumiEnv(ctx, passphrase), PULUMI_DEBUG_COMMANDS: "true" });
  const bin = path.join(findToolchain().bin, "pulumi");
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: ctx.projectDir, env, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => { stdout += c; onOutput?.(c); });
    child.stderr!.setEncoding("utf8").on("data", (c: string) => { stderr += c; onOutput?.(c); });
    child.once("error", (err) => reject(new Error(`cannot run ${bin}: ${err.message}: run 'npm run toolchain'`)));
    child.once("close", (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new PulumiCommandError(args, code, stdout, stderr))));
  });
}

/**
 * Stacks and their outputs on a backend that is not a directory (Pulumi Cloud, S3, ...): a
 * `pulumi stack ls`, then a `pulumi stack output` per stack (masked: secrets read "[secret]").
 */
export async function remoteStacks(ctx: FleetContext): Promise<Map<string, StackState>> {
  const listed = JSON.parse((await runPulumi(ctx, undefined, ["stack", "ls", "--json"])).stdout) as { name: string; lastUpdate?: string }[];
  const out = new Map<string, StackState>();
  for (const s of listed) {
    const name = s.name.split("/").pop()!;
    const outputs = JSON.parse((await runPulumi(ctx, undefined, ["stack", "output", "--json", "--stack", s.name])).stdout) as Record<string, unknown>;
    out.set(name, { name, outputs, lastUpdate: s.lastUpdate });
  }
  return out;
}
