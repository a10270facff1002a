/** What restic prints with --json, parsed into what fleet records and shows. Pure. */

export interface BackupSummary {
  snapshot: string;
  /** bytes of the data volume (all files) */
  totalBytes: number;
  files: number;
  /** bytes new to the repository (after deduplication, before compression) */
  added: number;
}

export interface Snapshot {
  id: string;
  shortId: string;
  time: string;
  tags: string[];
  /** bytes of the data it holds, when restic recorded a summary (0.17 and later) */
  bytes?: number;
  files?: number;
}

export interface SnapshotFile {
  path: string;
  size: number;
}

function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t.startsWith("{")) continue;
    try { out.push(JSON.parse(t) as Record<string, unknown>); } catch { /* a progress line cut short */ }
  }
  return out;
}

/** The summary `restic backup --json` ends with; undefined when it made no snapshot. */
export function parseBackupSummary(stdout: string): BackupSummary | undefined {
  const s = jsonLines(stdout).find((m) => m.message_type === "summary" && typeof m.snapshot_id === "string");
  if (!s) return undefined;
  return { snapshot: String(s.snapshot_id), totalBytes: Number(s.total_bytes_processed ?? 0), files: Number(s.total_files_processed ?? 0),
    added: Number(s.data_added ?? 0) };
}

/** The error messages `restic --json` printed (one per line on stderr or stdout). */
export function resticErrors(text: string): string[] {
  return jsonLines(text).filter((m) => m.message_type === "error").map((m) => {
    const e = m.error as { message?: string } | string | undefined;
    const msg = typeof e === "string" ? e : e?.message ?? JSON.stringify(m);
    return m.item ? `${String(m.item)}: ${msg}` : msg;
  });
}

/** `restic snapshots --json`, oldest first. */
export function parseSnapshots(stdout: string): Snapshot[] {
  const list = JSON.parse(stdout.trim() || "[]") as { id: string; short_id: string; time: string; tags?: string[];
    summary?: { total_bytes_processed?: number; total_files_processed?: number } }[];
  return list.map((s) => ({
    id: s.id, shortId: s.short_id, time: s.time, tags: s.tags ?? [],
    bytes: s.summary?.total_bytes_processed, files: s.summary?.total_files_processed,
  })).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
}

/** The regular files of `restic ls --json <snapshot>:/data`-style output, relative to `root`. */
export function parseLs(stdout: string, root = "/data"): SnapshotFile[] {
  const prefix = root.endsWith("/") ? root : `${root}/`;
  return jsonLines(stdout)
    .filter((m) => (m.struct_type === "node" || m.message_type === "node") && m.type === "file" && typeof m.path === "string")
    .map((m) => ({ path: String(m.path).startsWith(prefix) ? String(m.path).slice(prefix.length) : String(m.path).replace(/^\//, ""), size: Number(m.size ?? 0) }));
}

/** A tag fleet puts on its snapshots: `hf-<key>=<value>`. */
export const tag = (key: string, value: string) => `hf-${key}=${value}`;
export const tagValue = (s: Snapshot, key: string) => s.tags.find((t) => t.startsWith(`hf-${key}=`))?.slice(`hf-${key}=`.length);
