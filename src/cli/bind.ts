/**
 * `fleet bind`: which Stripe customer (and subscription) owns a fleet customer, set, shown or
 * cleared by the operator on purpose (src/project/bindings.ts). `fleet serve` binds new customers
 * itself; this is for customers made by the CLI, a customer that moves to another Stripe customer,
 * and after upgrading from a fleet that did not bind.
 */
import type { Command } from "commander";
import { ConfigError, type ConfigProblem } from "../config/errors";
import { parseCustomerTarget } from "../config/targets";
import { environmentNames } from "../fleet/operations";
import { BindingStore, defaultBindingsPath, parseStripeId, type Binding } from "../project/bindings";
import { projectContext } from "./stacks";

export interface BindOptions {
  env?: string;
  stripeCustomer?: string;
  subscription?: string;
  show?: boolean;
  clear?: boolean;
}

export type BindRequest =
  | { kind: "set"; environment: string; customer: string; stripeCustomer: string; subscription: string | null }
  | { kind: "show"; environment: string; customer: string }
  | { kind: "clear"; environment: string; customer: string };

/** Every problem of the arguments at once, each naming its field, before anything is written. */
export function parseBindArgs(customer: unknown, opts: BindOptions, environments: string[]): BindRequest {
  const problems: ConfigProblem[] = [];
  const collect = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return undefined;
    }
  };
  const target = collect(() => parseCustomerTarget(customer, opts.env ?? "", { customer: "<customer>", environment: "--env" }));
  if (target && !environments.includes(target.environment)) {
    problems.push({ path: "--env", found: JSON.stringify(opts.env),
      message: `no environment stack file Pulumi.${target.environment}.yaml in this project (environments: ${environments.join(", ") || "none"})` });
  }
  const modes = [opts.show, opts.clear, opts.stripeCustomer !== undefined].filter(Boolean).length;
  if (modes !== 1) {
    problems.push({ path: "--stripe-customer", message: "give exactly one of --stripe-customer cus_... (bind), --show or --clear" });
  }
  const set = opts.stripeCustomer !== undefined && !opts.show && !opts.clear;
  const stripeCustomer = set ? collect(() => parseStripeId(opts.stripeCustomer, "customer", "--stripe-customer")) : undefined;
  const subscription = opts.subscription === undefined ? null : collect(() => parseStripeId(opts.subscription, "subscription", "--subscription"));
  if (opts.subscription !== undefined && !set) problems.push({ path: "--subscription", message: "goes with --stripe-customer" });
  if (problems.length > 0 || !target) throw new ConfigError("fleet bind arguments", problems);
  if (set) return { kind: "set", environment: target.environment, customer: target.customer, stripeCustomer: stripeCustomer!, subscription: subscription ?? null };
  return { kind: opts.show ? "show" : "clear", environment: target.environment, customer: target.customer };
}

export function describeBinding(b: Binding): string {
  return `${b.environment}/${b.customer}: Stripe customer ${b.stripeCustomer}, ` +
    `${b.subscription ? `subscription ${b.subscription}` : "any subscription of it"} (bound ${b.boundAt} by ${b.boundBy})`;
}

function bind(customer: string, opts: BindOptions): void {
  const ctx = projectContext();
  const req = parseBindArgs(customer, opts, environmentNames(ctx.projectDir));
  const store = BindingStore.open(defaultBindingsPath(ctx.projectDir));
  try {
    const before = store.get(req.environment, req.customer);
    if (req.kind === "show") {
      console.log(before ? describeBinding(before) : `${req.environment}/${req.customer}: bound to no Stripe customer`);
    } else if (req.kind === "clear") {
      console.log(store.clear(req.environment, req.customer)
        ? `${req.environment}/${req.customer}: binding cleared (was ${before!.stripeCustomer}); the next checkout naming it binds it`
        : `${req.environment}/${req.customer}: was bound to no Stripe customer`);
    } else {
      store.set({ environment: req.environment, customer: req.customer, stripeCustomer: req.stripeCustomer, subscription: req.subscription,
        boundAt: new Date().toISOString(), boundBy: "operator" });
      console.log(`${describeBinding(store.get(req.environment, req.customer)!)}${before ? ` (was ${before.stripeCustomer}${before.subscription ? ` ${before.subscription}` : ""})` : ""}`);
    }
  } finally {
    store.close();
  }
}

export function registerBind(program: Command): void {
  program.command("bind <customer>").description("bind a customer to the Stripe customer (and subscription) whose payment events may act on it")
    .requiredOption("--env <environment>", "environment, e.g. staging or prod")
    .option("--stripe-customer <id>", "the Stripe customer (cus_...) that owns it")
    .option("--subscription <id>", "its current subscription (sub_...; default: any subscription of that Stripe customer)")
    .option("--show", "print the binding")
    .option("--clear", "remove the binding")
    .action(bind);
}
