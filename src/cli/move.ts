/** `fleet move`: a customer and its data to another node of a Docker Swarm cluster (target: swarm). */
import type { Command } from "commander";
import { parseCustomerId } from "../config/load";
import { moveCustomerToNode } from "../fleet/operations";
import { projectContext } from "./stacks";

export function registerMove(program: Command): void {
  program.command("move <customer>")
    .description("target: swarm: move a customer and its data to another node (stops it, copies and checks every file, then starts it there)")
    .requiredOption("--env <environment>", "the swarm environment")
    .requiredOption("--to <node>", "the node (swarm.nodes[].name) to move it to")
    .action(async (customer: string, opts: { env: string; to: string }) => {
      parseCustomerId(customer);
      const r = await moveCustomerToNode(projectContext(), { customer, environment: opts.env, to: opts.to });
      console.log(`${r.customer}: moved from ${r.from} to ${r.to} with its ${r.files} files (checked); the archive it went through: ${r.archive}; ` +
        `${r.from} keeps its copy of the volume until you remove it`);
    });
}
