/** `fleet list`: each customer of the given environments with its plan, URL, image, health and last update. */
import { parseEnvironmentName } from "../config/targets";
import { engineFor } from "../engine/connection";
import { customerStackName } from "../hardening/names";
import { customerConfigs } from "./stackFiles";
import { readEnvironmentConfig } from "../config/stackFiles";
import { serviceHealth } from "./swarm";
import { readStacks } from "./backendState";
import type { FleetContext } from "./workspace";
import { BindingStore, defaultBindingsPath, type Binding } from "../webhooks/bindings";

export interface CustomerListing {
  environment: string;
  customer: string;
  plan: string;
  url: string;
  image: string;
  version: string;
  health: string;
  lastUpdate: string;
  /** the Stripe customer and subscription whose payment events may act on it (`fleet bind`); null: none */
  binding: { stripeCustomer: string; subscription: string | null; boundAt: string; boundBy: string } | null;
}

export async function listCustomers(ctx: FleetContext, environments: string[]): Promise<CustomerListing[]> {
  const targets = environments.map((e) => parseEnvironmentName(e));
  const states = await readStacks(ctx); // one read of the backend, not a Pulumi process per customer
  const bindings = new Map(BindingStore.readAll(defaultBindingsPath(ctx.projectDir)).map((b) => [`${b.environment}/${b.customer}`, b]));
  const out: CustomerListing[] = [];
  for (const { environment } of targets) {
    const engine = engineFor(ctx.projectDir, environment);
    const env = readEnvironmentConfig(ctx.projectDir, environment);
    for (const c of customerConfigs(ctx.projectDir, environment)) {
      const stack = customerStackName(environment, c.id);
      const state = states.get(stack);
      const outputs = state?.outputs ?? {};
      let health = "not deployed";
      // the container the last deployment made (its name ends in the slot of its spec)
      const container = typeof outputs.containerName === "string" ? outputs.containerName : undefined;
      if (container && env.target === "swarm") {
        health = await serviceHealth(ctx.projectDir, env, container);
      } else if (container) {
        try {
          const info = await engine.getContainer(container).inspect();
          health = info.State.Running ? info.State.Health?.Status ?? "running" : info.State.Status;
        } catch { /* no container */ }
      }
      out.push({
        environment, customer: c.id, plan: c.plan,
        url: String(outputs.url ?? "-"),
        image: String(outputs.image ?? "-"),
        version: String(outputs.version ?? "-"),
        health,
        lastUpdate: state?.lastUpdate ?? "never",
        binding: bindingOf(bindings.get(`${environment}/${c.id}`)),
      });
    }
  }
  return out;
}

function bindingOf(b: Binding | undefined): CustomerListing["binding"] {
  return b ? { stripeCustomer: b.stripeCustomer, subscription: b.subscription, boundAt: b.boundAt, boundBy: b.boundBy } : null;
}
