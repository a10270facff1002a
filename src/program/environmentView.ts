/**
 * What a customer stack reads from its environment stack (settings and image) through a
 * StackReference. Its own module, light to load, so the program can start the read before it
 * loads the customer program's heavier modules (run.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import { stackReferenceName } from "./stackRef";

export interface EnvironmentView {
  settings: unknown;
  image: { ref?: string; version?: string } | undefined;
  /** the registry account every node pulls with (a secret output of the environment stack), if it has one */
  registryAuth?: { username: string; password: string; serveraddress: string };
  /** the environment's log collectors (components/logCollector.ts): PublishedLogs of src/targets/customerProgram.ts */
  logs?: { container: string; address?: string; nodes?: Record<string, string> };
}

/** Reads what the environment stack published; says what to run first when it has nothing yet. */
export async function readEnvironment(envStack: string): Promise<EnvironmentView> {
  const ref = new pulumi.StackReference(stackReferenceName(envStack));
  const settings = (await ref.getOutputDetails("settings")).value;
  if (settings === undefined) {
    throw new Error(`environment stack '${envStack}' does not exist or has not been deployed: run 'pulumi up' on stack '${envStack}' (or 'fleet rollout') first`);
  }
  const image = (await ref.getOutputDetails("image")).value as EnvironmentView["image"];
  const auth = await ref.getOutputDetails("registryAuth");
  const registryAuth = (auth.secretValue ?? auth.value) as EnvironmentView["registryAuth"];
  const logs = (await ref.getOutputDetails("logs")).value as EnvironmentView["logs"];
  return { settings, image, registryAuth, logs };
}
