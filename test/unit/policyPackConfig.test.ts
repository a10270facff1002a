/**
 * fleet's own deployments under the policy pack: the pack's config for an environment
 * (src/policy/packConfig.ts: every policy's level, settings and exemptions, fleet's and the operator's)
 * and the environment schema's `policy` section (levels, exemptions with reasons; production mandatory).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findExemption, MIN_REASON, type Exemption } from "../../policies/src/config";
import { POLICY_NAMES } from "../../policies/src/rules";
import { ConfigError, type ConfigProblem } from "../../src/config/errors";
import { ENVIRONMENT_KEY, parseEnvironmentConfig } from "../../src/config/load";
import { edgeNames } from "../../src/hardening/names";
import { packConfig, policyLevel, previewsFirst } from "../../src/policy/packConfig";
import { rawEnvironment } from "../support/fixtures";

const SWARM_SERVICE = "pulumi-nodejs:dynamic/hardened-fleet:SwarmService";
const REASON = "a legacy container, replaced by the new plan in March";

const staging = parseEnvironmentConfig(rawEnvironment("staging"));
const prod = parseEnvironmentConfig(rawEnvironment("prod"));
const withPolicy = (stack: "staging" | "prod", policy: unknown, raw: Record<string, unknown> = rawEnvironment(stack)) =>
  parseEnvironmentConfig({ ...raw, policy });
/** A staging environment on a swarm, as other unit tests make one (deployTarget.test.ts). */
const rawSwarm = (): Record<string, unknown> => ({
  ...rawEnvironment("staging"), name: "swarm", target: "swarm", registry: { address: "10.0.0.5:5000" },
  swarm: { nodes: ["n1", "n2", "n3"].map((n) => ({ name: n, host: `unix:///run/test/${n}.sock` })) },
});
const swarm = parseEnvironmentConfig(rawSwarm());

/** The problems of a config refused, as ConfigError lists them. */
function refused(fn: () => unknown): ConfigProblem[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  return assert.fail("expected a ConfigError");
}

/** The one problem at `path` (under the environment key). */
function problemAt(problems: ConfigProblem[], path: string): ConfigProblem {
  const found = problems.filter((p) => p.path === `${ENVIRONMENT_KEY}.${path}`);
  assert.equal(found.length, 1, `one problem at ${path} in ${JSON.stringify(problems)}`);
  return found[0]!;
}

const exemptionsOf = (config: Record<string, Record<string, unknown>>, policy: string) => (config[policy]!.exemptions ?? []) as Exemption[];

describe("packConfig: the pack's config for an environment", () => {
  it("a staging environment: every policy of the pack, each mandatory by default, nothing else", () => {
    assert.deepEqual(staging.policy, { enforcement: "mandatory", exemptions: [] });
    const config = packConfig(staging);
    assert.deepEqual(Object.keys(config).sort(), [...POLICY_NAMES].sort());
    for (const name of POLICY_NAMES) {
      assert.equal(config[name]!.enforcementLevel, "mandatory", name);
      assert.equal(policyLevel(staging, name), "mandatory", name);
    }
  });

  it("image-pinned-by-digest is told staging is not production, and prod that it is", () => {
    assert.equal(packConfig(staging)["image-pinned-by-digest"]!.production, false);
    assert.equal(packConfig(prod)["image-pinned-by-digest"]!.production, true);
    for (const [name, settings] of Object.entries(packConfig(staging))) {
      if (name !== "image-pinned-by-digest") assert.equal("production" in settings, false, name);
    }
  });

  it("restart-bounded's bound is the environment's restart.maxRetries", () => {
    assert.equal(packConfig(staging)["restart-bounded"]!.maxRetries, staging.restart.maxRetries);
    const fewer = parseEnvironmentConfig({ ...rawEnvironment("staging"), restart: { maxRetries: 2 } });
    assert.equal(packConfig(fewer)["restart-bounded"]!.maxRetries, 2);
  });

  it("no-host-ports names the environment's edge proxy container as its one reviewed proxy, with the review", () => {
    for (const env of [staging, prod, swarm]) {
      const proxies = packConfig(env)["no-host-ports"]!.reviewedProxies as Exemption[];
      assert.equal(proxies.length, 1);
      assert.equal(proxies[0]!.resource, edgeNames(env.name, env.edge.name).container);
      assert.ok(proxies[0]!.reason.length >= MIN_REASON);
      // the pack finds it by the container's own name
      assert.ok(findExemption(proxies, ["edge-container", "urn:pulumi:x::hardened-fleet::docker:index/container:Container::edge-container",
        edgeNames(env.name, env.edge.name).container]));
    }
    assert.equal(packConfig(staging)["no-host-ports"]!.reviewedProxies instanceof Array, true);
    assert.equal((packConfig(staging)["no-host-ports"]!.reviewedProxies as Exemption[])[0]!.resource, "hf-staging-edge");
  });

  it("a one-host environment exempts nothing of its own", () => {
    for (const [name, settings] of Object.entries(packConfig(staging))) assert.equal("exemptions" in settings, false, name);
  });

  it("a swarm environment exempts fleet's SwarmServices from no-new-privileges and restart-bounded, saying why, and nothing else", () => {
    const config = packConfig(swarm);
    const exempted = Object.entries(config).filter(([, s]) => "exemptions" in s).map(([name]) => name).sort();
    assert.deepEqual(exempted, ["no-new-privileges", "restart-bounded"]);
    const urn = `urn:pulumi:swarm-acme::hardened-fleet::${SWARM_SERVICE}::acme-service`;
    for (const policy of exempted) {
      const list = exemptionsOf(config, policy);
      assert.equal(list.length, 1);
      assert.ok(list[0]!.reason.length >= MIN_REASON);
      assert.ok(findExemption(list, ["acme-service", urn, "hf-swarm-acme"]), policy);
      // not a docker.Container, nor a docker.Service
      assert.equal(findExemption(list, ["acme", "urn:pulumi:swarm-acme::hardened-fleet::docker:index/container:Container::acme", "hf-swarm-acme"]), undefined);
      assert.equal(findExemption(list, ["acme", "urn:pulumi:swarm-acme::hardened-fleet::docker:index/service:Service::acme", "hf-swarm-acme"]), undefined);
    }
  });

  it("the swarm exemptions match a SwarmService where fleet makes it: a child of SwarmCustomerService", () => {
      // components/swarmCustomerService.ts parents the SwarmService by the customer's component, so its URN is:
      const urn = `urn:pulumi:swarm-acme::hardened-fleet::hardened-fleet:service:SwarmCustomerService$${SWARM_SERVICE}::acme-service`;
      for (const policy of ["no-new-privileges", "restart-bounded"]) {
        assert.ok(findExemption(exemptionsOf(packConfig(swarm), policy), ["acme-service", urn, "hf-swarm-acme"]), policy);
      }
    });

  it("the operator's exemptions land under their policy, after fleet's, as the pack's schema takes them (resource and reason only)", () => {
    const exemptions = [
      { policy: "non-root-user", resource: "legacy-*", reason: REASON },
      { policy: "restart-bounded", resource: "hf-swarm-batch", reason: "a batch job: Swarm restarts it until it is done" },
      { policy: "non-root-user", resource: "urn:pulumi:*::*::old", reason: REASON },
    ];
    const config = packConfig(withPolicy("staging", { exemptions }, rawSwarm()));
    assert.deepEqual(exemptionsOf(config, "non-root-user"), [
      { resource: "legacy-*", reason: REASON },
      { resource: "urn:pulumi:*::*::old", reason: REASON },
    ]);
    const restart = exemptionsOf(config, "restart-bounded");
    assert.equal(restart.length, 2);
    assert.equal(restart[0]!.resource, `*${SWARM_SERVICE}::*`);
    assert.deepEqual(restart[1], { resource: "hf-swarm-batch", reason: "a batch job: Swarm restarts it until it is done" });
    assert.equal(exemptionsOf(config, "healthcheck").length, 0);
    assert.equal("exemptions" in config.healthcheck!, false);
    for (const settings of Object.values(config)) {
      for (const e of (settings.exemptions ?? []) as Record<string, unknown>[]) assert.deepEqual(Object.keys(e).sort(), ["reason", "resource"]);
    }
  });

  it("an exemption's reason is stored trimmed", () => {
    const env = withPolicy("staging", { exemptions: [{ policy: "healthcheck", resource: "x", reason: `   ${REASON}  ` }] });
    assert.deepEqual(exemptionsOf(packConfig(env), "healthcheck"), [{ resource: "x", reason: REASON }]);
  });

  it("production exempts by resource too, and every level stays mandatory", () => {
    const env = withPolicy("prod", { exemptions: [{ policy: "volume-owner-label", resource: "hf-prod-old-data", reason: "made before labels; moved in March" }] });
    const config = packConfig(env);
    assert.deepEqual(exemptionsOf(config, "volume-owner-label"), [{ resource: "hf-prod-old-data", reason: "made before labels; moved in March" }]);
    for (const name of POLICY_NAMES) assert.equal(config[name]!.enforcementLevel, "mandatory");
    assert.equal(previewsFirst(env), true);
    assert.equal(previewsFirst(staging), false);
  });
});

describe("enforcement levels", () => {
  it("enforcement advisory in staging: every policy advisory", () => {
    const env = withPolicy("staging", { enforcement: "advisory" });
    const config = packConfig(env);
    for (const name of POLICY_NAMES) {
      assert.equal(config[name]!.enforcementLevel, "advisory", name);
      assert.equal(policyLevel(env, name), "advisory", name);
    }
  });

  it("a per-policy map changes only the policies it names; the others stay mandatory", () => {
    const env = withPolicy("staging", { enforcement: { "image-pinned-by-digest": "disabled", healthcheck: "advisory" } });
    const config = packConfig(env);
    for (const name of POLICY_NAMES) {
      const expected = name === "image-pinned-by-digest" ? "disabled" : name === "healthcheck" ? "advisory" : "mandatory";
      assert.equal(config[name]!.enforcementLevel, expected, name);
    }
  });

  it("production refuses enforcement advisory, at policy.enforcement, saying it must be mandatory", () => {
    for (const enforcement of ["advisory", "disabled"]) {
      const problem = problemAt(refused(() => withPolicy("prod", { enforcement })), "policy.enforcement");
      assert.match(problem.message, /must be 'mandatory' in production/);
      assert.match(problem.message, /every policy/);
      assert.match(problem.message, /policy\.exemptions/);
    }
  });

  it("production refuses a map lowering one policy, naming it; a map saying mandatory is accepted", () => {
    const problem = problemAt(refused(() => withPolicy("prod", { enforcement: { "log-rotation": "advisory", "non-root-user": "mandatory" } })),
      "policy.enforcement");
    assert.match(problem.message, /must be 'mandatory' in production \(not for log-rotation\)/);
    assert.doesNotMatch(problem.message, /non-root-user/);
    const env = withPolicy("prod", { enforcement: { "log-rotation": "mandatory" } });
    assert.equal(packConfig(env)["log-rotation"]!.enforcementLevel, "mandatory");
  });

  it("policyLevel in production is mandatory whatever the config holds (as the schema requires)", () => {
    const forced = { ...prod, policy: { enforcement: "advisory" as const, exemptions: [] } };
    for (const name of POLICY_NAMES) assert.equal(policyLevel(forced, name), "mandatory");
  });
});

describe("the policy section's schema", () => {
  it("refuses an exemption whose reason is under 10 characters, naming the field and the fix", () => {
    const problems = refused(() => withPolicy("staging", { exemptions: [{ policy: "healthcheck", resource: "x", reason: "too short" }] }));
    assert.match(problemAt(problems, "policy.exemptions[0].reason").message, /must say why .*at least 10 characters/);
    // spaces do not count
    const padded = refused(() => withPolicy("staging", { exemptions: [{ policy: "healthcheck", resource: "x", reason: "   short      " }] }));
    problemAt(padded, "policy.exemptions[0].reason");
  });

  it("refuses an exemption without a reason or without a resource", () => {
    problemAt(refused(() => withPolicy("staging", { exemptions: [{ policy: "healthcheck", resource: "x" }] })), "policy.exemptions[0].reason");
    const problems = refused(() => withPolicy("staging", { exemptions: [{ policy: "healthcheck", resource: "", reason: REASON }] }));
    assert.match(problemAt(problems, "policy.exemptions[0].resource").message, /must name the resource/);
  });

  it("refuses an exemption naming no policy of the pack, listing them", () => {
    const problems = refused(() => withPolicy("staging", { exemptions: [
      { policy: "healthcheck", resource: "x", reason: REASON },
      { policy: "no-root", resource: "x", reason: REASON },
    ] }));
    const problem = problemAt(problems, "policy.exemptions[1].policy");
    assert.match(problem.message, /must be one of the pack's policies/);
    for (const name of POLICY_NAMES) assert.ok(problem.message.includes(name), name);
  });

  it("refuses an unknown level, an unknown policy in the enforcement map and an unknown key", () => {
    const level = refused(() => withPolicy("staging", { enforcement: "warn" }));
    assert.ok(level.some((p) => p.path.startsWith(`${ENVIRONMENT_KEY}.policy.enforcement`)), JSON.stringify(level));
    const name = refused(() => withPolicy("staging", { enforcement: { "no-root": "advisory" } }));
    assert.ok(name.some((p) => p.path.startsWith(`${ENVIRONMENT_KEY}.policy.enforcement`)), JSON.stringify(name));
    const key = refused(() => withPolicy("staging", { enforcment: "advisory" }));
    assert.ok(key.some((p) => p.path.startsWith(`${ENVIRONMENT_KEY}.policy`) && /enforcment/.test(p.message)), JSON.stringify(key));
  });
});
