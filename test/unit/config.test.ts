/** Config validation: pure functions, no Pulumi. Every bad input names its key path, the value and the fix. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { checkCustomerInEnvironment, parseCustomerConfig, parseCustomerId, parseEnvironmentConfig, parseRole } from "../../src/config/load";
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
    { name: "an environment without an edge proxy", mutate: (r) => { delete r.edge; },
      path: "hardened-fleet:environment.edge", message: /is required/ },
    { name: "the edge on every address (0.0.0.0), even with a reason", mutate: (r) => {
      r.edge.address = "0.0.0.0"; r.edge.exposeReason = "customers reach us from the internet"; },
    path: "hardened-fleet:environment.edge.address", message: /not 0\.0\.0\.0.*all addresses/ },
    { name: "the edge on a non-loopback address without a reason", mutate: (r) => { r.edge.address = "192.0.2.10"; },
      path: "hardened-fleet:environment.edge.exposeReason", message: /required when the proxy is published on a non-loopback address/ },
    { name: "an edge address that is no IPv4 address", mutate: (r) => { r.edge.address = "localhost"; },
      path: "hardened-fleet:environment.edge.address", message: /IPv4 address/ },
    { name: "tls acme without acmeEmail", mutate: (r) => {
      r.edge.tls = "acme"; r.edge.domain = "prod.example.com"; r.edge.httpsPort = 443; r.edge.httpPort = 80; },
    path: "hardened-fleet:environment.edge.acmeEmail", message: /required with tls: acme/ },
    { name: "tls acme for a .localhost domain", mutate: (r) => {
      r.edge.tls = "acme"; r.edge.acmeEmail = "ops@example.com"; r.edge.domain = "prod.localhost"; r.edge.httpsPort = 443; r.edge.httpPort = 80; },
    path: "hardened-fleet:environment.edge.tls", message: /no public CA issues certificates under \.localhost/ },
    { name: "tls acme for a .test domain", mutate: (r) => {
      r.edge.tls = "acme"; r.edge.acmeEmail = "ops@example.com"; r.edge.domain = "prod.test"; r.edge.httpsPort = 443; r.edge.httpPort = 80; },
    path: "hardened-fleet:environment.edge.tls", message: /under \.test/ },
    { name: "tls acme on neither port 80 nor 443", mutate: (r) => {
      r.edge.tls = "acme"; r.edge.acmeEmail = "ops@example.com"; r.edge.domain = "prod.example.com"; r.edge.httpsPort = 8443; r.edge.httpPort = 8080; },
    path: "hardened-fleet:environment.edge.httpsPort", message: /port 80 or 443/ },
    { name: "the same port for HTTP and HTTPS", mutate: (r) => { r.edge.httpPort = r.edge.httpsPort; },
      path: "hardened-fleet:environment.edge.httpPort", message: /must differ from httpsPort/ },
    { name: "an edge port out of range", mutate: (r) => { r.edge.httpsPort = 70000; },
      path: "hardened-fleet:environment.edge.httpsPort", message: /port 1-65535/ },
    { name: "an unknown tls mode", mutate: (r) => { r.edge.tls = "letsencrypt"; },
      path: "hardened-fleet:environment.edge.tls", message: /'internal'.*'acme'/ },
    { name: "an uppercase edge domain", mutate: (r) => { r.edge.domain = "Prod.Example.com"; },
      path: "hardened-fleet:environment.edge.domain", message: /lowercase DNS name/ },
    { name: "an unknown edge key", mutate: (r) => { r.edge.port = 443; },
      path: "hardened-fleet:environment.edge", message: /"port"/ },
    { name: "too little memory for the edge proxy", mutate: (r) => { r.edge.resources = { memoryMb: 8 }; },
      path: "hardened-fleet:environment.edge.resources.memoryMb", message: /at least 32/ },
    { name: "publish, from before the edge proxy", mutate: (r) => { r.publish = { address: "127.0.0.1", portRange: { from: 18100, to: 18199 } }; },
      path: "hardened-fleet:environment.publish", message: /is no longer used: customer containers publish no ports.*edge/ },
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

  it("the edge defaults: name edge, loopback, 443 and 80, a local CA, the edge base image", () => {
    const env = parseEnvironmentConfig({ ...rawEnvironment("staging"), edge: { domain: "qa.localhost" } });
    assert.deepEqual(env.edge, {
      name: "edge", domain: "qa.localhost", address: "127.0.0.1", httpsPort: 443, httpPort: 80, tls: "internal",
      base: "hardened-fleet/edge-base:bookworm", resources: { memoryMb: 128, cpus: 0.5, pids: 256 },
    });
    // the committed environments: staging on 443 and 80, prod beside it on ports of its own
    const staging = parseEnvironmentConfig(rawEnvironment("staging")).edge;
    const prod = parseEnvironmentConfig(rawEnvironment("prod")).edge;
    assert.deepEqual([staging.domain, staging.address, staging.httpsPort, staging.httpPort], ["staging.localhost", "127.0.0.1", 443, 80]);
    assert.deepEqual([prod.domain, prod.address, prod.httpsPort, prod.httpPort], ["prod.localhost", "127.0.0.1", 8443, 8080]);
  });

  it("accepts a public edge with a reason, its own domain and tls acme", () => {
    const raw = rawEnvironment("prod");
    raw.edge = { domain: "prod.example.com", address: "203.0.113.7", exposeReason: "customers reach their service from the internet",
      tls: "acme", acmeEmail: "ops@example.com" };
    const { edge } = parseEnvironmentConfig(raw);
    assert.equal(edge.tls, "acme");
    assert.equal(edge.acmeEmail, "ops@example.com");
    assert.deepEqual([edge.httpsPort, edge.httpPort], [443, 80]);
    // one of 80 and 443 is enough for an ACME CA
    raw.edge.httpPort = 8080;
    assert.equal(parseEnvironmentConfig(raw).edge.httpPort, 8080);
  });

  it("publish is refused with a way forward, not as an unknown key", () => {
    const raw = rawEnvironment("staging");
    raw.publish = { address: "127.0.0.1", portRange: { from: 18100, to: 18199 } };
    const err = problemsOf(() => parseEnvironmentConfig(raw));
    assert.deepEqual(err.problems.map((p) => p.path), ["hardened-fleet:environment.publish"]);
    assert.match(err.message, /https:\/\/<customer>\.<edge\.domain>/);
    assert.match(err.message, /Remove publish and set edge/);
    assert.doesNotMatch(err.message, /Unrecognized key/);
  });

  it("nproc in a plan is refused with the key path, why and the fix (it counts per host UID, shared by every customer)", () => {
    const raw = rawEnvironment("staging");
    raw.plans.starter.nproc = 128;
    raw.plans.standard.nproc = 256;
    const err = problemsOf(() => parseEnvironmentConfig(raw));
    assert.deepEqual(err.problems.map((p) => p.path).sort(),
      ["hardened-fleet:environment.plans.standard.nproc", "hardened-fleet:environment.plans.starter.nproc"]);
    assert.match(err.message, /processes of a UID on the whole host, and every customer runs as UID 1000/);
    assert.match(err.message, /Delete nproc: pids bounds each customer/);
    assert.doesNotMatch(err.message, /Unrecognized key/);
    // the committed environments set none
    for (const stack of ["staging", "prod"] as const) {
      for (const [name, plan] of Object.entries(rawEnvironment(stack).plans as Record<string, object>)) assert.ok(!("nproc" in plan), `${stack} ${name}`);
    }
  });

  it("a missing config says what is required", () => {
    const err = problemsOf(() => parseEnvironmentConfig(undefined));
    assert.match(err.message, /hardened-fleet:environment/);
  });
});

describe("customer config and ids", () => {
  const env = parseEnvironmentConfig(rawEnvironment("staging"));
  const good = { id: "acme", environment: "staging", plan: "standard" };

  it("accepts a well-formed customer", () => {
    assert.deepEqual(parseCustomerConfig(good, env), good);
  });

  it("accepts the port of a stack file from before the edge proxy (ignored), anywhere in range", () => {
    assert.equal(parseCustomerConfig({ ...good, port: 18101 }, env).port, 18101);
    assert.equal(parseCustomerConfig({ ...good, port: 30000 }, env).plan, "standard");
    const err = problemsOf(() => parseCustomerConfig({ ...good, port: 80 }, env));
    assert.equal(err.problems[0]!.path, "hardened-fleet:customer.port");
  });

  it("refuses a customer id equal to the environment's edge.name: they would share Docker names", () => {
    const err = problemsOf(() => checkCustomerInEnvironment({ ...good, id: "edge" }, env));
    assert.deepEqual(err.problems.map((p) => p.path), ["hardened-fleet:customer.id"]);
    assert.match(err.message, /names the edge proxy of environment 'staging' \(edge\.name\)/);
    assert.match(err.message, /\(found "edge"\)/);
    assert.throws(() => parseCustomerConfig({ ...good, id: "edge" }, env), /edge proxy/);
    // the name that is taken is the configured one
    const gateway = parseEnvironmentConfig({ ...rawEnvironment("staging"), edge: { domain: "staging.localhost", name: "gateway" } });
    assert.equal(checkCustomerInEnvironment({ ...good, id: "edge" }, gateway).id, "edge");
    assert.throws(() => checkCustomerInEnvironment({ ...good, id: "gateway" }, gateway), /customer\.id.*edge proxy/s);
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

  it("rejects an unknown plan, a wrong environment and the edge's id, all together", () => {
    const err = problemsOf(() => parseCustomerConfig({ ...good, id: "edge", environment: "prod", plan: "gold" }, env));
    const paths = err.problems.map((p) => p.path).sort();
    assert.deepEqual(paths, ["hardened-fleet:customer.environment", "hardened-fleet:customer.id", "hardened-fleet:customer.plan"]);
    assert.match(err.message, /one of the plans of environment 'staging': starter, standard, sandboxed/);
  });

  for (const plan of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
    it(`a plan named '${plan}' (a key of every object, not of the plans) is an unknown plan`, () => {
      const err = problemsOf(() => checkCustomerInEnvironment({ ...good, plan }, env));
      assert.deepEqual(err.problems.map((p) => p.path), ["hardened-fleet:customer.plan"]);
      assert.match(err.message, /must be one of the plans of environment 'staging': starter, standard, sandboxed/);
      assert.throws(() => parseCustomerConfig({ ...good, plan }, env), /customer\.plan/);
    });
  }

  it("plans are an own-key map: a configured plan named 'constructor' is found, and only it", () => {
    const raw = rawEnvironment("staging");
    raw.plans = { constructor: raw.plans.starter };
    const own = parseEnvironmentConfig(raw);
    assert.deepEqual(Object.keys(own.plans), ["constructor"]);
    assert.equal(checkCustomerInEnvironment({ ...good, plan: "constructor" }, own).plan, "constructor");
    assert.throws(() => checkCustomerInEnvironment({ ...good, plan: "toString" }, own), /customer\.plan.*constructor/s);
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
