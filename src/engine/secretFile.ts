/**
 * Writes the app's secret key into its secrets volume through the Engine API, as a file owned by
 * 1000:1000 with mode 0400 in a directory of 1000:1000 mode 0500. The container's root filesystem is
 * read-only and a tmpfs starts empty, so the key waits on a volume of its own, mounted read-only.
 *
 * The copy goes through a helper container that is created, never started, and removed: the engine
 * extracts the archive into the volume as root, keeping the archive's owners and modes. The key is in
 * no image layer, no environment and no command line; on the host the volume lies under the engine's
 * data root (/var/lib/docker, root only).
 *
 * Loaded at run time by the SecretFile dynamic provider (components/secretFile.ts) and used by the
 * real-engine tests, so both write the file the same way.
 */
import * as path from "node:path";
import type Dockerode from "dockerode";
import type { SecretFileSpec } from "../hardening/serviceSpec";
import { APP_GID, APP_UID } from "../hardening/names";

const FILE_MODE = 0o400;
const DIR_MODE = 0o500;

/** One ustar header and body, padded to 512 bytes. */
function tarEntry(name: string, body: Buffer, mode: number, type: "0" | "5", mtime: number): Buffer {
  const header = Buffer.alloc(512);
  const octal = (n: number, width: number) => `${n.toString(8).padStart(width - 1, "0")}\0`;
  if (Buffer.byteLength(name) > 100) throw new Error(`secret file name too long for a tar header: ${name}`);
  header.write(name, 0);
  header.write(octal(mode, 8), 100);
  header.write(octal(APP_UID, 8), 108);
  header.write(octal(APP_GID, 8), 116);
  header.write(octal(body.length, 12), 124);
  header.write(octal(mtime, 12), 136);
  header.write("        ", 148);
  header.write(type, 156);
  header.write("ustar\0", 257);
  header.write("00", 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return Buffer.concat([header, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/**
 * An archive of a directory `dir` (1000:1000, 0500) holding `files` (1000:1000, 0400), to be extracted
 * in the directory's parent: the directory is in it too, so a volume's root (its mount point) is
 * 1000:1000 0500, not root's. Pure.
 */
export function secretFilesTar(dir: string, files: { name: string; body: string }[], mtime = Math.floor(Date.now() / 1000)): Buffer {
  const base = path.posix.basename(dir);
  return Buffer.concat([
    tarEntry(`${base}/`, Buffer.alloc(0), DIR_MODE, "5", mtime),
    ...files.map((f) => tarEntry(`${base}/${f.name}`, Buffer.from(f.body, "utf8"), FILE_MODE, "0", mtime)),
    Buffer.alloc(1024),
  ]);
}

/** The archive of the app's key file (secretFilesTar). Pure. */
export function secretFileTar(file: SecretFileSpec, key: string, mtime = Math.floor(Date.now() / 1000)): Buffer {
  return secretFilesTar(file.dir, [{ name: file.fileName, body: key }], mtime);
}

export interface SecretFileWrite {
  /** an image on that engine for the helper container (never started): the app's own */
  image: string;
  /** labels of the volume when it is created here */
  labels?: Record<string, string>;
}

/** Creates the volume if needed and (re)writes the key into it. */
export async function writeSecretFile(engine: Dockerode, file: SecretFileSpec, key: string, opts: SecretFileWrite): Promise<void> {
  if (!key) throw new Error(`the secret key for ${file.volume} is empty`);
  try {
    await engine.getVolume(file.volume).inspect();
  } catch {
    await engine.createVolume({ Name: file.volume, Labels: opts.labels ?? {} });
  }
  const helper = await engine.createContainer({
    name: `${file.volume}-write-${process.pid}-${Date.now().toString(36)}`,
    Image: opts.image,
    // never started; set anyway so that a start by mistake does nothing
    Entrypoint: ["/bin/true"], Cmd: [],
    User: `${APP_UID}:${APP_GID}`,
    Labels: opts.labels ?? {},
    HostConfig: { Mounts: [{ Type: "volume", Source: file.volume, Target: file.dir }], NetworkMode: "none" },
  });
  try {
    await helper.putArchive(secretFileTar(file, key), { path: path.posix.dirname(file.dir) });
  } finally {
    await helper.remove({ force: true }).catch(() => { /* already gone */ });
  }
}

/** Removes the secrets volume; a volume already gone is fine, one still in use is an error. */
export async function removeSecretFile(engine: Dockerode, volume: string): Promise<void> {
  try {
    await engine.getVolume(volume).remove();
  } catch (err) {
    if (/no such volume|not found/i.test(String((err as Error).message))) return;
    throw err;
  }
}
