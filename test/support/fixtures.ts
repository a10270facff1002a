/** Config fixtures for unit tests: the committed stack files, parsed as Pulumi would see them. */
import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/errors";
import * as path from "node:path";
import { ENVIRONMENT_KEY } from "../../src/config/load";
import { readStackConfig } from "../../src/project/stackFiles";

export const projectDir = path.resolve(__dirname, "../..");

/** A fresh, mutable copy of the raw environment config of a committed stack. */
export function rawEnvironment(stack: "staging" | "prod"): Record<string, any> {
  return structuredClone(readStackConfig(projectDir, stack)[ENVIRONMENT_KEY]) as Record<string, any>;
}

/** The ConfigError `fn` throws (a test fails when it throws something else, or nothing). */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  return assert.fail("expected a ConfigError");
}
