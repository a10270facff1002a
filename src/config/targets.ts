/**
 * What a fleet command acts on, parsed once at the boundary (CLI arguments, the exported API,
 * webhooks) before any file path, lock, stack or Docker name is built from it.
 *
 * Environment names are letters and digits only and customer ids are DNS labels, so the stack
 * name `<environment>-<customer>` always splits one way, and every derived name is safe as a
 * file name, a Pulumi stack name and a Docker object name.
 */
import { ConfigError, problemsFromZod, type ConfigProblem } from "./errors";
import { customerIdSchema, environmentNameSchema } from "./schema";

/** Customer stacks are `<environment>-<customer>`; environment stacks are bare names such as `staging`. */
export function customerStackName(environment: string, customerId: string): string {
  return `${environment}-${customerId}`;
}

export interface EnvironmentTarget {
  kind: "environment";
  environment: string;
  stack: string;
}

export interface CustomerTarget {
  kind: "customer";
  environment: string;
  customer: string;
  stack: string;
}

export type StackTarget = EnvironmentTarget | CustomerTarget;

function problems(schema: typeof customerIdSchema, raw: unknown, source: string): ConfigProblem[] {
  const result = schema.safeParse(raw, { reportInput: true });
  return result.success ? [] : problemsFromZod(source, result.error).map((p) => ({ ...p, path: source }));
}

/** An environment name (staging, prod): letters and digits. */
export function parseEnvironmentName(raw: unknown, source = "--env"): EnvironmentTarget {
  const found = problems(environmentNameSchema, raw, source);
  if (found.length > 0) throw new ConfigError(source, found);
  const environment = raw as string;
  return { kind: "environment", environment, stack: environment };
}

/** A customer in an environment; reports a bad id and a bad environment together. */
export function parseCustomerTarget(customer: unknown, environment: unknown,
  sources: { customer?: string; environment?: string } = {}): CustomerTarget {
  const customerSource = sources.customer ?? "customer id";
  const environmentSource = sources.environment ?? "--env";
  const found = [...problems(customerIdSchema, customer, customerSource), ...problems(environmentNameSchema, environment, environmentSource)];
  if (found.length > 0) throw new ConfigError(`${customerSource} and ${environmentSource}`, found);
  const env = environment as string;
  const id = customer as string;
  return { kind: "customer", environment: env, customer: id, stack: customerStackName(env, id) };
}

/** A stack name: `staging` (an environment) or `staging-acme` (customer acme in staging). */
export function parseStackTarget(raw: unknown, source = "stack"): StackTarget {
  if (typeof raw === "string") {
    const dash = raw.indexOf("-");
    if (dash < 0 && environmentNameSchema.safeParse(raw).success) return { kind: "environment", environment: raw, stack: raw };
    const env = raw.slice(0, dash);
    const customer = raw.slice(dash + 1);
    if (dash > 0 && environmentNameSchema.safeParse(env).success && customerIdSchema.safeParse(customer).success) {
      return { kind: "customer", environment: env, customer, stack: raw };
    }
  }
  throw new ConfigError(source, [{
    path: source, found: JSON.stringify(raw),
    message: "must be an environment (letters and digits, e.g. staging) or <environment>-<customer> (e.g. staging-acme, customer a lowercase DNS label)",
  }]);
}
