/** What fleet's child processes see of its environment: an allowlist (src/pulumi/childEnv.ts). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { childEnv, childEnvOverriding } from "../../src/pulumi/childEnv";

const parent: NodeJS.ProcessEnv = {
  PATH: "/usr/bin", HOME: "/home/op", LANG: "C.UTF-8", LC_ALL: "C", TMPDIR: "/tmp/x",
  PULUMI_CONFIG_PASSPHRASE: "pass", PULUMI_HOME: "/p", HARDENED_FLEET_PULUMI_BIN: "/tc/bin",
  DOCKER_HOST: "unix:///var/run/docker.sock", DOCKER_CERT_PATH: "/certs", SSH_AUTH_SOCK: "/agent", AWS_REGION: "eu-west-1",
  STRIPE_WEBHOOK_SECRET: "whsec_canary", FLEET_JOBS_TOKEN: "token-canary", HF_REGISTRY_PASSWORD: "registry-canary",
  HF_REGISTRY_USERNAME: "bot", GITHUB_TOKEN: "ghp_canary", NODE_OPTIONS: "--require /tmp/evil.js", FLEET_SERVE_TEST_OPERATIONS: "/x.ts",
  UNSET: undefined,
};

describe("child process environments", () => {
  it("pulumi gets its own settings, the toolchain's, Docker's and the basics, and no secret of fleet's", () => {
    const env = childEnv(parent, "pulumi", { PULUMI_SKIP_UPDATE_CHECK: "true", PATH: "/tc/bin:/usr/bin" });
    assert.deepEqual(Object.keys(env).sort(), [
      "AWS_REGION", "DOCKER_CERT_PATH", "DOCKER_HOST", "HARDENED_FLEET_PULUMI_BIN", "HOME", "LANG", "LC_ALL", "PATH",
      "PULUMI_CONFIG_PASSPHRASE", "PULUMI_HOME", "PULUMI_SKIP_UPDATE_CHECK", "SSH_AUTH_SOCK", "TMPDIR",
    ]);
    assert.equal(env.PATH, "/tc/bin:/usr/bin", "what fleet sets wins");
    for (const secret of ["whsec_canary", "token-canary", "registry-canary", "ghp_canary"]) {
      assert.ok(!Object.values(env).includes(secret), secret);
    }
  });

  it("other children (tsc, locate) get the basics only", () => {
    assert.deepEqual(Object.keys(childEnv(parent, "base")).sort(), ["HOME", "LANG", "LC_ALL", "PATH", "TMPDIR"]);
  });

  it("for the Automation API, which adds process.env to what it is given: every other variable is set to undefined", () => {
    const env = childEnvOverriding(parent, "pulumi", { PULUMI_SKIP_UPDATE_CHECK: "true" }) as Record<string, string | undefined>;
    assert.ok(Object.hasOwn(env, "STRIPE_WEBHOOK_SECRET"));
    assert.equal(env.STRIPE_WEBHOOK_SECRET, undefined);
    assert.equal(env.NODE_OPTIONS, undefined);
    assert.equal(env.PULUMI_HOME, "/p");
    // the merge execa does ({ ...process.env, ...env }) keeps no secret
    const merged = { ...parent, ...env };
    const passed = Object.entries(merged).filter(([, v]) => v !== undefined).map(([k]) => k);
    assert.deepEqual(passed.sort(), Object.keys(childEnv(parent, "pulumi", { PULUMI_SKIP_UPDATE_CHECK: "true" })).sort());
  });
});
