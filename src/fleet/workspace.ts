/**
 * Pulumi Automation API on this project, fully offline: a project-local file backend by default,
 * passphrase secrets, no update check, no automatic plugin download.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { readEnvironmentConfig } from "../config/stackFiles";
import type { StackTarget } from "../config/targets";
import { findToolchain, type Toolchain } from "./toolchain";

/** Passphrase of the local demo only (an environment with `localDemo: true`); documented in the README. */
export const DEMO_PASSPHRASE = "hardened-fleet-local-demo";

export interface FleetContext {
  projectDir: string;
  /** Pulumi backend; default file://<projectDir>/.fleet/state */
  backendUrl: string;
}

export function fleetContext(projectDir: string, backendUrl = process.env.PULUMI_BACKEND_URL): FleetContext {
  const dir = path.resolve(projectDir);
  const backend = backendUrl ?? `file://${path.join(dir, ".fleet", "state")}`;
  if (backend.startsWith("file://")) fs.mkdirSync(backend.slice("file://".length), { recursive: true });
  return { projectDir: dir, backendUrl: backend };
}

/**
 * The operator's PULUMI_CONFIG_PASSPHRASE; without one, the documented demo passphrase, but only for
 * the stacks of an environment whose config marks it as the local demo (never production: the
 * schema refuses that). Decided by the environment's config, not by the stack's name.
 */
export function passphraseFor(projectDir: string, target: StackTarget, env = process.env): string {
  if (env.PULUMI_CONFIG_PASSPHRASE) return env.PULUMI_CONFIG_PASSPHRASE;
  const config = readEnvironmentConfig(projectDir, target.environment);
  if (config.localDemo) return DEMO_PASSPHRASE;
  throw new Error(`stack '${target.stack}' belongs to environment '${config.name}' (tier ${config.tier}), which is not the local demo: ` +
    "set PULUMI_CONFIG_PASSPHRASE to its passphrase");
}

/**
 * Environment of every Pulumi command: the toolchain first on PATH, then the Node.js this process
 * runs on (so the program runs on it too), the toolchain's Pulumi home (project-local for the built
 * toolchain: <repo>/.fleet/pulumi-home), the backend, the passphrase and the offline switches.
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
  };
}

/** The toolchain's `pulumi` for the Automation API (its version was checked by toolchain/locate.sh). */
async function pulumiCommand(tc: Toolchain = findToolchain()): Promise<PulumiCommand> {
  // PulumiCommand runs <root>/bin/pulumi; a bin directory named otherwise is found through PATH
  const root = path.basename(tc.bin) === "bin" ? path.dirname(tc.bin) : undefined;
  return PulumiCommand.get({ root, skipVersionCheck: true });
}

export async function openStack(ctx: FleetContext, target: StackTarget, create = true): Promise<Stack> {
  const envVars = pulumiEnv(ctx, passphraseFor(ctx.projectDir, target));
  const cmd = await pulumiCommand();
  const args = { stackName: target.stack, workDir: ctx.projectDir };
  const opts = { pulumiCommand: cmd, envVars };
  return create ? LocalWorkspace.createOrSelectStack(args, opts) : LocalWorkspace.selectStack(args, opts);
}

/** Every stack of the project in this backend, with when it was last updated. */
export async function stackSummaries(ctx: FleetContext): Promise<Map<string, { lastUpdate?: string }>> {
  // listing decrypts nothing: any passphrase will do
  const envVars = pulumiEnv(ctx, process.env.PULUMI_CONFIG_PASSPHRASE ?? DEMO_PASSPHRASE);
  const ws = await LocalWorkspace.create({ workDir: ctx.projectDir, pulumiCommand: await pulumiCommand(), envVars });
  return new Map((await ws.listStacks()).map((s) => [s.name.split("/").pop()!, { lastUpdate: s.lastUpdate }]));
}

export async function listStacks(ctx: FleetContext): Promise<string[]> {
  return [...(await stackSummaries(ctx)).keys()];
}
