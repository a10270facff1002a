/**
 * The operations `fleet serve` runs jobs with: the real ones of src/fleet/operations.ts (Pulumi on the
 * project's stacks), or, for the process-level tests only, a module named by
 * FLEET_SERVE_TEST_OPERATIONS that exports `provision` and `deprovision` with the FleetOperations
 * signatures (it deploys nothing; the server says so loudly at start and in /healthz).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import { readEnvironmentConfig } from "../config/stackFiles";
import { parseCustomerTarget, parseEnvironmentName } from "../config/targets";
import { engineFor } from "../engine/connection";
import { customerNames } from "../hardening/names";
import { readCustomerConfig } from "../fleet/stackFiles";
import { dataEngine } from "../fleet/swarm";
import { deprovision, provision } from "../fleet/operations";
import { stackFile } from "../fleet/stackFiles";
import { findToolchain } from "../fleet/toolchain";
import { passphraseFor, type FleetContext } from "../fleet/workspace";
import type { FleetOperations } from "./worker";

export const TEST_OPERATIONS_ENV = "FLEET_SERVE_TEST_OPERATIONS";

/** provision and deprovision (keeping the data volume) of src/fleet/operations.ts. */
export function fleetOperations(ctx: FleetContext): FleetOperations {
  return {
    provision: (req, run) => provision(ctx, req, run.log),
    deprovision: (req, run) => deprovision(ctx, { customer: req.customer, environment: req.environment }, run.log),
    exists: (req) => customerExists(ctx, req),
  };
}

/**
 * Whether a customer exists, whoever made it: its stack file, or its data volume (kept by a
 * deprovision) on the environment's engine (on swarm: on any node). Only asked for a customer bound
 * to no Stripe customer, before a payment event may create it.
 */
export async function customerExists(ctx: FleetContext, req: { customer: string; environment: string }): Promise<boolean> {
  const target = parseCustomerTarget(req.customer, req.environment);
  if (readCustomerConfig(ctx.projectDir, target.stack)) return true;
  const env = readEnvironmentConfig(ctx.projectDir, target.environment);
  const volume = customerNames(target.environment, target.customer).dataVolume;
  const engines = env.target === "swarm" ? (env.swarm?.nodes ?? []).map((n) => dataEngine(ctx.projectDir, env, { node: n.name } as CustomerConfig))
    : [engineFor(ctx.projectDir, env.name)];
  for (const engine of engines) {
    try {
      await engine.getVolume(volume).inspect();
      return true;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err; // unreachable engine: a failed attempt, retried
    }
  }
  return false;
}

/**
 * Before `fleet serve` accepts anything with the real operations: what every job would need, so a
 * misconfigured server fails at start rather than failing each payment's job. The environment's
 * stack file (valid config), its passphrase (PULUMI_CONFIG_PASSPHRASE outside the local demo) and
 * the Pulumi toolchain.
 */
export function checkReady(ctx: FleetContext, environment: string): void {
  const target = parseEnvironmentName(environment, "--env");
  environmentTier(ctx, environment);
  passphraseFor(ctx.projectDir, target);
  findToolchain();
}

/** The environment's tier (its stack file must exist, in test mode too: a test-mode event never acts on production). */
export function environmentTier(ctx: FleetContext, environment: string): EnvironmentConfig["tier"] {
  if (!fs.existsSync(stackFile(ctx.projectDir, environment))) {
    throw new Error(`--env ${environment}: no environment stack file Pulumi.${environment}.yaml in ${ctx.projectDir}: use staging or prod, or add that file`);
  }
  return readEnvironmentConfig(ctx.projectDir, environment).tier;
}

export interface LoadedOperations {
  ops: FleetOperations;
  /** "fleet" or "test module <path>" */
  source: string;
}

/** The real operations, unless FLEET_SERVE_TEST_OPERATIONS names a test module. */
export function loadOperations(ctx: FleetContext, env: NodeJS.ProcessEnv = process.env): LoadedOperations {
  const modulePath = env[TEST_OPERATIONS_ENV];
  if (!modulePath) return { ops: fleetOperations(ctx), source: "fleet" };
  const file = path.resolve(modulePath);
  const mod = require(file) as Partial<FleetOperations>;
  if (typeof mod.provision !== "function" || typeof mod.deprovision !== "function") {
    throw new Error(`${TEST_OPERATIONS_ENV}=${modulePath}: the module must export functions provision and deprovision`);
  }
  const ops: FleetOperations = { provision: mod.provision, deprovision: mod.deprovision, ...(mod.exists ? { exists: mod.exists } : {}) };
  return { ops, source: `test module ${file}` };
}
