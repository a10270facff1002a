/** `fleet up|preview|destroy <stack>` and `fleet provision|deprovision|list`: stacks on the Automation API. */
import * as path from "node:path";
import type { Command } from "commander";
import { customerStackName } from "../hardening/names";
import {
  changeCount, destroyStack, previewStack, provision, stackExists, upStack, type UpResult,
} from "../fleet/operations";
import { customerConfigs } from "../fleet/stackFiles";
import { fleetContext, type FleetContext } from "../fleet/workspace";

export function projectContext(): FleetContext {
  const here = path.resolve(__dirname, "..", "..", __dirname.includes(`${path.sep}dist${path.sep}`) ? ".." : "");
  return fleetContext(process.env.FLEET_PROJECT_DIR ?? here);
}

export function summarize(r: UpResult): string {
  const changes = Object.entries(r.changes).map(([op, n]) => `${op} ${n}`).join(", ") || "no resources";
  return `${r.stack}: ${changes} in ${r.seconds.toFixed(1)}s`;
}

export function registerStacks(program: Command): void {
  program.command("up <stack>").description("deploy a stack (staging, prod, or <env>-<customer>)")
    .action(async (stack: string) => {
      const r = await upStack(projectContext(), stack);
      console.log(summarize(r));
    });

  program.command("preview <stack>").description("show what 'up' would change")
    .action(async (stack: string) => {
      const summary = await previewStack(projectContext(), stack);
      console.log(`${stack}: ${changeCount(summary)} change(s) ${JSON.stringify(summary)}`);
    });

  program.command("destroy <stack>").description("tear a stack down (customer data volumes are kept)")
    .action(async (stack: string) => {
      const ctx = projectContext();
      if (!stack.includes("-")) {
        const customers = customerConfigs(ctx.projectDir, stack).map((c) => customerStackName(stack, c.id));
        const live: string[] = [];
        for (const s of customers) if (await stackExists(ctx, s)) live.push(s);
        if (live.length > 0) throw new Error(`environment stack '${stack}' still has customer stacks: ${live.join(", ")}; deprovision them first`);
      }
      await destroyStack(ctx, stack);
      console.log(`${stack}: destroyed (data volumes kept)`);
    });

  program.command("provision <customer>").description("create or update a customer's stack and deploy it")
    .requiredOption("--env <environment>", "environment stack, e.g. staging or prod")
    .option("--plan <plan>", "plan from the environment's config (default: the customer's current plan, else the first)")
    .action(async (customer: string, opts: { env: string; plan?: string }) => {
      const r = await provision(projectContext(), { customer, environment: opts.env, plan: opts.plan });
      console.log(summarize(r));
      console.log(`${r.outputs.customerId}: ${r.outputs.url} (plan ${r.outputs.plan}, image ${String(r.outputs.image).slice(0, 19)}, version ${r.outputs.version})`);
    });
}
