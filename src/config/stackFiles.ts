/** Reads a stack's committed config file (Pulumi.<stack>.yaml) without Pulumi: for tests, the CLI and benchmarks. */
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { ENVIRONMENT_KEY, parseEnvironmentConfig } from "./load";
import type { EnvironmentConfig } from "./schema";

export function readStackConfig(projectDir: string, stack: string): Record<string, unknown> {
  const file = path.join(projectDir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: stack '${stack}' has no config file`);
  const doc = parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
  return doc?.config ?? {};
}

export function readEnvironmentConfig(projectDir: string, stack: string): EnvironmentConfig {
  return parseEnvironmentConfig(readStackConfig(projectDir, stack)[ENVIRONMENT_KEY]);
}
