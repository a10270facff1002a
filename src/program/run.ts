/** Entry of the Pulumi program: reads the stack's role and runs the environment or customer program. */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE, parseEnvironmentConfig, parseRole } from "../config/load";

/** The directory holding Pulumi.yaml: Pulumi runs the compiled program with dist/ as its working directory. */
export function findProjectDir(from: string): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Pulumi.yaml in ${from} or above`);
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
  const { customerProgram } = await import("./customer");
  return customerProgram(config.getObject<unknown>("customer"));
}
