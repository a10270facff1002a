/**
 * The operations `fleet serve` runs jobs with: the real ones of src/fleet/operations.ts (Pulumi on the
 * project's stacks), or, for the process-level tests only, a module named by
 * FLEET_SERVE_TEST_OPERATIONS that exports `provision` and `deprovision` with the FleetOperations
 * signatures (it deploys nothing; the server says so loudly at start and in /healthz).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseEnvironmentName } from "../config/targets";
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
  };
}

/**
 * Before `fleet serve` accepts anything with the real operations: what every job would need, so a
 * misconfigured server fails at start rather than failing each payment's job. The environment's
 * stack file (valid config), its passphrase (PULUMI_CONFIG_PASSPHRASE outside the local demo) and
 * the Pulumi toolchain.
 */
export function checkReady(ctx: FleetContext, environment: string): void {
  const target = parseEnvironmentName(environment, "--env");
  if (!fs.existsSync(stackFile(ctx.projectDir, environment))) {
    throw new Error(`--env ${environment}: no environment stack file Pulumi.${environment}.yaml in ${ctx.projectDir}: use staging or prod, or add that file`);
  }
  passphraseFor(ctx.projectDir, target);
  findToolchain();
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
  return { ops: { provision: mod.provision, deprovision: mod.deprovision }, source: `test module ${file}` };
}
