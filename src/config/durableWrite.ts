/**
 * Durable file writes: a reader (or a crash, or a power cut) sees the old content or the new, never
 * half of it and never an empty file. The one way this project replaces a file it keeps (stack files,
 * environment files): write a temp file beside it, fsync it, rename it over, fsync the directory.
 * No Pulumi and no fleet imports: src/config and everything above may use it.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** fsync of a directory: makes a rename, create or unlink in it durable. */
export function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replaces `file` with `data`: temp file in the same directory (same file system, so the rename is
 * atomic), written and fsynced, renamed into place, then the directory fsynced so the rename survives a
 * power cut. The new file gets `mode` (default: the old file's mode, else 0644), whatever the umask.
 */
export function writeFileDurable(file: string, data: string | Uint8Array, opts: { mode?: number } = {}): void {
  const dir = path.dirname(path.resolve(file));
  let mode = opts.mode;
  if (mode === undefined) {
    try {
      mode = fs.statSync(file).mode & 0o7777;
    } catch {
      mode = 0o644;
    }
  }
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  const fd = fs.openSync(tmp, "w", mode);
  try {
    try {
      fs.fchmodSync(fd, mode);
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      for (let off = 0; off < bytes.length;) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDirectory(dir);
}

/**
 * Makes `dir` (and missing parents) a directory only its owner can enter: created 0700 whatever the
 * umask; an existing one with a looser mode is tightened to 0700 (returns the old mode then). Refused,
 * with the fix, when it is not a directory or belongs to another user (who could read what is put there).
 */
export function ensurePrivateDirectory(dir: string): { tightenedFrom?: number } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory: remove it, or point the setting at a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new Error(`${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}): whoever owns it could read what is written there; ` +
      `run 'chown ${uid} ${dir} && chmod 700 ${dir}', or use another directory`);
  }
  const mode = st.mode & 0o7777;
  if (mode === 0o700) return {};
  try {
    fs.chmodSync(dir, 0o700);
  } catch (err) {
    throw new Error(`${dir} has mode ${mode.toString(8).padStart(4, "0")} (others can read it) and could not be made 0700 ` +
      `(${(err as Error).message}): run 'chmod 700 ${dir}'`);
  }
  // a directory made under a strict umask (0700 minus bits) is only completed, not "tightened"
  return (mode & 0o077) !== 0 ? { tightenedFrom: mode } : {};
}
