/**
 * hardened-fleet's policy pack: the hardening rules (rules.ts) as Pulumi policies, evaluated by
 * `pulumi preview` and `pulumi up` before anything is created, on any program that makes Docker
 * containers (docker.Container, docker.Service) and on fleet's own dynamic resources.
 *
 *   pulumi preview --policy-pack <this directory> [--policy-pack-config <file>]
 *
 * Each policy takes `exemptions` (resource + reason) in the pack's config; docs/policy-pack.md.
 */
import { PolicyPack, type PolicyConfigSchema, type ResourceValidationPolicy, type StackValidationPolicy } from "@pulumi/policy";
import { configSchema as schemaOf, findExemption, isProduction } from "./config";
import { PIDS_RULE, RULES, VOLUME_RULE, volumeOwnerProblems, type ContainerRule, type RuleConfig } from "./rules";
import { PIDS_LIMIT_TYPE, UNKNOWN, VOLUME_TYPE, known, labelsOf, readerOf, type ContainerSettings } from "./settings";

type Props = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** config.ts's JSON schema (plain data, no Pulumi types there), as the SDK types it. */
const configSchema = (extra?: Record<string, object>) => schemaOf(extra) as unknown as PolicyConfigSchema;

/** The names an exemption may give a resource: its Pulumi name, its container's own name, its URN. */
function namesOf(name: string, urn: string, settings?: ContainerSettings): (string | undefined)[] {
  const own = settings?.name;
  return [name, urn, own === UNKNOWN ? undefined : own];
}

function containerPolicy(rule: ContainerRule): ResourceValidationPolicy {
  return {
    name: rule.name,
    description: rule.description,
    remediationSteps: rule.remediation,
    enforcementLevel: rule.enforcementLevel,
    configSchema: configSchema(rule.config),
    validateResource: (args, reportViolation) => {
      const read = readerOf(args.type);
      if (!read) return;
      const cfg = args.getConfig<RuleConfig>();
      const settings = read(args.props as Props);
      const names = namesOf(args.name, args.urn, settings);
      if (findExemption(cfg.exemptions, names)) return;
      if (rule.name === "no-host-ports" && findExemption(cfg.reviewedProxies, names)) return;
      for (const problem of rule.check(settings, cfg, isProduction(cfg, args.urn))) {
        reportViolation(`${settings.kind} ${args.name}: ${problem}. ${rule.remediation}`);
      }
    },
  };
}

/** Whether a PidsLimit resource sets a positive limit on the container of `urn` (its containerId comes from it). */
function limitedBy(resource: { type: string; props: Props; propertyDependencies: Record<string, { urn: string }[]> }, urn: string): boolean {
  if (resource.type !== PIDS_LIMIT_TYPE) return false;
  if (!(resource.propertyDependencies.containerId ?? []).some((d) => d.urn === urn)) return false;
  const limit = known(() => resource.props.pidsLimit as number);
  return limit === UNKNOWN || (typeof limit === "number" && limit > 0);
}

const pidsPolicy: StackValidationPolicy = {
  name: PIDS_RULE.name,
  description: PIDS_RULE.description,
  remediationSteps: PIDS_RULE.remediation,
  enforcementLevel: PIDS_RULE.enforcementLevel,
  configSchema: configSchema(),
  validateStack: (args, reportViolation) => {
    const cfg = args.getConfig<RuleConfig>();
    for (const r of args.resources) {
      const read = readerOf(r.type);
      if (!read) continue;
      const settings = read(r.props as Props);
      if (findExemption(cfg.exemptions, namesOf(r.name, r.urn, settings))) continue;
      let problem: string | undefined;
      if (settings.kind === "docker.Container") {
        if (!args.resources.some((other) => limitedBy(other, r.urn))) problem = "no PIDs limit is set on it (docker.Container has no input for one)";
      } else if (settings.pidsLimit === "unsupported") {
        problem = `${settings.kind} cannot set a PIDs limit (the provider has no input for it)`;
      } else if (settings.pidsLimit !== UNKNOWN && !(typeof settings.pidsLimit === "number" && settings.pidsLimit > 0)) {
        problem = "no PIDs limit";
      }
      if (problem) reportViolation(`${settings.kind} ${r.name}: ${problem}. ${PIDS_RULE.remediation}`, r.urn);
    }
  },
};

const volumePolicy: ResourceValidationPolicy = {
  name: VOLUME_RULE.name,
  description: VOLUME_RULE.description,
  remediationSteps: VOLUME_RULE.remediation,
  enforcementLevel: VOLUME_RULE.enforcementLevel,
  configSchema: configSchema(VOLUME_RULE.config),
  validateResource: (args, reportViolation) => {
    if (args.type !== VOLUME_TYPE) return;
    const cfg = args.getConfig<RuleConfig>();
    const name = known(() => args.props.name as string | undefined);
    if (findExemption(cfg.exemptions, [args.name, args.urn, name === UNKNOWN ? undefined : name])) return;
    const labels = known(() => labelsOf(args.props.labels));
    if (labels === UNKNOWN) return;
    for (const problem of volumeOwnerProblems(labels, cfg)) reportViolation(`docker.Volume ${args.name}: ${problem}. ${VOLUME_RULE.remediation}`);
  },
};

new PolicyPack("hardened-fleet", {
  description: "hardened-fleet's container hardening rules: non-root, capabilities dropped, read-only root, limits, healthcheck, no host access, bounded restarts, rotated logs, images pinned by digest in production, volumes labelled with their owner",
  policies: [...RULES.map(containerPolicy), pidsPolicy, volumePolicy],
});
