/** `fleet list`: each customer of the given environments with its plan, URL, image, health and last update. */
import { parseEnvironmentName } from "../config/targets";
import { engineFor } from "../engine/connection";
import { customerNames, customerStackName } from "../hardening/names";
import { customerConfigs } from "./stackFiles";
import { openStack, stackSummaries, type FleetContext } from "./workspace";

export interface CustomerListing {
  environment: string;
  customer: string;
  plan: string;
  url: string;
  image: string;
  version: string;
  health: string;
  lastUpdate: string;
}

export async function listCustomers(ctx: FleetContext, environments: string[]): Promise<CustomerListing[]> {
  const targets = environments.map((e) => parseEnvironmentName(e));
  const summaries = await stackSummaries(ctx);
  const out: CustomerListing[] = [];
  for (const { environment } of targets) {
    const engine = engineFor(ctx.projectDir, environment);
    for (const c of customerConfigs(ctx.projectDir, environment)) {
      const stack = customerStackName(environment, c.id);
      const summary = summaries.get(stack);
      let outputs: Record<string, { value: unknown }> = {};
      if (summary) outputs = await (await openStack(ctx, { kind: "customer", environment, customer: c.id, stack })).outputs();
      let health = "not deployed";
      try {
        const info = await engine.getContainer(customerNames(environment, c.id).container).inspect();
        health = info.State.Running ? info.State.Health?.Status ?? "running" : info.State.Status;
      } catch { /* no container */ }
      out.push({
        environment, customer: c.id, plan: c.plan,
        url: String(outputs.url?.value ?? `http://127.0.0.1:${c.port}`),
        image: String(outputs.image?.value ?? "-"),
        version: String(outputs.version?.value ?? "-"),
        health,
        lastUpdate: summary?.lastUpdate ?? "never",
      });
    }
  }
  return out;
}
