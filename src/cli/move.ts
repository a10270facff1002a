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
    .option("--plan <plan>", "the plan it runs on there: between a sandboxed plan and not, the node changes with the plan (docs/sandbox.md)")
    .action(async (customer: string, opts: { env: string; to: string; plan?: string }) => {
      parseCustomerId(customer);
      const r = await moveCustomerToNode(projectContext(), { customer, environment: opts.env, to: opts.to, plan: opts.plan });
      console.log(`${r.customer}: moved from ${r.from} to ${r.to} with its ${r.files} files (checked); the archive it went through: ${r.archive}; ` +
        `${r.from} keeps its copy of the volume until you remove it`);
    });
}
