/**
 * fleet's tools image: what runs fleet's own commands next to a customer, never in it (a customer's
 * runtime may have no shell). It is the backup job's image (src/backup/toolImage.ts: Debian minbase
 * with sh, coreutils, findutils, tar, grep; USER 1000:1000), made by scripts/setup-engine.sh on the
 * local engine and copied to any other engine that lacks it. The audit's probe and the one-shot jobs
 * over customer volumes (archive, manifest, owners, move checks) run it.
 */
import type Dockerode from "dockerode";
import { BACKUP_IMAGE, ensureToolImage } from "../backup/toolImage";

export const TOOLS_IMAGE = BACKUP_IMAGE;

/** Makes sure `engine` has the tools image (a swarm node gets a copy from the local engine). */
export function ensureToolsImage(engine: Dockerode): Promise<void> {
  return ensureToolImage(engine, TOOLS_IMAGE);
}
