/**
 * fleet's own deployments under its policy pack (policies/, docs/policy-pack.md): the pack's config for
 * an environment (pure: packConfig), and the arguments every `pulumi up` and `pulumi preview` of its
 * stacks gets (policyArgs), as the Automation API's `policyPacks` and `policyPackConfigs` pass them.
 *
 * Production enforces every policy, and its `up` previews first (no --skip-preview): a change that
 * would weaken a container stops there, before anything is touched. Other tiers take the levels of
 * their config (default: mandatory, checked as each resource is registered).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { POLICY_NAMES } from "../../policies/src/rules";
import type { EnvironmentConfig } from "../config/schema";
import { edgeNames } from "../hardening/names";

/** The policy pack's directory in the project. */
export function packDir(projectDir: string): string {
  return path.join(projectDir, "policies");
}

type Level = "mandatory" | "advisory" | "disabled";
interface Exemption { resource: string; reason: string }

/** Any resource of fleet's SwarmService type, by URN: a child's URN joins its parents' types with `$` before the type. */
const SWARM_SERVICES = "*pulumi-nodejs:dynamic/hardened-fleet:SwarmService::*";

/**
 * What fleet itself exempts, and why: the edge proxy is the reviewed proxy that publishes the
 * environment's ports; on a swarm, what Docker 20.10's service spec cannot carry is set elsewhere.
 */
function fleetExemptions(env: EnvironmentConfig): Record<string, { exemptions?: Exemption[]; reviewedProxies?: Exemption[] }> {
  const out: Record<string, { exemptions?: Exemption[]; reviewedProxies?: Exemption[] }> = {
    "no-host-ports": { reviewedProxies: [{
      resource: edgeNames(env.name, env.edge.name).container,
      reason: "fleet's edge proxy (components/edgeProxy.ts): the environment's one entry, TLS and hostnames for every customer; customers publish nothing",
    }] },
  };
  if (env.target === "swarm") {
    out["no-new-privileges"] = { exemptions: [{ resource: SWARM_SERVICES,
      reason: "Docker 20.10's service spec has no no-new-privileges: fleet's swarm nodes set it daemon-wide (docs/swarm-cluster.md), and fleet audit checks NoNewPrivs 1 in every task" }] };
    out["restart-bounded"] = { exemptions: [{ resource: SWARM_SERVICES,
      reason: "Swarm restarts a failed task after a 5 s delay and rolls a failed update back; a bound would leave the customer down after a node restart, so fleet watch alerts on restarts instead" }] };
  }
  return out;
}

/** The level of `policy` in this environment (production: always mandatory; the schema refuses less). */
export function policyLevel(env: EnvironmentConfig, policy: string): Level {
  if (env.tier === "production") return "mandatory";
  const e = env.policy.enforcement;
  return typeof e === "string" ? e : (e[policy as keyof typeof e] ?? "mandatory");
}

/** The pack's config for the stacks of `env`: every policy's level, settings and exemptions (fleet's, then the operator's). Pure. */
export function packConfig(env: EnvironmentConfig): Record<string, Record<string, unknown>> {
  const own = fleetExemptions(env);
  const out: Record<string, Record<string, unknown>> = {};
  for (const name of POLICY_NAMES) {
    const exemptions = [...(own[name]?.exemptions ?? []),
      ...env.policy.exemptions.filter((e) => e.policy === name).map(({ resource, reason }) => ({ resource, reason }))];
    out[name] = {
      enforcementLevel: policyLevel(env, name),
      ...(exemptions.length > 0 ? { exemptions } : {}),
      ...(own[name]?.reviewedProxies ? { reviewedProxies: own[name].reviewedProxies } : {}),
      ...(name === "image-pinned-by-digest" ? { production: env.tier === "production" } : {}),
      ...(name === "restart-bounded" ? { maxRetries: env.restart.maxRetries } : {}),
    };
  }
  return out;
}

/** Whether a deployment of `env` must preview before it changes anything: production always. */
export function previewsFirst(env: EnvironmentConfig): boolean {
  return env.tier === "production";
}

/**
 * The pulumi arguments that run the pack on a stack of `env`, its config written in `dir` (a
 * directory of the run's own). Fails, naming the fix, when the pack is not built.
 */
export function policyArgs(projectDir: string, env: EnvironmentConfig, dir: string): string[] {
  const pack = packDir(projectDir);
  if (!fs.existsSync(path.join(pack, "dist", "index.js")) || !fs.existsSync(path.join(pack, "node_modules", "@pulumi", "policy"))) {
    throw new Error(`the policy pack in ${pack} is not installed and built: run 'bash scripts/ensure-node-modules.sh' (npm test, npm run demo and scripts/fleet.sh do), or: npm --prefix policies ci && npm --prefix policies run build`);
  }
  const file = path.join(dir, "policy-pack-config.json");
  fs.writeFileSync(file, `${JSON.stringify(packConfig(env), null, 2)}\n`);
  return ["--policy-pack", pack, "--policy-pack-config", file];
}
