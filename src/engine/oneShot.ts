/**
 * One-shot containers that work on a customer's data volume with only the capabilities the job
 * needs: archiving it to the host (0600 files in a 0700 directory, checked against the volume before
 * anyone relies on them), and making everything in it owned by 1000:1000. They run fleet's tools
 * image (src/engine/toolsImage.ts: sh, find, tar), never the customer's, which may have no shell.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PassThrough, type Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type Dockerode from "dockerode";
import { ensurePrivateDirectory, fsyncDirectory } from "../config/durableWrite";
import { APP_GID, APP_UID, LABEL_MANAGED, LABEL_ROLE } from "../hardening/names";
import { archiveManifest, archiveRoot, manifestDifferences, parseVolumeManifest, VOLUME_MANIFEST_SCRIPT, type Manifest } from "./archiveManifest";
import { ensureToolsImage, TOOLS_IMAGE } from "./toolsImage";
import { DEFAULT_RUNTIME } from "../hardening/sandbox";

export interface OneShotResult {
  exitCode: number;
  /** what it printed, unless it was streamed to `stdoutTo` */
  stdout: string;
  stderr: string;
}

interface OneShotSpec {
  volume: string; cmd: string[]; capAdd: string[]; readOnlyVolume: boolean; role: string;
}

/**
 * The one-shot container of the tools image (ensured on `engine` first: a swarm node gets a copy):
 * root with CapDrop ALL plus `capAdd`, no network, read-only root, the volume at /data.
 */
async function createOneShot(engine: Dockerode, opts: OneShotSpec): Promise<Dockerode.Container> {
  await ensureToolsImage(engine);
  return engine.createContainer({
    Image: TOOLS_IMAGE,
    User: "0:0",
    Entrypoint: [],
    Cmd: opts.cmd,
    Labels: { [LABEL_MANAGED]: "false", [LABEL_ROLE]: opts.role },
    Healthcheck: { Test: ["NONE"] },
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      // fleet's own tool: runc, named, also on a swarm sandbox node (whose default is runsc)
      Runtime: DEFAULT_RUNTIME,
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

/**
 * Runs cmd in a one-shot container (see createOneShot) and waits for it. With `stdoutTo`, its output
 * goes there; an error of that stream (EACCES, ENOSPC, ...) stops the container and is thrown, never
 * left unhandled.
 */
export async function runOneShot(engine: Dockerode, opts: OneShotSpec & { stdoutTo?: Writable }): Promise<OneShotResult> {
  const container = await createOneShot(engine, opts);
  try {
    return await runToEnd(container, { stdoutTo: opts.stdoutTo });
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

export interface RunToEndOptions {
  /** where its output goes (else it is collected); an error of this stream kills the container and is thrown */
  stdoutTo?: Writable;
  /** past this, the container is killed and that is an error naming `what` and its last messages */
  timeoutSeconds?: number;
  what?: string;
}

/**
 * Starts a created container (made with AttachStdout/AttachStderr), collects or streams its output
 * and waits for its end. The caller removes it.
 */
export async function runToEnd(container: Dockerode.Container, opts: RunToEndOptions = {}): Promise<OneShotResult> {
  const stream = await container.attach({ stream: true, stdout: true, stderr: true });
  const out = new PassThrough();
  const err = new PassThrough();
  const outChunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  err.on("data", (c: Buffer) => errChunks.push(c));
  let sinkError: Error | undefined;
  const sink = opts.stdoutTo;
  if (sink) {
    // listened to before anything is written: a failing disk must end this run, not the process
    sink.on("error", (e: Error) => {
      if (sinkError) return;
      sinkError = e;
      out.unpipe(sink);
      out.resume(); // the rest is dropped, so the container is never blocked on a full pipe
      container.kill().catch(() => {});
    });
    out.pipe(sink);
  } else {
    out.on("data", (c: Buffer) => outChunks.push(c));
  }
  container.modem.demuxStream(stream, out, err);
  const ended = streamEnd(stream);
  await container.start();
  let timedOut = false;
  const timer = opts.timeoutSeconds === undefined ? undefined
    : setTimeout(() => { timedOut = true; container.kill().catch(() => {}); }, opts.timeoutSeconds * 1000);
  try {
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    await ended;
    out.end();
    if (sink && !sinkError) await finished(sink).catch((e: Error) => { sinkError ??= e; });
    if (sinkError) throw sinkError;
    const result = { exitCode: StatusCode, stdout: Buffer.concat(outChunks).toString("utf8"), stderr: Buffer.concat(errChunks).toString("utf8") };
    if (timedOut) {
      throw new Error(`${opts.what ?? "the job"} did not finish within ${opts.timeoutSeconds}s and was stopped; last output: ${lastLines(result.stderr)}`);
    }
    return result;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** When an attached container's output stream ends (or closes): the container's process has ended. */
export function streamEnd(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    stream.on("end", () => resolve());
    stream.on("close", () => resolve());
    stream.on("error", reject);
  });
}

/** The last lines a job printed, for an error. Pure. */
export function lastLines(text: string, n = 3): string {
  return text.trim().split("\n").filter(Boolean).slice(-n).join(" | ") || "(no output)";
}

/** An archive that could not be written or does not match its volume; `archive` says where it is (or was). */
export class ArchiveError extends Error {
  constructor(message: string, readonly archive: string, readonly kept: boolean) {
    super(message);
    this.name = "ArchiveError";
  }
}

const ioReason = (err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message.replace(new RegExp(`^${e.code}: `), "")}` : String((err as Error).message ?? err);
};

/** Every regular file of the volume with its size and sha256, computed inside it (read only, DAC_READ_SEARCH). */
export async function volumeManifest(engine: Dockerode, volume: string): Promise<Manifest> {
  const r = await runOneShot(engine, {
    volume, role: "archive-check", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"], cmd: ["sh", "-c", VOLUME_MANIFEST_SCRIPT],
  });
  if (r.exitCode !== 0) throw new Error(`listing the files of volume ${volume} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return parseVolumeManifest(r.stdout);
}

/**
 * Writes a gzipped tar of the whole volume to `dir` (made 0700) as a 0600 file, fsyncs it and the
 * directory, then reads it back from the disk and checks it holds every file of the volume with the
 * same size and sha256 (listed inside the volume). Returns its path only when all of that held; any
 * failure is an ArchiveError: a partial archive is removed, a complete one that does not match is
 * kept for inspection. Reads only (DAC_READ_SEARCH). The volume must not change meanwhile.
 */
export async function archiveVolume(engine: Dockerode, volume: string, dir: string, label?: string): Promise<string> {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  // the node's name, when the same volume is archived on several nodes; never an existing file
  const base = `${volume}${label ? `-${label}` : ""}-${stamp}`;
  let file = path.join(dir, `${base}.tar.gz`);
  const failed = (what: string, err: unknown): ArchiveError => {
    fs.rmSync(file, { force: true });
    return new ArchiveError(`${what} ${file} failed (${ioReason(err)}); the partial archive was removed`, file, false);
  };
  try {
    ensurePrivateDirectory(dir);
  } catch (err) {
    throw new ArchiveError(`the backup directory ${dir} cannot hold archives: ${(err as Error).message}`, file, false);
  }
  let fd: number | undefined;
  for (let n = 2; fd === undefined; n++) {
    try {
      fd = fs.openSync(file, "wx", 0o600);
    } catch (err) {
      // another archive of this volume in the same second: the next free name (the other file is left alone)
      if ((err as NodeJS.ErrnoException).code === "EEXIST" && n < 100) { file = path.join(dir, `${base}-${n}.tar.gz`); continue; }
      throw new ArchiveError(`creating the archive ${file} failed (${ioReason(err)})`, file, false);
    }
  }
  try {
    fs.fchmodSync(fd, 0o600); // whatever the umask
  } catch (err) {
    fs.closeSync(fd);
    throw failed("creating the archive", err);
  }
  let r: OneShotResult;
  try {
    const sink = fs.createWriteStream("", { fd, autoClose: false });
    let writeError: unknown;
    sink.on("error", (err) => { writeError ??= err; });
    try {
      r = await runOneShot(engine, {
        volume, role: "archive", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"],
        cmd: ["tar", "-C", "/data", "--numeric-owner", "-czf", "-", "."], stdoutTo: sink,
      });
    } catch (err) {
      throw writeError ? failed("writing the archive", writeError) : failed(`archiving volume ${volume} to`, err);
    }
    if (r.exitCode !== 0) {
      fs.rmSync(file, { force: true });
      throw new ArchiveError(`archiving volume ${volume} failed (exit ${r.exitCode}): ${r.stderr.trim()}`, file, false);
    }
    try {
      fs.fsyncSync(fd);
    } catch (err) {
      throw failed("writing the archive", err);
    }
  } finally {
    try { fs.closeSync(fd); } catch { /* closed */ }
  }
  try {
    fsyncDirectory(dir);
  } catch (err) {
    throw failed("recording the archive in its directory", err);
  }
  // read back from the disk, not from what was sent: what a restore would get
  let archived: Manifest;
  try {
    archived = await archiveManifest(file);
  } catch (err) {
    throw new ArchiveError(`the archive ${file} cannot be read back: ${(err as Error).message}`, file, true);
  }
  let inVolume: Manifest;
  try {
    inVolume = await volumeManifest(engine, volume);
  } catch (err) {
    throw new ArchiveError(`the archive ${file} could not be checked against the volume: ${(err as Error).message}`, file, true);
  }
  const differences = manifestDifferences(inVolume, archived);
  if (differences.length > 0) {
    throw new ArchiveError(`the archive ${file} does not match volume ${volume}: ${differences.join("; ")}`, file, true);
  }
  return file;
}

/**
 * Puts an archive (archiveVolume's .tar.gz) into the volume, owners and modes as the archive has
 * them: the engine extracts it into a one-shot container that never starts, so nothing runs.
 */
export async function restoreArchive(engine: Dockerode, volume: string, archive: string): Promise<void> {
  const container = await createOneShot(engine, { volume, role: "restore", readOnlyVolume: false, capAdd: [], cmd: ["true"] });
  try {
    const source = fs.createReadStream(archive);
    // a read error (EACCES, EIO) fails the restore instead of going unhandled
    const unreadable = new Promise<never>((_, reject) => source.once("error", (err) => reject(new Error(`reading the archive ${archive} failed: ${ioReason(err)}`))));
    await Promise.race([container.putArchive(source, { path: "/data" }), unreadable]);
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
  // the engine leaves the top directory as the new volume had it (root, 0755): it gets the archived one's
  const root = await archiveRoot(archive);
  if (root) {
    const r = await runOneShot(engine, {
      volume, role: "restore", readOnlyVolume: false, capAdd: ["CHOWN", "FOWNER"],
      cmd: ["sh", "-c", `chown ${root.uid}:${root.gid} /data && chmod ${root.mode.toString(8)} /data`],
    });
    if (r.exitCode !== 0) throw new Error(`restoring the owner and mode of volume ${volume}'s top directory failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  }
}

/** Paths in the volume not owned by 1000:1000 (at most `limit`). */
export async function foreignOwned(engine: Dockerode, volume: string, limit = 20): Promise<string[]> {
  const r = await runOneShot(engine, {
    volume, role: "ownership-scan", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"],
    cmd: ["sh", "-c", `find /data \\( ! -user ${APP_UID} -o ! -group ${APP_GID} \\) -print | head -n ${limit}`],
  });
  if (r.exitCode !== 0) throw new Error(`scanning volume ${volume} failed: ${r.stderr.trim()}`);
  return r.stdout.split("\n").filter(Boolean);
}

/** Makes everything in the volume owned by 1000:1000, with CHOWN (and DAC_READ_SEARCH to walk it) only. */
export async function chownVolume(engine: Dockerode, volume: string): Promise<void> {
  const r = await runOneShot(engine, {
    volume, role: "ownership-fix", readOnlyVolume: false, capAdd: ["CHOWN", "DAC_READ_SEARCH"],
    cmd: ["sh", "-c", `find /data \\( ! -user ${APP_UID} -o ! -group ${APP_GID} \\) -exec chown -h ${APP_UID}:${APP_GID} {} +`],
  });
  if (r.exitCode !== 0) throw new Error(`changing owners in volume ${volume} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}
