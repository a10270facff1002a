/**
 * What fleet did with an environment's backups, one JSON line per event in
 * .fleet/backup-records/<environment>.jsonl (appended, fsynced): each backup, restore, drill and
 * prune with its time, snapshot, size, duration and error. `fleet list`, `fleet backups` and the
 * schedule read it; it survives restarts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ensurePrivateDirectory } from "../config/durableWrite";

export type RecordKind = "backup" | "restore" | "drill" | "prune";

export interface BackupRecord {
  kind: RecordKind;
  customer: string;
  /** ISO time it started */
  at: string;
  ok: boolean;
  durationMs: number;
  /** why: scheduled, manual, safety (before a restore), final (before deprovision) */
  reason?: string;
  snapshot?: string;
  /** bytes of the customer's data */
  bytes?: number;
  /** bytes new to the repository */
  added?: number;
  files?: number;
  /** how long the customer was paused for a consistent snapshot */
  pauseMs?: number;
  node?: string;
  error?: string;
}

export function recordsFile(projectDir: string, environment: string): string {
  return path.join(projectDir, ".fleet", "backup-records", `${environment}.jsonl`);
}

/** Appends one record, fsynced before it returns. */
export function appendRecord(projectDir: string, environment: string, record: BackupRecord): void {
  const file = recordsFile(projectDir, environment);
  ensurePrivateDirectory(path.dirname(file));
  const fd = fs.openSync(file, "a", 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(record)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Every record of the environment, oldest first; a line cut short by a crash is skipped. */
export function readRecords(projectDir: string, environment: string): BackupRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(recordsFile(projectDir, environment), "utf8");
  } catch {
    return [];
  }
  const out: BackupRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try { out.push(JSON.parse(line) as BackupRecord); } catch { /* the torn last line of a crash */ }
  }
  return out;
}

/** The newest record of each customer of that kind (and reason, when given). Pure. */
export function latestByCustomer(records: BackupRecord[], kind: RecordKind, ok?: boolean): Map<string, BackupRecord> {
  const out = new Map<string, BackupRecord>();
  for (const r of records) if (r.kind === kind && (ok === undefined || r.ok === ok)) out.set(r.customer, r);
  return out;
}
