/** The pure ServiceSpec and its two mappings (Pulumi inputs, Engine API options) agree. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEnvironmentConfig } from "../../src/config/load";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { REPLACE_ON_CHANGES, toContainerArgs } from "../../components/containerArgs";
import { customerNames, customerStackName } from "../../src/hardening/names";
import { serviceSpec, serviceUrl, tmpfsOptions } from "../../src/hardening/serviceSpec";
import { rawEnvironment } from "../support/fixtures";

const env = parseEnvironmentConfig(rawEnvironment("staging"));
const spec = serviceSpec(env, { id: "acme", environment: "staging", plan: "standard", port: 18101 }, "sha256:" + "a".repeat(64));

describe("service spec", () => {
  it("names every Docker object after environment and customer", () => {
    assert.deepEqual(customerNames("staging", "acme"), {
      container: "hf-staging-acme", network: "hf-staging-acme-net", dataVolume: "hf-staging-acme-data", hostname: "acme" });
    assert.equal(customerStackName("prod", "acme"), "prod-acme");
  });

  it("tmpfs is noexec, nosuid, nodev and sized; non-/tmp scratch is owned by 1000", () => {
    assert.equal(tmpfsOptions("/tmp", 64), "rw,noexec,nosuid,nodev,size=64m,mode=1777");
    assert.equal(tmpfsOptions("/run/app", 8), "rw,noexec,nosuid,nodev,size=8m,uid=1000,gid=1000,mode=0700");
  });

  it("publishes on the configured loopback address", () => {
    assert.equal(serviceUrl(spec), "http://127.0.0.1:18101");
  });

  it("an unknown plan is an error, not a default", () => {
    assert.throws(() => serviceSpec(env, { id: "a", environment: "staging", plan: "gold", port: 18101 }, "x:1"), /plan 'gold'/);
  });

  it("Pulumi inputs and Engine API options carry the same settings", () => {
    const p = toContainerArgs(spec);
    const e = toEngineCreateOptions(spec, {});
    const hc = e.HostConfig!;
    assert.equal(p.user, e.User);
    assert.deepEqual((p.capabilities as { drops: string[] }).drops, hc.CapDrop);
    assert.deepEqual(p.securityOpts, hc.SecurityOpt);
    assert.equal(p.readOnly, hc.ReadonlyRootfs);
    assert.deepEqual(p.tmpfs, hc.Tmpfs);
    assert.equal((p.memory as number) * 1024 * 1024, hc.Memory);
    assert.equal((p.memorySwap as number) * 1024 * 1024, hc.MemorySwap);
    assert.equal(Number(p.cpus) * 1e9, hc.NanoCpus);
    assert.equal(spec.pidsLimit, hc.PidsLimit);
    assert.equal(p.maxRetryCount, hc.RestartPolicy?.MaximumRetryCount);
    assert.deepEqual((p.healthcheck as { tests: string[] }).tests, e.Healthcheck?.Test);
    assert.deepEqual(p.logOpts, hc.LogConfig?.Config);
    assert.deepEqual(p.envs, e.Env);
    assert.equal(p.networkMode, hc.NetworkMode);
  });

  it("healthcheck and tmpfs changes replace the container instead of being dropped", () => {
    for (const key of ["healthcheck", "tmpfs"]) assert.ok(REPLACE_ON_CHANGES.includes(key), key);
  });
});
