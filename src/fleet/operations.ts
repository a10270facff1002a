/**
 * What an operator does with the fleet, on the Automation API: the public API of hardened-fleet's
 * operations. The `fleet` CLI is a thin layer over these; a payment webhook can call `provision`.
 * Every function here validates the names it is given before it builds anything from them.
 *
 *  - stacks.ts: running one stack (up, preview, destroy), with crash recovery (recovery.ts)
 *  - customers.ts: provision (plan changes too), migrate, deprovision, with rollback on failure
 *  - volumes.ts: adopting data volumes of old deployments
 *  - listing.ts: the customer listing
 */
import { parseStackTarget } from "../config/targets";
import { upCustomer } from "./customers";
import { stderrLog, type Log } from "./progress";
import { upTarget, type UpResult } from "./stacks";
import type { FleetContext } from "./workspace";

export { provision, deprovision, migrate, environmentImage, checkRequest, RolledBackError, upCustomer } from "./customers";
export type { ProvisionRequest, DeprovisionResult } from "./customers";
export { previewStack, destroyStack, destroyEnvironment, changeCount, listStacks, stackExists, stackImage, explainFailure, type UpResult } from "./stacks";
export { adoptVolume, backupDir, type AdoptResult } from "./volumes";
export { listCustomers, type CustomerListing } from "./listing";

/** `fleet up <stack>`: an environment as configured, or a customer with rollback to what it ran on failure. */
export async function upStack(ctx: FleetContext, stackName: string, log: Log = stderrLog): Promise<UpResult> {
  const target = parseStackTarget(stackName);
  return target.kind === "customer" ? upCustomer(ctx, target, log) : upTarget(ctx, target, log);
}
