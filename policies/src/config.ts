/**
 * The pack's configuration, per stack (`pulumi preview --policy-pack-config <file>`): besides each
 * policy's enforcement level (Pulumi's own `enforcementLevel`), every policy takes exemptions, each
 * with a reason, and some take settings of their own. The JSON schemas here are what Pulumi checks a
 * config file against before the pack runs. Pure.
 */

/** An exemption: a resource the policy leaves alone, and why (the reason is the review, on record). */
export interface Exemption {
  /** the Pulumi resource name, the container's or service's own name, or the URN; `*` matches any run of characters */
  resource: string;
  reason: string;
}

export const MIN_REASON = 10;

const exemptionSchema = {
  type: "object",
  properties: {
    resource: { type: "string", minLength: 1, description: "the resource's Pulumi name, its container or service name, or its URN; * matches anything" },
    reason: { type: "string", minLength: MIN_REASON, description: "why this resource may break the rule (at least 10 characters)" },
  },
  required: ["resource", "reason"],
  additionalProperties: false,
} as const;

/** `exemptions`, which every policy takes; `extra`: the policy's own settings. */
export function configSchema(extra: Record<string, object> = {}) {
  return {
    properties: {
      exemptions: { type: "array", items: exemptionSchema, description: "resources this policy leaves alone, each with the reason" },
      ...extra,
    },
  };
}

export const reviewedListSchema = { type: "array", items: exemptionSchema } as const;

function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
  return re.test(value);
}

/** The first entry of `list` that names one of `names` (the resource's Pulumi name, its own name, its URN). */
export function findExemption(list: readonly Exemption[] | undefined, names: readonly (string | undefined)[]): Exemption | undefined {
  return (list ?? []).find((e) => e.reason.trim().length >= MIN_REASON && names.some((n) => n !== undefined && globMatch(e.resource, n)));
}

/** The stack's name, from a URN (urn:pulumi:<stack>::<project>::<type>::<name>). */
export function stackOfUrn(urn: string): string {
  return urn.split("::")[0]?.split(":")[2] ?? "";
}

/** Stacks taken for production when the config does not say: prod, production, and those starting prod- or production-. */
export const PRODUCTION_STACKS = /^(prod|production)(-.*)?$/;

/** Whether the stack is production: the config's `production` when given, else its name. */
export function isProduction(cfg: { production?: boolean }, urn: string): boolean {
  return cfg.production ?? PRODUCTION_STACKS.test(stackOfUrn(urn));
}
