/**
 * Customer data volumes: adopting one left by an old container that ran as root, and stopping the
 * containers of an old deployment that still use it. hardened-fleet's own containers are never
 * stopped here: they write as 1000:1000 only.
 */
import type Dockerode from "dockerode";
import { archiveVolume, chownVolume, foreignOwned } from "../engine/oneShot";
import { LABEL_MANAGED } from "../hardening/names";
import { backupDir, type FleetContext } from "../project/context";
import { stderrLog, type Log } from "../pulumi/progress";

export interface AdoptResult {
  adopted: boolean;
  archive?: string;
  foreign: string[];
}

/**
 * Adopts a data volume left by an old container that ran as root: archives it, then makes
 * everything in it owned by 1000:1000 (one-shot, CHOWN and DAC_READ_SEARCH only). Does nothing
 * when the volume does not exist or everything is already owned by 1000. The one-shot containers run
 * fleet's tools image (copied to a swarm node that lacks it).
 */
export async function adoptVolume(ctx: FleetContext, engine: Dockerode, volume: string, log: Log = stderrLog): Promise<AdoptResult> {
  try {
    await engine.getVolume(volume).inspect();
  } catch {
    return { adopted: false, foreign: [] };
  }
  const foreign = await foreignOwned(engine, volume);
  if (foreign.length === 0) return { adopted: false, foreign };
  log(`volume ${volume} has files not owned by 1000:1000 (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", ..." : ""}): archiving it first`);
  let archive: string;
  try {
    archive = await archiveVolume(engine, volume, backupDir(ctx));
  } catch (err) {
    // owners change only once the archive is known good: without it there is no way back
    throw new Error(`volume ${volume} was left unchanged: archiving it before changing owners failed: ${(err as Error).message}`);
  }
  log(`archived to ${archive} (read back and checked); changing owners to 1000:1000`);
  await chownVolume(engine, volume);
  const left = await foreignOwned(engine, volume);
  if (left.length > 0) throw new Error(`volume ${volume} still has files not owned by 1000:1000 after the fix: ${left.join(", ")}`);
  return { adopted: true, archive, foreign };
}

/** Stops (does not remove) the running containers, other than hardened-fleet's own, that use the volume. */
export async function stopForeignUsers(engine: Dockerode, volume: string, log: Log): Promise<string[]> {
  const users = await engine.listContainers({ filters: { volume: [volume] } });
  const stopped: string[] = [];
  for (const c of users) {
    if (c.Labels?.[LABEL_MANAGED] === "true") continue;
    const name = c.Names[0]?.replace(/^\//, "") ?? c.Id;
    log(`stopping ${name} (an old deployment using ${volume})`);
    await engine.getContainer(c.Id).stop().catch(() => {});
    stopped.push(name);
  }
  return stopped;
}
