/** Config validation: pure functions, no Pulumi. Every bad input names its key path, the value and the fix. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { parseCustomerConfig, parseCustomerId, parseEnvironmentConfig, parseRole } from "../../src/config/load";
import { rawEnvironment } from "../support/fixtures";

function problemsOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

describe("environment config", () => {
  it("accepts the committed staging and prod configs", () => {
    const staging = parseEnvironmentConfig(rawEnvironment("staging"));
    const prod = parseEnvironmentConfig(rawEnvironment("prod"));
    assert.equal(staging.image.mode, "build");
    assert.equal(prod.image.mode, "promote");
    assert.equal(staging.volumes.protect, false);
    assert.equal(prod.volumes.protect, true);
  });

  it("prod is stricter than staging: bigger limits, protected volumes, pinned base", () => {
    const staging = parseEnvironmentConfig(rawEnvironment("staging"));
    const prod = parseEnvironmentConfig(rawEnvironment("prod"));
    for (const plan of Object.keys(staging.plans)) {
      assert.ok(prod.plans[plan]!.memoryMb > staging.plans[plan]!.memoryMb, `${plan}: prod memory`);
      assert.ok(prod.plans[plan]!.pids > staging.plans[plan]!.pids, `${plan}: prod pids`);
    }
    assert.match(prod.image.base, /@sha256:[a-f0-9]{64}$/);
  });

  const bad: { name: string; mutate: (raw: Record<string, any>) => void; path: string; message: RegExp }[] = [
    { name: "unpinned base in production", mutate: (r) => { r.image.base = "python:3.11-slim"; },
      path: "hardened-fleet:environment.image.base", message: /pinned by digest in production/ },
    { name: "production that builds", mutate: (r) => { r.image = { mode: "build", name: "a/b", base: r.image.base, builder: "b:1", appSource: "x" }; },
      path: "hardened-fleet:environment.image.mode", message: /never rebuilds/ },
    { name: "unprotected volumes in production", mutate: (r) => { r.volumes.protect = false; },
      path: "hardened-fleet:environment.volumes.protect", message: /must be true in production/ },
    { name: "latest tag", mutate: (r) => { r.tier = "staging"; r.image.base = "python:latest"; },
      path: "hardened-fleet:environment.image.base", message: /latest/ },
    { name: "untagged image", mutate: (r) => { r.tier = "staging"; r.image.base = "python"; },
      path: "hardened-fleet:environment.image.base", message: /tag or a digest/ },
    { name: "memory as a string", mutate: (r) => { r.plans.standard.memoryMb = "512m"; },
      path: "hardened-fleet:environment.plans.standard.memoryMb", message: /number/ },
    { name: "too little memory", mutate: (r) => { r.plans.standard.memoryMb = 8; },
      path: "hardened-fleet:environment.plans.standard.memoryMb", message: /at least 32/ },
    { name: "zero cpus", mutate: (r) => { r.plans.standard.cpus = 0; },
      path: "hardened-fleet:environment.plans.standard.cpus", message: /more than 0/ },
    { name: "missing pids", mutate: (r) => { delete r.plans.standard.pids; },
      path: "hardened-fleet:environment.plans.standard.pids", message: /required/ },
    { name: "inverted port range", mutate: (r) => { r.publish.portRange = { from: 19000, to: 18000 }; },
      path: "hardened-fleet:environment.publish.portRange", message: /from must not be greater/ },
    { name: "public address without a reason", mutate: (r) => { r.publish.address = "0.0.0.0"; },
      path: "hardened-fleet:environment.publish.exposeReason", message: /non-loopback address needs exposeReason/ },
    { name: "capability without a reason", mutate: (r) => { r.capabilities = { add: [{ name: "CHOWN", reason: "" }] }; },
      path: "hardened-fleet:environment.capabilities.add[0].reason", message: /say why/ },
    { name: "dangerous capability", mutate: (r) => { r.capabilities = { add: [{ name: "SYS_ADMIN", reason: "because we can do it" }] }; },
      path: "hardened-fleet:environment.capabilities.add[0].name", message: /never allowed/ },
    { name: "restart retries above 5", mutate: (r) => { r.restart.maxRetries = 10; },
      path: "hardened-fleet:environment.restart.maxRetries", message: /at most 5/ },
    { name: "privileged app port", mutate: (r) => { r.app.port = 80; },
      path: "hardened-fleet:environment.app.port", message: /1024 or more/ },
    { name: "unknown image mode", mutate: (r) => { r.image.mode = "pull"; },
      path: "hardened-fleet:environment.image.mode", message: /'build'.*'promote'/ },
    { name: "relative data path", mutate: (r) => { r.app.dataPath = "data"; },
      path: "hardened-fleet:environment.app.dataPath", message: /absolute path/ },
    { name: "no plans", mutate: (r) => { r.plans = {}; },
      path: "hardened-fleet:environment.plans", message: /at least one plan/ },
    { name: "an unknown key (a typo is never ignored)", mutate: (r) => { r.volumes.protected = true; },
      path: "hardened-fleet:environment.volumes", message: /protected/ },
    { name: "an unknown top-level key", mutate: (r) => { r.replicas = 2; },
      path: "hardened-fleet:environment", message: /replicas/ },
    { name: "restart retries of 0 (Docker reads it as forever)", mutate: (r) => { r.restart.maxRetries = 0; },
      path: "hardened-fleet:environment.restart.maxRetries", message: /at least 1.*forever/ },
    { name: "a registry port taken for a tag", mutate: (r) => { r.tier = "staging"; r.image.base = "registry:5000/python"; },
      path: "hardened-fleet:environment.image.base", message: /':5000' is a port, not a tag/ },
    { name: "an environment name with a dash", mutate: (r) => { r.name = "prod-eu"; },
      path: "hardened-fleet:environment.name", message: /no '-'/ },
    { name: "production marked as the local demo", mutate: (r) => { r.localDemo = true; },
      path: "hardened-fleet:environment.localDemo", message: /must be false in production/ },
  ];

  it("accepts a registry with a port when the image names a tag or a digest", () => {
    const raw = rawEnvironment("staging");
    raw.image.base = "registry:5000/python:3.11";
    raw.image.builder = `registry:5000/python@sha256:${"a".repeat(64)}`;
    assert.equal(parseEnvironmentConfig(raw).image.mode, "build");
  });

  for (const c of bad) {
    it(`rejects ${c.name}, naming ${c.path}`, () => {
      const raw = rawEnvironment("prod");
      c.mutate(raw);
      const err = problemsOf(() => parseEnvironmentConfig(raw));
      const problem = err.problems.find((p) => p.path === c.path);
      assert.ok(problem, `no problem at ${c.path}; got:\n${err.message}`);
      assert.match(problem.message, c.message);
      assert.match(err.message, /nothing was created/);
    });
  }

  it("reports several problems together, with what was found", () => {
    const raw = rawEnvironment("prod");
    raw.image.base = "python:3.11";
    raw.plans.standard.memoryMb = 1;
    raw.restart.maxRetries = 9;
    const err = problemsOf(() => parseEnvironmentConfig(raw));
    assert.ok(err.problems.length >= 3, err.message);
    assert.match(err.message, /3 problems|[3-9] problems/);
    assert.match(err.message, /\(found 1\)/);
    assert.match(err.message, /\(found 9\)/);
  });

  it("a missing config says what is required", () => {
    const err = problemsOf(() => parseEnvironmentConfig(undefined));
    assert.match(err.message, /hardened-fleet:environment/);
  });
});

describe("customer config and ids", () => {
  const env = parseEnvironmentConfig(rawEnvironment("staging"));
  const good = { id: "acme", environment: "staging", plan: "standard", port: 18101 };

  it("accepts a well-formed customer", () => {
    assert.deepEqual(parseCustomerConfig(good, env), good);
  });

  for (const [id, why] of [
    ["Acme", "uppercase"], ["-acme", "leading dash"], ["acme-", "trailing dash"], ["ac_me", "underscore"],
    ["a".repeat(33), "33 characters"], ["", "empty"], ["acme corp", "space"], ["acme.prod", "dot"],
  ] as const) {
    it(`rejects customer id '${id.slice(0, 12)}' (${why})`, () => {
      const err = problemsOf(() => parseCustomerId(id));
      assert.match(err.message, /customer id/);
      assert.match(err.message, /lowercase DNS label|at most 32/);
    });
  }

  it("accepts a 32-character id and single characters", () => {
    assert.equal(parseCustomerId("a".repeat(32)), "a".repeat(32));
    assert.equal(parseCustomerId("7"), "7");
  });

  it("rejects an unknown plan, a port outside the range and a wrong environment, all together", () => {
    const err = problemsOf(() => parseCustomerConfig({ ...good, environment: "prod", plan: "gold", port: 20000 }, env));
    const paths = err.problems.map((p) => p.path).sort();
    assert.deepEqual(paths, ["hardened-fleet:customer.environment", "hardened-fleet:customer.plan", "hardened-fleet:customer.port"]);
    assert.match(err.message, /one of the plans of environment 'staging': starter, standard/);
    assert.match(err.message, /port range 18100-18199/);
  });

  it("rejects a bad id inside customer config with the key path", () => {
    const err = problemsOf(() => parseCustomerConfig({ ...good, id: "ACME!" }, env));
    assert.equal(err.problems[0]!.path, "hardened-fleet:customer.id");
  });

  it("role must be environment or customer", () => {
    assert.equal(parseRole("customer"), "customer");
    assert.match(problemsOf(() => parseRole(undefined)).message, /hardened-fleet:role: is required/);
    assert.match(problemsOf(() => parseRole("web")).message, /must be 'environment' or 'customer'/);
  });
});
