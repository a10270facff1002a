/** The project fleet works on: its directory (stack files, locks, backups) and its Pulumi backend. */
import * as fs from "node:fs";
import * as path from "node:path";

export interface FleetContext {
  projectDir: string;
  /** Pulumi backend; default file://<projectDir>/.fleet/state */
  backendUrl: string;
}

export function fleetContext(projectDir: string, backendUrl = process.env.PULUMI_BACKEND_URL): FleetContext {
  const dir = path.resolve(projectDir);
  const backend = backendUrl ?? `file://${path.join(dir, ".fleet", "state")}`;
  if (backend.startsWith("file://")) fs.mkdirSync(backend.slice("file://".length), { recursive: true });
  return { projectDir: dir, backendUrl: backend };
}

/** Where final and pre-change archives of customer data go: a 0700 directory of 0600 files (archiveVolume). */
export function backupDir(ctx: FleetContext): string {
  return process.env.FLEET_BACKUP_DIR ?? path.join(ctx.projectDir, ".fleet", "backups");
}
