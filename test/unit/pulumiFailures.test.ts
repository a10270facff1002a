/** What a failed Pulumi run says to the operator (src/pulumi/stacks.ts explainFailure): the cause, and what to run. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { explainFailure } from "../../src/pulumi/stacks";

describe("explainFailure", () => {
  it("an object the state has but the engine lost (a pruned network): says so and names fleet up --refresh, not a health failure", () => {
    // what `fleet up staging` printed after `docker network prune` removed the proxy's network
    const pulumi = [
      "CommandError: code: 255",
      " stdout: Updating (staging):",
      "  error:   sdk-v2/provider2.go:572: sdk.helper_schema: Unable to start container: Error response from daemon: network hf-staging-edge-net not found: provider=docker@5.0.0",
      "  error: 1 error occurred:",
      "        * timeout waiting for container to become healthy",
    ].join("\n");
    const e = explainFailure("staging", "up", new Error(pulumi));
    assert.match(e.message, /^staging: up failed: the engine has no network hf-staging-edge-net, which the stack's state still has/);
    assert.match(e.message, /'fleet up staging --refresh' reads what exists first and makes what is missing again/);
    assert.doesNotMatch(e.message, /did not become healthy/);
  });

  it("an unhealthy container is still explained as such", () => {
    const e = explainFailure("staging-acme", "up", new Error("error: container abc is unhealthy: timeout waiting for container to become healthy"));
    assert.match(e.message, /the container did not become healthy in time/);
  });
});
