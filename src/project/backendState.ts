/**
 * What the backend knows about the project's stacks (which exist, their outputs, when each was last
 * updated, whether an operation was interrupted), read without starting Pulumi where it can be.
 *
 * A file (diy) backend keeps each stack's checkpoint at .pulumi/stacks/<project>/<stack>.json (or
 * .pulumi/stacks/<stack>.json in the older layout, .json.gz when compressed); Pulumi replaces it
 * atomically, so reading it is as good as `pulumi stack ls` plus `pulumi stack output` for every
 * stack, at the cost of a file read instead of a Pulumi process per stack (each of which also
 * derives the passphrase key). Any other backend (Pulumi Cloud, S3, ...) is asked through Pulumi
 * (pulumi/stackState.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import type { FleetContext } from "./context";

/** The Pulumi engine's marker of a secret value in a checkpoint or in `pulumi stack output`. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";

export interface StackState {
  name: string;
  /** the stack's outputs; a secret one reads "[secret]" */
  outputs: Record<string, unknown>;
  /** when its last update finished (ISO time); undefined when it was never deployed */
  lastUpdate?: string;
  /** operations an interrupted run left unfinished; undefined when the backend does not say without an export */
  pendingOperations?: number;
  /** resources protected from deletion; undefined when the backend does not say without an export */
  protectedResources?: number;
}

interface Checkpoint {
  checkpoint?: {
    latest?: {
      manifest?: { time?: string };
      resources?: { type: string; outputs?: Record<string, unknown>; protect?: boolean }[];
      pending_operations?: unknown[];
    };
  };
}

/** A value of a checkpoint with every secret replaced by "[secret]". Pure. */
export function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (SECRET_SIG in record) return "[secret]";
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, maskSecrets(v)]));
  }
  return value;
}

/** The state of a stack from the text of its checkpoint file. Pure. */
export function parseCheckpoint(name: string, json: string): StackState {
  const latest = (JSON.parse(json) as Checkpoint).checkpoint?.latest;
  const root = latest?.resources?.find((r) => r.type === ROOT_STACK_TYPE);
  return {
    name,
    outputs: maskSecrets(root?.outputs ?? {}) as Record<string, unknown>,
    lastUpdate: root ? latest?.manifest?.time : undefined,
    pendingOperations: latest?.pending_operations?.length ?? 0,
    protectedResources: latest?.resources?.filter((r) => r.protect).length ?? 0,
  };
}

/** The directory of a file backend, or undefined for any other backend. */
export function fileBackendDir(ctx: FleetContext): string | undefined {
  return ctx.backendUrl.startsWith("file://") ? ctx.backendUrl.slice("file://".length) : undefined;
}

/** Checkpoint files of the project's stacks, by stack name (project layout first, then the older flat one). */
export function checkpointFiles(backendDir: string, project: string): Map<string, string> {
  const out = new Map<string, string>();
  const root = path.join(backendDir, ".pulumi", "stacks");
  for (const dir of [path.join(root, project), root]) {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const m = /^(.+)\.json(\.gz)?$/.exec(e.name);
      if (e.isFile() && m && !out.has(m[1]!)) out.set(m[1]!, path.join(dir, e.name));
    }
  }
  return out;
}

/** A stack's state from its checkpoint file; undefined when the file went away meanwhile (stack removed). */
export function readCheckpoint(name: string, file: string): StackState | undefined {
  try {
    const raw = fs.readFileSync(file);
    return parseCheckpoint(name, (file.endsWith(".gz") ? zlib.gunzipSync(raw) : raw).toString("utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read the state of stack '${name}' (${file}): ${(err as Error).message}; ` +
      `Pulumi keeps the previous one as ${path.basename(file)}.bak`);
  }
}

/** The project's name from Pulumi.yaml (the directory of its stacks in a file backend). */
export function projectName(projectDir: string): string {
  const text = fs.readFileSync(path.join(projectDir, "Pulumi.yaml"), "utf8");
  const name = /^name:\s*["']?([^"'\s#]+)/m.exec(text)?.[1];
  if (!name) throw new Error(`${path.join(projectDir, "Pulumi.yaml")} has no name`);
  return name;
}
