/** Which target's CustomerProgram a stack's program runs: picked here and nowhere else in the program. */
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import type { CustomerProgram } from "./customerProgram";
import { dockerProgram } from "./docker/program";
import { customerTargetKind } from "./kind";
import { swarmProgram } from "./swarm/program";

const PROGRAMS: Record<EnvironmentConfig["target"], CustomerProgram> = { docker: dockerProgram, swarm: swarmProgram };

/**
 * A customer stack's program, from the customer's own config alone (customerTargetKind: a node means
 * swarm), before its environment's settings are read. Pure.
 */
export function customerProgramFor(customer: Pick<CustomerConfig, "node">): CustomerProgram {
  return PROGRAMS[customerTargetKind(customer)];
}

/** The program of an environment's customers, for what the environment stack does for them (its edge proxy). Pure. */
export function environmentCustomerProgram(env: Pick<EnvironmentConfig, "target">): CustomerProgram {
  return PROGRAMS[env.target];
}
