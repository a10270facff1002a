/**
 * The project's SQLite files (the webhook job queue, the watcher's store): made 0600 in a 0700
 * directory, WAL with synchronous FULL (a transaction that returned is on the disk), a schema version
 * in user_version, created or migrated in one transaction, and refused with a clear error when it is
 * a version this fleet does not know.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";

export interface SqliteFileSpec {
  /** what the file is, for errors: "job queue", "watch store" */
  what: string;
  schema: string;
  version: number;
  /** SQL that takes a file of version N (the key) to `version` */
  migrations?: Record<number, string>;
  /** read-only open of a missing file: what creates it */
  missing: string;
  /** a file of an unknown version: what moving it away means */
  afresh: string;
  /** read-only: a file of an older version that a migration takes on is read as it is (the writer migrates it) */
  readOlder?: boolean;
}

/** Runs fn in one IMMEDIATE transaction, rolled back when it throws. */
export function inTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (err) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

/**
 * Opens the file (creating it when missing); readOnly never creates anything and fails, naming the
 * file, when there is none.
 */
export function openSqliteFile(file: string, spec: SqliteFileSpec, opts: { readOnly?: boolean } = {}): { db: DatabaseSync; file: string; version: number } {
  const absolute = path.resolve(file);
  const checkVersion = (db: DatabaseSync): number => {
    const version = Number(db.prepare("PRAGMA user_version").get()?.user_version ?? 0);
    if (opts.readOnly && spec.readOlder && version > 0 && version < spec.version && spec.migrations?.[version] !== undefined) return version;
    if (version !== spec.version) {
      db.close();
      throw new Error(`${spec.what} ${absolute} has schema version ${version}, this fleet knows version ${spec.version}: ` +
        `use the fleet version that wrote it, or move the file away to ${spec.afresh}`);
    }
    return version;
  };
  if (opts.readOnly) {
    if (!fs.existsSync(absolute)) throw new Error(`no ${spec.what} at ${absolute}: ${spec.missing}`);
    const db = new DatabaseSync(absolute, { readOnly: true, timeout: 5000 });
    return { db, file: absolute, version: checkVersion(db) };
  }
  const dir = path.dirname(absolute);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const isNew = !fs.existsSync(absolute);
  const db = new DatabaseSync(absolute, { timeout: 5000, enableForeignKeyConstraints: true });
  if (isNew) fs.chmodSync(absolute, 0o600); // customer ids; the -wal and -shm files take the same mode
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
  const version = Number(db.prepare("PRAGMA user_version").get()?.user_version ?? 0);
  const migration = version === 0 ? spec.schema : spec.migrations?.[version];
  if (migration !== undefined && version !== spec.version) {
    inTransaction(db, () => {
      db.exec(migration);
      db.exec(`PRAGMA user_version = ${spec.version}`);
    });
    return { db, file: absolute, version: spec.version };
  }
  return { db, file: absolute, version: checkVersion(db) };
}
