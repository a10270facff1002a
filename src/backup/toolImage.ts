/**
 * The backup job's image (restic on the backup base; scripts/setup-engine.sh builds it on the local
 * engine, src/backup/assets/Dockerfile) and how an engine that lacks it gets it: a copy from the
 * local engine (docker save | docker load), since it is in no registry.
 */
import * as os from "node:os";
import * as path from "node:path";
import Dockerode from "dockerode";

/** scripts/restic-versions.env pins the same version (test/backup/backupHost.test.ts checks it) */
export const RESTIC_VERSION = "0.18.1";
export const BACKUP_IMAGE = `hardened-fleet/backup:restic-${RESTIC_VERSION}`;

/** Where scripts/ensure-restic.sh puts restic and rest-server (the host's binaries, for tests). */
export function resticBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.HARDENED_FLEET_CACHE || path.join(os.homedir(), ".cache", "hardened-fleet");
  return path.join(cache, "restic", RESTIC_VERSION, "bin");
}

const SETUP_HINT = "run `npm run setup` (scripts/setup-engine.sh builds it on the local engine)";

/** Two clients of one engine: the same object, unix socket or host and port. */
function sameEngine(a: Dockerode, b: Dockerode): boolean {
  if (a === b) return true;
  const ma = a.modem as { socketPath?: string; host?: string; port?: string | number; protocol?: string };
  const mb = b.modem as typeof ma;
  if (ma.socketPath || mb.socketPath) return !!ma.socketPath && ma.socketPath === mb.socketPath;
  return !!ma.host && ma.host === mb.host && String(ma.port) === String(mb.port) && ma.protocol === mb.protocol;
}

async function hasImage(engine: Dockerode, image: string): Promise<boolean> {
  try {
    await engine.getImage(image).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

/**
 * Makes sure `engine` has `image`: when it lacks it, streams the image from `source` (default: the
 * local engine, DOCKER_HOST or the socket) into it and waits until the load has finished. Rejects
 * with the engine's message when the load fails, and with a hint to run the setup when `source`
 * lacks the image too (or is the same engine).
 */
export async function ensureToolImage(engine: Dockerode, image: string, source: Dockerode = new Dockerode()): Promise<void> {
  if (await hasImage(engine, image)) return;
  if (sameEngine(engine, source) || !(await hasImage(source, image))) {
    throw new Error(`image ${image} is not on the ${sameEngine(engine, source) ? "" : "local "}engine: ${SETUP_HINT}`);
  }
  const tar = await source.getImage(image).get();
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    // the source engine may fail while the tar is being read (it is gone, or the image was removed)
    tar.once("error", (err: Error) => fail(new Error(`copying ${image} from the local engine failed: ${err.message}`)));
    engine.loadImage(tar, { quiet: false }).then((progress) => {
      engine.modem.followProgress(progress, (err: Error | null, output: { error?: string; errorDetail?: { message?: string } }[]) => {
        // an error after the load has started comes as a line of the stream, not as a status code
        const failed = output?.find((o) => o.error || o.errorDetail);
        if (err || failed) fail(new Error(`loading ${image} into the engine failed: ${err?.message ?? failed?.errorDetail?.message ?? failed?.error}`));
        else if (!settled) {
          settled = true;
          resolve();
        }
      });
    }, (err: Error) => fail(new Error(`loading ${image} into the engine failed: ${err.message}`)));
  });
  if (!(await hasImage(engine, image))) throw new Error(`loading ${image} into the engine finished, but the engine does not list it`);
}
