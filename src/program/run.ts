/** Entry of the Pulumi program: reads the stack's role and runs the environment or customer program. */
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE, parseEnvironmentConfig, parseRole } from "../config/load";
import { customerProgram } from "./customer";
import { environmentProgram } from "./environment";

export async function runStack(projectDir = process.cwd()): Promise<Record<string, unknown>> {
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  const role = parseRole(config.get("role"));
  if (role === "environment") {
    return environmentProgram(parseEnvironmentConfig(config.getObject<unknown>("environment")), projectDir);
  }
  return customerProgram(config.getObject<unknown>("customer"));
}
