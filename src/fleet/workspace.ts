/**
 * Pulumi Automation API on this project, fully offline: a project-local file backend by default,
 * passphrase secrets, no update check, no automatic plugin download.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { toolchainBin } from "./toolchain";

/** Passphrase for the local staging demo only; documented in the README. Never used for production. */
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

/** Production stacks (prod, prod-<customer>) demand the operator's passphrase. */
export function passphraseFor(stack: string, env = process.env): string {
  if (env.PULUMI_CONFIG_PASSPHRASE) return env.PULUMI_CONFIG_PASSPHRASE;
  if (stack === "prod" || stack.startsWith("prod-")) {
    throw new Error(`stack '${stack}' is production: set PULUMI_CONFIG_PASSPHRASE (the local demo passphrase is for staging only)`);
  }
  return DEMO_PASSPHRASE;
}

export function pulumiEnv(ctx: FleetContext, stack: string): Record<string, string> {
  const bin = toolchainBin(ctx.projectDir);
  return {
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    PULUMI_BACKEND_URL: ctx.backendUrl,
    PULUMI_CONFIG_PASSPHRASE: passphraseFor(stack),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    PULUMI_SKIP_CONFIRMATIONS: "true",
  };
}

export async function openStack(ctx: FleetContext, stackName: string, create = true): Promise<Stack> {
  const envVars = pulumiEnv(ctx, stackName);
  const pulumiCommand = await PulumiCommand.get({ root: path.dirname(toolchainBin(ctx.projectDir)), skipVersionCheck: true });
  const args = { stackName, workDir: ctx.projectDir };
  const opts = { pulumiCommand, envVars };
  return create ? LocalWorkspace.createOrSelectStack(args, opts) : LocalWorkspace.selectStack(args, opts);
}

/** Every stack of the project in this backend, with when it was last updated. */
export async function stackSummaries(ctx: FleetContext): Promise<Map<string, { lastUpdate?: string }>> {
  const pulumiCommand = await PulumiCommand.get({ root: path.dirname(toolchainBin(ctx.projectDir)), skipVersionCheck: true });
  const ws = await LocalWorkspace.create({ workDir: ctx.projectDir, pulumiCommand, envVars: pulumiEnv(ctx, "staging") });
  return new Map((await ws.listStacks()).map((s) => [s.name.split("/").pop()!, { lastUpdate: s.lastUpdate }]));
}

export async function listStacks(ctx: FleetContext): Promise<string[]> {
  return [...(await stackSummaries(ctx)).keys()];
}
