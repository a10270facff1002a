/** Parses raw config values (from Pulumi config, YAML or a CLI) into typed config, once, at the boundary. */
import type { z } from "zod";
import { ConfigError, problemsFromZod, type ConfigProblem } from "./errors";
import {
  customerIdSchema,
  customerSchema,
  environmentSchema,
  type CustomerConfig,
  type EnvironmentConfig,
  type Sandbox,
  type SwarmEnvironmentConfig,
} from "./schema";

export const CONFIG_NAMESPACE = "hardened-fleet";
export const ENVIRONMENT_KEY = `${CONFIG_NAMESPACE}:environment`;
export const CUSTOMER_KEY = `${CONFIG_NAMESPACE}:customer`;
export const ROLE_KEY = `${CONFIG_NAMESPACE}:role`;
/** The docker provider's engine address in a stack's config (the environment's, copied into its customers'). */
export const DOCKER_HOST_KEY = "docker:host";

function parseOrThrow<S extends z.ZodType>(schema: S, key: string, raw: unknown): z.output<S> {
  const result = schema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new ConfigError(`config ${key}`, problemsFromZod(key, result.error));
  return result.data;
}

export function parseEnvironmentConfig(raw: unknown): EnvironmentConfig {
  return parseOrThrow(environmentSchema, ENVIRONMENT_KEY, raw);
}

/** A customer's config on its own: id, environment, plan and port well-formed. */
export function parseCustomerShape(raw: unknown): CustomerConfig {
  return parseOrThrow(customerSchema, CUSTOMER_KEY, raw);
}

/** A customer's config, checked against the environment it runs in (the plan exists, the id is not the edge proxy's). */
export function parseCustomerConfig(raw: unknown, env: EnvironmentConfig): CustomerConfig {
  return checkCustomerInEnvironment(parseCustomerShape(raw), env);
}

/**
 * `placementPending`: the customer has no node yet and fleet chooses one for it when it writes its
 * stack file (a new customer on a swarm), so a missing node is no problem yet.
 */
export function checkCustomerInEnvironment(customer: CustomerConfig, env: EnvironmentConfig,
  opts: { placementPending?: boolean } = {}): CustomerConfig {
  const problems: ConfigProblem[] = [];
  if (customer.environment !== env.name) {
    problems.push({ path: `${CUSTOMER_KEY}.environment`, found: JSON.stringify(customer.environment),
      message: `must name the environment stack it runs in ('${env.name}')` });
  }
  // own keys only: `in` would find 'constructor', 'toString' or '__proto__' on Object.prototype
  if (!Object.hasOwn(env.plans, customer.plan)) {
    problems.push({ path: `${CUSTOMER_KEY}.plan`, found: JSON.stringify(customer.plan),
      message: `must be one of the plans of environment '${env.name}': ${Object.keys(env.plans).join(", ")}` });
  }
  if (customer.id === env.edge.name) {
    problems.push({ path: `${CUSTOMER_KEY}.id`, found: JSON.stringify(customer.id),
      message: `names the edge proxy of environment '${env.name}' (edge.name): choose another customer id` });
  }
  problems.push(...nodeProblems(customer, env, opts.placementPending ?? false));
  if (problems.length > 0) throw new ConfigError(`config ${CUSTOMER_KEY}`, problems);
  return customer;
}

/**
 * The customer's node against its environment's target: required and one of swarm.nodes on a swarm,
 * absent on one host. Pure; the one place config tells the targets apart (the Pulumi program uses it too).
 */
function nodeProblems(customer: CustomerConfig, env: EnvironmentConfig, placementPending: boolean): ConfigProblem[] {
  switch (env.target) {
    case "swarm": {
      const nodes = env.swarm.nodes.map((n) => n.name);
      if (customer.node === undefined) {
        if (placementPending) return [];
        return [{ path: `${CUSTOMER_KEY}.node`, found: undefined,
          message: `is required with target: swarm (environment '${env.name}'): 'fleet provision' chooses the least loaded node; or set one of ${nodes.join(", ")}` }];
      }
      const node = env.swarm.nodes.find((n) => n.name === customer.node);
      if (!node) {
        return [{ path: `${CUSTOMER_KEY}.node`, found: JSON.stringify(customer.node),
          message: `must be one of the nodes of environment '${env.name}' (swarm.nodes): ${nodes.join(", ")}` }];
      }
      const sandbox = Object.hasOwn(env.plans, customer.plan) ? env.plans[customer.plan]!.sandbox : node.sandbox;
      return sandbox === node.sandbox ? [] : [{ path: `${CUSTOMER_KEY}.node`, found: JSON.stringify(customer.node),
        message: sandboxMismatch(customer.plan, sandbox, node.name, node.sandbox, env) }];
    }
    case "docker":
      return customer.node === undefined ? [] : [{ path: `${CUSTOMER_KEY}.node`, found: JSON.stringify(customer.node),
        message: `is only for target: swarm; environment '${env.name}' runs on one host: remove node` }];
  }
}

/**
 * Why a customer of plan `plan` (sandbox `wanted`) cannot run on node `node` (sandbox `has`): a
 * Swarm service has no runtime of its own, it runs under its node's default. Pure.
 */
export function sandboxMismatch(plan: string, wanted: Sandbox, node: string, has: Sandbox, env: SwarmEnvironmentConfig): string {
  const fitting = env.swarm.nodes.filter((n) => n.sandbox === wanted).map((n) => n.name);
  const nodeKind = has === "none" ? "is not a sandbox node" : `is a ${has} sandbox node`;
  const planKind = wanted === "none" ? "is not sandboxed" : `runs its customers in a ${wanted} sandbox`;
  return `node '${node}' ${nodeKind}, and plan '${plan}' ${planKind}: ` + (fitting.length > 0
    ? `use one of ${fitting.join(", ")} ('fleet move' copies the data there), or a plan that fits '${node}'`
    : `no node of environment '${env.name}' fits it: mark one with sandbox: ${wanted} in swarm.nodes (its engine's default runtime runsc, docs/sandbox.md), or choose another plan`);
}

/** Checks a customer id alone (CLI arguments, webhooks) with the same rule the config uses. */
export function parseCustomerId(raw: unknown, source = "customer id"): string {
  const result = customerIdSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new ConfigError(source, problemsFromZod(source, result.error).map((p) => ({ ...p, path: source })));
  return result.data;
}

export type StackRole = "environment" | "customer";
export function parseRole(raw: unknown): StackRole {
  if (raw === "environment" || raw === "customer") return raw;
  throw new ConfigError(`config ${ROLE_KEY}`, [{ path: ROLE_KEY, found: raw === undefined ? undefined : JSON.stringify(raw),
    message: raw === undefined ? "is required: 'environment' (staging, prod) or 'customer' (one customer in one environment)"
      : "must be 'environment' or 'customer'" }]);
}
