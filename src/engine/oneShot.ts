/**
 * One-shot containers that work on a customer's data volume with only the capabilities the job
 * needs: archiving it to the host, and making everything in it owned by 1000:1000.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import type Dockerode from "dockerode";
import { APP_GID, APP_UID, LABEL_MANAGED, LABEL_ROLE } from "../hardening/names";

export interface OneShotResult {
  exitCode: number;
  /** what it printed, unless it was streamed to `stdoutTo` */
  stdout: string;
  stderr: string;
}

interface OneShotSpec {
  image: string; volume: string; cmd: string[]; capAdd: string[]; readOnlyVolume: boolean; role: string;
}

/** The one-shot container: root with CapDrop ALL plus `capAdd`, no network, read-only root, the volume at /data. */
function createOneShot(engine: Dockerode, opts: OneShotSpec): Promise<Dockerode.Container> {
  return engine.createContainer({
    Image: opts.image,
    User: "0:0",
    Entrypoint: [],
    Cmd: opts.cmd,
    Labels: { [LABEL_MANAGED]: "false", [LABEL_ROLE]: opts.role },
    Healthcheck: { Test: ["NONE"] },
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      CapDrop: ["ALL"],
      CapAdd: opts.capAdd,
      SecurityOpt: ["no-new-privileges:true"],
      ReadonlyRootfs: true,
      NetworkMode: "none",
      Memory: 256 * 1024 * 1024,
      PidsLimit: 64,
      Mounts: [{ Type: "volume", Source: opts.volume, Target: "/data", ReadOnly: opts.readOnlyVolume }],
    },
  });
}

/** Runs cmd in a one-shot container (see createOneShot) and waits for it. */
export async function runOneShot(engine: Dockerode, opts: OneShotSpec & { stdoutTo?: fs.WriteStream }): Promise<OneShotResult> {
  const container = await createOneShot(engine, opts);
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out = new PassThrough();
    const err = new PassThrough();
    const outChunks: Buffer[] = [];
    const errChunks: Buffer[] = [];
    err.on("data", (c: Buffer) => errChunks.push(c));
    if (opts.stdoutTo) out.pipe(opts.stdoutTo);
    else out.on("data", (c: Buffer) => outChunks.push(c));
    container.modem.demuxStream(stream, out, err);
    const ended = new Promise<void>((resolve) => stream.on("end", () => resolve()));
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    await ended;
    out.end();
    if (opts.stdoutTo) await new Promise<void>((resolve, reject) => opts.stdoutTo!.on("finish", resolve).on("error", reject));
    return { exitCode: StatusCode, stdout: Buffer.concat(outChunks).toString("utf8"), stderr: Buffer.concat(errChunks).toString("utf8") };
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

/** Writes a gzipped tar of the whole volume to `dir`; returns its path. Reads only (DAC_READ_SEARCH). */
export async function archiveVolume(engine: Dockerode, image: string, volume: string, dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  const file = path.join(dir, `${volume}-${stamp}.tar.gz`);
  const r = await runOneShot(engine, {
    image, volume, role: "archive", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"],
    cmd: ["tar", "-C", "/data", "--numeric-owner", "-czf", "-", "."], stdoutTo: fs.createWriteStream(file),
  });
  if (r.exitCode !== 0) {
    fs.rmSync(file, { force: true });
    throw new Error(`archiving volume ${volume} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  }
  return file;
}

/**
 * Puts an archive (archiveVolume's .tar.gz) into the volume, owners and modes as the archive has
 * them: the engine extracts it into a one-shot container that never starts, so nothing runs.
 */
export async function restoreArchive(engine: Dockerode, image: string, volume: string, archive: string): Promise<void> {
  const container = await createOneShot(engine, { image, volume, role: "restore", readOnlyVolume: false, capAdd: [], cmd: ["true"] });
  try {
    await container.putArchive(fs.createReadStream(archive), { path: "/data" });
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

/** Paths in the volume not owned by 1000:1000 (at most `limit`). */
export async function foreignOwned(engine: Dockerode, image: string, volume: string, limit = 20): Promise<string[]> {
  const r = await runOneShot(engine, {
    image, volume, role: "ownership-scan", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"],
    cmd: ["sh", "-c", `find /data \\( ! -user ${APP_UID} -o ! -group ${APP_GID} \\) -print | head -n ${limit}`],
  });
  if (r.exitCode !== 0) throw new Error(`scanning volume ${volume} failed: ${r.stderr.trim()}`);
  return r.stdout.split("\n").filter(Boolean);
}

/** Makes everything in the volume owned by 1000:1000, with CHOWN (and DAC_READ_SEARCH to walk it) only. */
export async function chownVolume(engine: Dockerode, image: string, volume: string): Promise<void> {
  const r = await runOneShot(engine, {
    image, volume, role: "ownership-fix", readOnlyVolume: false, capAdd: ["CHOWN", "DAC_READ_SEARCH"],
    cmd: ["sh", "-c", `find /data \\( ! -user ${APP_UID} -o ! -group ${APP_GID} \\) -exec chown -h ${APP_UID}:${APP_GID} {} +`],
  });
  if (r.exitCode !== 0) throw new Error(`changing owners in volume ${volume} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}
