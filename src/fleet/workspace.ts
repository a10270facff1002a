/**
 * Pulumi Automation API on this project, fully offline: a project-local file backend by default,
 * passphrase secrets, no update check, no automatic plugin download.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { readEnvironmentConfig } from "../config/stackFiles";
import type { StackTarget } from "../config/targets";
import { toolchainBin } from "./toolchain";

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

export function pulumiEnv(ctx: FleetContext, passphrase: string): Record<string, string> {
  const bin = toolchainBin(ctx.projectDir);
  return {
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    PULUMI_BACKEND_URL: ctx.backendUrl,
    PULUMI_CONFIG_PASSPHRASE: passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    PULUMI_SKIP_CONFIRMATIONS: "true",
  };
}

export async function openStack(ctx: FleetContext, target: StackTarget, create = true): Promise<Stack> {
  const envVars = pulumiEnv(ctx, passphraseFor(ctx.projectDir, target));
  const pulumiCommand = await PulumiCommand.get({ root: path.dirname(toolchainBin(ctx.projectDir)), skipVersionCheck: true });
  const args = { stackName: target.stack, workDir: ctx.projectDir };
  const opts = { pulumiCommand, envVars };
  return create ? LocalWorkspace.createOrSelectStack(args, opts) : LocalWorkspace.selectStack(args, opts);
}

/** Every stack of the project in this backend, with when it was last updated. */
export async function stackSummaries(ctx: FleetContext): Promise<Map<string, { lastUpdate?: string }>> {
  const pulumiCommand = await PulumiCommand.get({ root: path.dirname(toolchainBin(ctx.projectDir)), skipVersionCheck: true });
  // listing decrypts nothing: any passphrase will do
  const ws = await LocalWorkspace.create({ workDir: ctx.projectDir, pulumiCommand,
    envVars: pulumiEnv(ctx, process.env.PULUMI_CONFIG_PASSPHRASE ?? DEMO_PASSPHRASE) });
  return new Map((await ws.listStacks()).map((s) => [s.name.split("/").pop()!, { lastUpdate: s.lastUpdate }]));
}

export async function listStacks(ctx: FleetContext): Promise<string[]> {
  return [...(await stackSummaries(ctx)).keys()];
}
