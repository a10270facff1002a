/**
 * What a backup archive holds, read back from the disk, and what a volume holds, as listed inside it:
 * every regular file's path, size and sha256. Equal manifests mean the archive is a full copy of the
 * volume's files, so the volume may be deleted. No engine here: the volume's listing is the output of
 * VOLUME_MANIFEST_SCRIPT, run by oneShot.ts.
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import * as zlib from "node:zlib";

export interface FileFacts {
  size: number;
  sha256: string;
}

/** path (as `find .` prints it: "./uploads/a.txt") -> size and content hash */
export type Manifest = Map<string, FileFacts>;

/**
 * Run in /data of a one-shot container (GNU find and coreutils): NUL-terminated records, first
 * `<size> <path>` for every regular file, then `<sha256>  <path>` for every regular file.
 */
export const VOLUME_MANIFEST_SCRIPT = "cd /data && find . -type f -printf '%s %p\\0' && find . -type f -exec sha256sum -z -- {} +";

/** The manifest from VOLUME_MANIFEST_SCRIPT's output; throws when a file has no size or no hash. Pure. */
export function parseVolumeManifest(output: string): Manifest {
  const sizes = new Map<string, number>();
  const hashes = new Map<string, string>();
  for (const record of output.split("\0")) {
    if (record === "" || record === "\n") continue;
    const hash = /^([0-9a-f]{64}) {2}(\.\/[\s\S]*)$/.exec(record) ?? /^([0-9a-f]{64}) {2}(\.)$/.exec(record);
    const size = /^(\d+) (\.\/[\s\S]*)$/.exec(record);
    if (hash) hashes.set(hash[2]!, hash[1]!);
    else if (size) sizes.set(size[2]!, Number(size[1]));
    else throw new Error(`unexpected line in the volume's listing: ${JSON.stringify(record.slice(0, 200))}`);
  }
  const manifest: Manifest = new Map();
  for (const [p, size] of sizes) {
    const sha256 = hashes.get(p);
    if (sha256 === undefined) throw new Error(`the volume's listing has no hash for ${p} (could it be read?)`);
    manifest.set(p, { size, sha256 });
  }
  for (const p of hashes.keys()) if (!sizes.has(p)) throw new Error(`the volume's listing has no size for ${p}`);
  return manifest;
}

function cstring(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString("utf8");
}

/** A tar number field: octal text, or GNU base-256 (first byte's high bit set) for big values. */
function tarNumber(block: Buffer, start: number, length: number): number {
  const field = block.subarray(start, start + length);
  if (field[0]! & 0x80) {
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = cstring(block, start, length).trim();
  return text === "" ? 0 : parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return sum === tarNumber(block, 148, 8);
}

/** pax extended header records: "<len> key=value\n"... */
function paxRecords(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    if (space < 0) break;
    const len = Number(body.subarray(at, space).toString("ascii"));
    if (!Number.isInteger(len) || len <= 0) break;
    const record = body.subarray(space + 1, at + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
  }
  return out;
}

/** Owner and mode of the archive's root directory (its first entry, "./", as archiveVolume writes it). */
export interface ArchiveRoot {
  uid: number;
  gid: number;
  /** permission bits */
  mode: number;
}

/**
 * The archive's root entry: the volume's top directory as it was (a restore gives the new volume's
 * top the same owner and mode). Undefined when the first entry is not "./" (another tool's archive).
 */
export async function archiveRoot(file: string): Promise<ArchiveRoot | undefined> {
  const gunzip = zlib.createGunzip();
  const source = fs.createReadStream(file);
  source.on("error", (err) => gunzip.destroy(err));
  source.pipe(gunzip);
  let head = Buffer.alloc(0);
  for await (const chunk of gunzip as AsyncIterable<Buffer>) {
    head = Buffer.concat([head, chunk]);
    if (head.length >= 512) break;
  }
  source.destroy();
  if (head.length < 512) throw new Error(`${file} is cut short: no tar header`);
  const block = head.subarray(0, 512);
  if (!checksumOk(block)) throw new Error(`${file}: the first tar header is damaged`);
  const name = cstring(block, 0, 100);
  if ((name !== "./" && name !== ".") || String.fromCharCode(block[156]!) !== "5") return undefined;
  return { uid: tarNumber(block, 108, 8), gid: tarNumber(block, 116, 8), mode: tarNumber(block, 100, 8) & 0o7777 };
}

/**
 * Reads a .tar.gz from the disk (gzip and tar headers checked) and returns its regular files (hard
 * links count as the file they link to). Throws when the archive is cut short or damaged.
 */
export async function archiveManifest(file: string): Promise<Manifest> {
  const manifest: Manifest = new Map();
  const links: [string, string][] = [];
  let pending: Buffer = Buffer.alloc(0);
  let ended = false;
  // the entry whose body is being read
  let body: { size: number; remaining: number; padding: number; type: string; name: string; hash?: Hash; kept?: Buffer[] } | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Map<string, string> | undefined;

  const finishEntry = () => {
    const e = body!;
    body = undefined;
    if (e.type === "L") longName = Buffer.concat(e.kept!).toString("utf8").replace(/\0+$/, "");
    else if (e.type === "K") longLink = Buffer.concat(e.kept!).toString("utf8").replace(/\0+$/, "");
    else if (e.type === "x") pax = paxRecords(Buffer.concat(e.kept!));
    else if (e.hash) manifest.set(e.name, { size: e.size, sha256: e.hash.digest("hex") });
  };

  const gunzip = zlib.createGunzip();
  const source = fs.createReadStream(file);
  source.on("error", (err) => gunzip.destroy(err));
  source.pipe(gunzip);
  for await (const chunk of gunzip as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    while (!ended) {
      if (body) {
        if (body.remaining > 0) {
          const take = Math.min(body.remaining, pending.length - at);
          if (take === 0) break;
          const part = pending.subarray(at, at + take);
          body.hash?.update(part);
          body.kept?.push(Buffer.from(part));
          body.remaining -= take;
          at += take;
          continue;
        }
        const skip = Math.min(body.padding, pending.length - at);
        body.padding -= skip;
        at += skip;
        if (body.padding > 0) break;
        finishEntry();
        continue;
      }
      if (pending.length - at < 512) break;
      const block = pending.subarray(at, at + 512);
      at += 512;
      if (block.every((b) => b === 0)) {
        ended = true;
        break;
      }
      if (!checksumOk(block)) throw new Error(`the archive is damaged: a tar header's checksum does not match (at byte ${at - 512} of the tar)`);
      const type = String.fromCharCode(block[156]!) || "0";
      const magic = block.subarray(257, 263).toString("latin1");
      let name = cstring(block, 0, 100);
      if (magic === "ustar\0") {
        const prefix = cstring(block, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      let size = tarNumber(block, 124, 12);
      let linkname = cstring(block, 157, 100);
      if (!["L", "K", "x", "g"].includes(type)) {
        if (longName !== undefined) name = longName;
        if (longLink !== undefined) linkname = longLink;
        if (pax?.has("path")) name = pax.get("path")!;
        if (pax?.has("linkpath")) linkname = pax.get("linkpath")!;
        if (pax?.has("size")) size = Number(pax.get("size"));
        longName = longLink = pax = undefined;
      }
      const regular = type === "0" || type === "\0" || type === "7";
      if (type === "1") links.push([name, linkname]);
      body = {
        size, remaining: size, padding: (512 - (size % 512)) % 512, type, name,
        hash: regular ? createHash("sha256") : undefined, kept: ["L", "K", "x"].includes(type) ? [] : undefined,
      };
    }
    pending = pending.subarray(at);
  }
  if (!ended) throw new Error("the archive is cut short: it ends without tar's end-of-archive blocks");
  for (const [name, target] of links) {
    const facts = manifest.get(target);
    if (!facts) throw new Error(`the archive's hard link ${name} points to ${target}, which it does not hold`);
    manifest.set(name, facts);
  }
  return manifest;
}

/** What differs between the volume's files and the archive's (at most `limit` lines); empty when equal. Pure. */
export function manifestDifferences(volume: Manifest, archive: Manifest, limit = 5): string[] {
  const out: string[] = [];
  if (volume.size !== archive.size) out.push(`${volume.size} files in the volume, ${archive.size} in the archive`);
  for (const [p, v] of volume) {
    const a = archive.get(p);
    if (!a) out.push(`${p} is missing from the archive`);
    else if (a.size !== v.size) out.push(`${p}: ${v.size} bytes in the volume, ${a.size} in the archive`);
    else if (a.sha256 !== v.sha256) out.push(`${p}: its content differs (sha256 ${v.sha256.slice(0, 12)}… in the volume, ${a.sha256.slice(0, 12)}… in the archive)`);
  }
  for (const p of archive.keys()) if (!volume.has(p)) out.push(`${p} is in the archive but not in the volume`);
  return out.length > limit ? [...out.slice(0, limit), `… and ${out.length - limit} more`] : out;
}
