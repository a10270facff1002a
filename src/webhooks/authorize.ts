/**
 * What a payment event is allowed to do, beyond being well signed and well formed:
 *
 *  - a test-mode event (livemode false) never acts on a production-tier environment (decided when
 *    the event is accepted: the job is refused and never runs);
 *  - an event acts only on a customer bound to its Stripe customer and subscription (src/project/bindings.ts;
 *    decided when the job runs, in the customer's event order, so a checkout binds before the
 *    subscription updates that follow it are judged).
 *
 * A refused job ends `refused` with the reason, and nothing changes.
 */
import type { EnvironmentConfig } from "../config/schema";
import { bindCommand, type Binding, type BindingStore } from "../project/bindings";
import type { Job } from "./queue";
import type { EventDecision, JobAction } from "./stripeEvents";
import type { Authorization } from "./worker";

/** What a job asks, as far as ownership goes. */
export interface PaymentRequest {
  environment: string;
  customer: string;
  action: JobAction;
  /** the event's Stripe customer (null: the event named none) */
  stripeCustomer: string | null;
  /** the event's subscription (null: a checkout without one) */
  subscription: string | null;
}

export type BindingDecision =
  | { kind: "allow"; bind?: { stripeCustomer: string; subscription: string | null } }
  | { kind: "refuse"; reason: string };

/**
 * May this job act on its customer? Pure: `binding` is the customer's current binding, `exists`
 * whether the customer exists without one (a stack file or a data volume, e.g. made by the CLI).
 */
export function decideBinding(req: PaymentRequest, binding: Binding | undefined, exists: boolean): BindingDecision {
  const who = `${req.environment}/${req.customer}`;
  const sc = req.stripeCustomer;
  if (sc === null) return { kind: "refuse", reason: `refused, nothing changed: the event names no Stripe customer, so it cannot be matched to ${who}'s owner` };
  const rebind = `if ${sc} is the rightful owner, run '${bindCommand(req.environment, req.customer, sc, req.subscription)}', then 'fleet jobs --retry <job>'`;
  if (!binding) {
    if (exists) {
      return { kind: "refuse", reason: `refused, nothing changed: ${who} exists but is bound to no Stripe customer ` +
        `(made by the CLI, or before payments were bound), and a payment event never takes a customer over\n  fix: ${rebind}` };
    }
    // nothing there and nobody owns it: a deprovision has nothing to do, anything else creates it and binds it
    return req.action === "deprovision" ? { kind: "allow" } : { kind: "allow", bind: { stripeCustomer: sc, subscription: req.subscription } };
  }
  if (binding.stripeCustomer !== sc) {
    return { kind: "refuse", reason: `refused, nothing changed: ${who} is bound to Stripe customer ${binding.stripeCustomer} ` +
      `(${binding.boundBy}, ${binding.boundAt}); this event comes from ${sc}\n  fix: ${rebind}` };
  }
  // the owner's new checkout (a resubscribe, or a second subscription): its subscription is the current one now
  if (req.action === "provision") return { kind: "allow", bind: { stripeCustomer: sc, subscription: req.subscription ?? binding.subscription } };
  if (binding.subscription === null) {
    return req.action === "deprovision" ? { kind: "allow" } : { kind: "allow", bind: { stripeCustomer: sc, subscription: req.subscription } };
  }
  if (req.subscription !== binding.subscription) {
    return { kind: "refuse", reason: `refused, nothing changed: ${who}'s current subscription is ${binding.subscription}; ` +
      `this event is about ${req.subscription ?? "no subscription"} (an older or another subscription of ${sc})\n  fix: ${rebind}` };
  }
  return { kind: "allow" };
}

/** Pure: a test-mode event that would act on a production-tier environment is refused instead. */
export function refuseTestModeInProduction(decision: EventDecision, livemode: boolean, tier: EnvironmentConfig["tier"], environment: string): EventDecision {
  if (decision.kind !== "run" || livemode || tier !== "production") return decision;
  return {
    ...decision, kind: "refuse",
    reason: `refused, nothing changed: a test-mode event (livemode false) never acts on ${environment}, a production-tier environment\n` +
      "  fix: send test-mode events to a 'fleet serve' of a staging-tier environment (its own Stripe test-mode endpoint and secret)",
  };
}

/**
 * The worker's check before a job runs: the customer's binding decides; a job allowed to bind (a new
 * customer, the owner's new subscription) records the binding before its operation starts, so a run
 * cut short and started again finds its own binding.
 */
export function bindingAuthorizer(store: BindingStore, exists: (req: { customer: string; environment: string }) => Promise<boolean>,
  now: () => Date = () => new Date()): (job: Job) => Promise<Authorization> {
  return async (job) => {
    if (job.customer === null || job.action === null) return { kind: "allow" };
    const binding = store.get(job.environment, job.customer);
    const found = binding ? true : await exists({ customer: job.customer, environment: job.environment });
    const decision = decideBinding({
      environment: job.environment, customer: job.customer, action: job.action,
      stripeCustomer: job.stripeCustomer, subscription: job.stripeSubscription,
    }, binding, found);
    if (decision.kind === "refuse") return decision;
    const b = decision.bind;
    if (b && (b.stripeCustomer !== binding?.stripeCustomer || b.subscription !== binding.subscription)) {
      store.set({ environment: job.environment, customer: job.customer, stripeCustomer: b.stripeCustomer, subscription: b.subscription,
        boundAt: now().toISOString(), boundBy: `event ${job.eventId}` });
    }
    return { kind: "allow" };
  };
}
