/**
 * The operations `fleet serve` runs jobs with: the real ones of src/fleet/operations.ts (Pulumi on the
 * project's stacks), or, for the process-level tests only, a module named by
 * FLEET_SERVE_TEST_OPERATIONS that exports `provision` and `deprovision` with the FleetOperations
 * signatures (it deploys nothing; the server says so loudly at start and in /healthz).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { EnvironmentConfig } from "../config/schema";
import { parseCustomerTarget, parseEnvironmentName } from "../config/targets";
import { customerNames } from "../hardening/names";
import { deprovision, loadEnvironment, provision, type Environment, type FleetContext } from "../fleet/operations";
import { readCustomerConfig, stackFile } from "../project/stackFiles";
import { findToolchain } from "../pulumi/toolchain";
import { passphraseOf } from "../pulumi/workspace";
import type { FleetOperations } from "./worker";

export const TEST_OPERATIONS_ENV = "FLEET_SERVE_TEST_OPERATIONS";

/** provision and deprovision (keeping the data volume) of src/fleet/operations.ts: each job loads its environment once. */
export function fleetOperations(ctx: FleetContext): FleetOperations {
  return {
    provision: (req, run) => provision(ctx, req, run.log),
    deprovision: (req, run) => deprovision(ctx, { customer: req.customer, environment: req.environment }, run.log),
    exists: (req) => customerExists(ctx, req),
  };
}

/**
 * Whether a customer exists, whoever made it: its stack file, or its data volume (kept by a
 * deprovision) on any engine of the environment's target (on swarm: every node). Only asked for a
 * customer bound to no Stripe customer, before a payment event may create it.
 */
export async function customerExists(ctx: FleetContext, req: { customer: string; environment: string }): Promise<boolean> {
  const target = parseCustomerTarget(req.customer, req.environment);
  if (readCustomerConfig(ctx.projectDir, target.stack)) return true;
  const environment = loadEnvironment(ctx, target.environment);
  const volume = customerNames(target.environment, target.customer).dataVolume;
  for (const { engine } of environment.target.engines()) {
    try {
      await engine.getVolume(volume).inspect();
      return true;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err; // unreachable engine: a failed attempt, retried
    }
  }
  return false;
}

/** The environment `fleet serve --env` names; its stack file must exist, in test mode too (a test-mode event never acts on production). */
function serveEnvironment(ctx: FleetContext, environment: string): Environment {
  if (!fs.existsSync(stackFile(ctx.projectDir, environment))) {
    throw new Error(`--env ${environment}: no environment stack file Pulumi.${environment}.yaml in ${ctx.projectDir}: use staging or prod, or add that file`);
  }
  return loadEnvironment(ctx, environment);
}

/**
 * Before `fleet serve` accepts anything with the real operations: what every job would need, so a
 * misconfigured server fails at start rather than failing each payment's job. The environment's
 * stack file (valid config), its passphrase (PULUMI_CONFIG_PASSPHRASE outside the local demo) and
 * the Pulumi toolchain. Returns the environment, read once.
 */
export function checkReady(ctx: FleetContext, environment: string): Environment {
  const target = parseEnvironmentName(environment, "--env");
  const env = serveEnvironment(ctx, environment);
  passphraseOf(env.config, target);
  findToolchain();
  return env;
}

/** The environment's tier (its stack file must exist, in test mode too: a test-mode event never acts on production). */
export function environmentTier(ctx: FleetContext, environment: string): EnvironmentConfig["tier"] {
  return serveEnvironment(ctx, environment).config.tier;
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
