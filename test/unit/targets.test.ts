/** Names are parsed once, at the boundary: every bad one is refused before a path, lock or stack exists. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { parseCustomerTarget, parseEnvironmentName, parseStackTarget } from "../../src/config/targets";
import { customerNames } from "../../src/hardening/names";
import { customersLock, ROLLOUT_LOCK, stackLock } from "../../src/project/lock";

describe("targets", () => {
  it("parses environments, customers and stack names", () => {
    assert.deepEqual(parseEnvironmentName("prod"), { kind: "environment", environment: "prod", stack: "prod" });
    assert.deepEqual(parseCustomerTarget("eu-acme", "prod"), { kind: "customer", environment: "prod", customer: "eu-acme", stack: "prod-eu-acme" });
    assert.deepEqual(parseStackTarget("prod-eu-acme"), { kind: "customer", environment: "prod", customer: "eu-acme", stack: "prod-eu-acme" });
    assert.deepEqual(parseStackTarget("staging"), { kind: "environment", environment: "staging", stack: "staging" });
  });

  for (const env of ["../../../tmp/victim", "..", "prod/eu", "prod-eu", "Prod", "", "a".repeat(17), "1prod", "prod eu", "prod\n"]) {
    it(`refuses environment ${JSON.stringify(env).slice(0, 24)} naming --env and the rule`, () => {
      assert.throws(() => parseCustomerTarget("acme", env), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /--env: must be 1 to 16 lowercase letters and digits/);
        assert.match(err.message, /nothing was created/);
        return true;
      });
    });
  }

  for (const stack of ["../x", "staging-", "-acme", "staging-Acme", "staging/acme", "prod-eu-", "staging--x"]) {
    it(`refuses stack name ${JSON.stringify(stack)}`, () => {
      assert.throws(() => parseStackTarget(stack), /stack: must be an environment .* or <environment>-<customer>/);
    });
  }

  it("reports a bad customer and a bad environment together", () => {
    assert.throws(() => parseCustomerTarget("ACME", "../x"), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.problems.map((p) => p.path), ["customer id", "--env"]);
      return true;
    });
  });

  it("no two (environment, customer) pairs share a stack or Docker name", () => {
    // prod + eu-acme and (what would be) prod-eu + acme: the second is not a valid environment
    assert.equal(parseCustomerTarget("eu-acme", "prod").stack, "prod-eu-acme");
    assert.throws(() => parseCustomerTarget("acme", "prod-eu"), /no '-'/);
    // stack names split one way, so the Docker names built from them are distinct too
    const seen = new Map<string, string>();
    for (const env of ["prod", "prod2", "staging"]) {
      for (const id of ["acme", "eu-acme", "2-acme", "a"]) {
        const key = `${env}/${id}`;
        for (const name of [parseCustomerTarget(id, env).stack, customerNames(env, id).container]) {
          assert.ok(!seen.has(name) || seen.get(name) === key, `${name} from ${key} and ${seen.get(name)}`);
          seen.set(name, key);
        }
      }
    }
  });

  it("locks of different kinds never share a name (customer 'customers' is not the customers lock)", () => {
    const stack = parseCustomerTarget("customers", "staging").stack;
    assert.notEqual(stackLock(stack), customersLock("staging"));
    assert.notEqual(stackLock("staging"), customersLock("staging"));
    assert.notEqual(stackLock("rollout"), ROLLOUT_LOCK);
  });
});
