/**
 * What a payment event is allowed to do, beyond being well signed and well formed:
 *
 *  - a test-mode event (livemode false) never acts on a production-tier environment (decided when
 *    the event is accepted: the job is refused and never runs);
 *  - an event acts only on a customer bound to its Stripe customer and subscription (bindings.ts;
 *    decided when the job runs, in the customer's event order, so a checkout binds before the
 *    subscription updates that follow it are judged).
 *
 * A refused job ends `refused` with the reason, and nothing changes.
 */
import type { EnvironmentConfig } from "../config/schema";
import { decideBinding, type BindingStore } from "./bindings";
import type { Job } from "./queue";
import type { EventDecision } from "./stripeEvents";
import type { Authorization } from "./worker";

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
