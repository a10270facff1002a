/** Which target a customer runs on, from its own config alone. Pure: for the Pulumi program too. */
import type { CustomerConfig, TargetKind } from "../config/schema";

/** Only a swarm customer has a node (config/load.ts checkCustomerInEnvironment): known before the environment's settings are read. */
export function customerTargetKind(customer: Pick<CustomerConfig, "node">): TargetKind {
  return customer.node !== undefined ? "swarm" : "docker";
}
