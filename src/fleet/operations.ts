/**
 * What an operator does with the fleet, on the Automation API: deploy an environment, provision,
 * deprovision and list customers. The `fleet` CLI is a thin layer over these; a payment webhook can
 * call `provision` directly.
 */
import * as fs from "node:fs";
import type { OutputMap, Stack } from "@pulumi/pulumi/automation";
import { parseCustomerId } from "../config/load";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import { readEnvironmentConfig } from "../config/stackFiles";
import { ConfigError } from "../config/errors";
import { customerStackName } from "../hardening/names";
import { ensureBuilt } from "./build";
import { pulumiOutput, stderrLog, type Log } from "./progress";
import { customerConfigs, nextFreePort, stackFile, writeCustomerStackFile } from "./stackFiles";
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

export async function upStack(ctx: FleetContext, stackName: string, log: Log = stderrLog): Promise<UpResult> {
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
  return { env, customer: { id, environment: env.name, plan, port } };
}

export async function provision(ctx: FleetContext, req: ProvisionRequest, log: Log = stderrLog): Promise<UpResult> {
  const { customer } = planProvision(ctx.projectDir, req);
  if (!(await stackExists(ctx, customer.environment))) {
    throw new Error(`environment stack '${customer.environment}' does not exist yet: run 'fleet up ${customer.environment}' first`);
  }
  writeCustomerStackFile(ctx.projectDir, customer);
  return upStack(ctx, customerStackName(customer.environment, customer.id), log);
}

/** Destroys a customer's stack and removes it; the data volume is kept (retainOnDelete). */
export async function destroyStack(ctx: FleetContext, stackName: string, log: Log = stderrLog): Promise<Stack> {
  ensureBuilt(ctx.projectDir, log);
  const stack = await openStack(ctx, stackName, false);
  log(`pulumi destroy ${stackName}`);
  await stack.destroy({ onOutput: pulumiOutput(stackName, log), color: "never" });
  return stack;
}
