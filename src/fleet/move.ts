/**
 * `fleet move <customer> --env E --to NODE`: a customer and its data to another node. The target does
 * the moving (DeployTarget.moveToNode; one host has no other node and says so); this is the fleet side:
 * the request checked, the customer's stack locked, its stack file written and deployed at the switch.
 */
import { ConfigError } from "../config/errors";
import { checkCustomerInEnvironment } from "../config/load";
import type { CustomerConfig } from "../config/schema";
import type { CustomerTarget } from "../config/targets";
import { backupDir } from "../project/context";
import { readCustomerConfig, writeCustomerStackFile } from "../project/stackFiles";
import { stderrLog, type Log } from "../pulumi/progress";
import { stackImage } from "../pulumi/stackState";
import { runUp, withStack } from "../pulumi/stacks";
import type { MoveResult } from "../targets";
import type { Environment } from "./environment";

export type { MoveResult } from "../targets";

/** Moves a deployed customer to node `to` of its environment, its data copied and checked; on failure it runs where it was. */
export async function moveCustomerToNode(environment: Environment, target: CustomerTarget, to: string, log: Log = stderrLog,
  plan?: string): Promise<MoveResult> {
  const { ctx } = environment;
  environment.target.checkMove(to);
  if (plan !== undefined && !Object.hasOwn(environment.config.plans, plan)) {
    throw new ConfigError("--plan", [{ path: "--plan", found: JSON.stringify(plan), message: `must be one of the plans of '${environment.name}': ${Object.keys(environment.config.plans).join(", ")}` }]);
  }
  return withStack(ctx, target, log, async (stack) => {
    const customer = readCustomerConfig(ctx.projectDir, target.stack);
    if (!customer?.node) throw new Error(`${target.stack} is not provisioned: run 'fleet provision ${target.customer} --env ${target.environment}' first`);
    if (customer.node === to) throw new ConfigError("--to", [{ path: "--to", found: JSON.stringify(to), message: `is where ${target.customer} runs already` }]);
    // the node must fit the plan it runs on there (a sandbox node for a sandboxed plan, and only for one)
    checkCustomerInEnvironment({ ...customer, node: to, plan: plan ?? customer.plan }, environment.config);
    await environment.target.checkRuntime(plan ?? customer.plan, environment.config.plans[plan ?? customer.plan]!.sandbox, to);
    const image = await stackImage(ctx, target);
    if (!image) throw new Error(`${target.stack} has never been deployed: there is nothing to move`);
    const write = (c: CustomerConfig) => writeCustomerStackFile(ctx.projectDir, c, environment.dockerHost);
    return environment.target.moveToNode({
      customer, to, plan: plan ?? customer.plan, image, backupDir: backupDir(ctx),
      deploy: async (moved) => {
        write(moved);
        await runUp(stack, log);
      },
      restoreConfig: () => write(customer),
    }, log);
  }, true, environment.stackSettings(target));
}
