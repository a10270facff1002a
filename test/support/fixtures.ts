/** Config fixtures for unit tests: the committed stack files, parsed as Pulumi would see them. */
import * as path from "node:path";
import { ENVIRONMENT_KEY } from "../../src/config/load";
import { readStackConfig } from "../../src/project/stackFiles";

export const projectDir = path.resolve(__dirname, "../..");

/** A fresh, mutable copy of the raw environment config of a committed stack. */
export function rawEnvironment(stack: "staging" | "prod"): Record<string, any> {
  return structuredClone(readStackConfig(projectDir, stack)[ENVIRONMENT_KEY]) as Record<string, any>;
}
