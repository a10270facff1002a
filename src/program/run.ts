/** Entry of the Pulumi program: reads the stack's role and runs the environment or customer program. */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE, parseCustomerShape, parseEnvironmentConfig, parseRole } from "../config/load";
import type { EnvironmentConfig } from "../config/schema";
import { readEnvironmentConfig } from "../project/stackFiles";
import { readEnvironment } from "./environmentView";

/** The directory holding Pulumi.yaml: Pulumi runs the compiled program with dist/ as its working directory. */
export function findProjectDir(from: string): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Pulumi.yaml in ${from} or above`);
  }
}

/**
 * The environment's config as this project's stack file has it, for an early check of a customer;
 * undefined when there is no such file or it does not parse (the published settings decide then).
 */
function localEnvironment(projectDir: string, environment: string): EnvironmentConfig | undefined {
  try {
    return readEnvironmentConfig(projectDir, environment);
  } catch {
    return undefined;
  }
}

export async function runStack(projectDir = findProjectDir(process.cwd())): Promise<Record<string, unknown>> {
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  const role = parseRole(config.get("role"));
  if (role === "environment") {
    // each role loads only its own modules: a customer stack never needs the image build's
    const { environmentProgram } = await import("./environment");
    return environmentProgram(parseEnvironmentConfig(config.getObject<unknown>("environment")), projectDir);
  }
  const raw = config.getObject<unknown>("customer");
  const shape = parseCustomerShape(raw); // a bad customer config fails here, before anything is read
  // the environment's settings are read by the engine while this process loads the customer program
  const view = readEnvironment(shape.environment);
  view.catch(() => {}); // handled where it is awaited, in customerProgram
  const { customerProgram } = await import("./customer");
  return customerProgram(raw, () => view, localEnvironment(projectDir, shape.environment));
}
