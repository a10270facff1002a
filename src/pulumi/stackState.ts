/**
 * What the backend knows of the project's stacks (which exist, their outputs, what they run): from
 * the checkpoint files of a file backend (project/backendState.ts) without a Pulumi process, or from
 * `pulumi stack ls` and `pulumi stack output` on any other backend.
 */
import { checkpointFiles, fileBackendDir, projectName, readCheckpoint, type StackState } from "../project/backendState";
import type { FleetContext } from "../project/context";
import type { StackTarget } from "../config/targets";
import { remoteStacks } from "./workspace";

export type { StackState } from "../project/backendState";

/**
 * Every stack of the project with its outputs, read from the file backend's checkpoints; on another
 * backend through the Automation API (one `pulumi stack ls`, then `pulumi stack output` per stack).
 */
export async function readStacks(ctx: FleetContext): Promise<Map<string, StackState>> {
  const dir = fileBackendDir(ctx);
  if (dir) {
    const out = new Map<string, StackState>();
    for (const [name, file] of checkpointFiles(dir, projectName(ctx.projectDir))) {
      const state = readCheckpoint(name, file);
      if (state) out.set(name, state);
    }
    return out;
  }
  return remoteStacks(ctx);
}

/** One stack's state, or undefined when it does not exist. */
export async function readStack(ctx: FleetContext, stack: string): Promise<StackState | undefined> {
  const dir = fileBackendDir(ctx);
  if (dir) {
    const file = checkpointFiles(dir, projectName(ctx.projectDir)).get(stack);
    return file ? readCheckpoint(stack, file) : undefined;
  }
  return (await readStacks(ctx)).get(stack);
}

/** The image ID in a stack's `image` output: an object with `ref` on environment stacks, a string on customer stacks. */
export function outputImage(outputs: Record<string, unknown>): string | undefined {
  const value = outputs.image;
  return typeof value === "string" ? value : (value as { ref?: string } | undefined)?.ref;
}

/** The image ID a stack runs, from its `image` output; undefined when the stack does not exist or has none. */
export async function stackImage(ctx: FleetContext, target: StackTarget): Promise<string | undefined> {
  const state = await readStack(ctx, target.stack);
  return state ? outputImage(state.outputs) : undefined;
}

/** The names of the project's stacks in the backend. */
export async function listStacks(ctx: FleetContext): Promise<string[]> {
  return [...(await readStacks(ctx)).keys()].sort();
}

export async function stackExists(ctx: FleetContext, stackName: string): Promise<boolean> {
  return (await readStack(ctx, stackName)) !== undefined;
}
