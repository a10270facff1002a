/**
 * The durable state of `fleet watch`: one SQLite file (node:sqlite) in WAL mode, synchronous=FULL.
 *
 *  - `health`: per environment and customer, its CustomerHealth (health.ts) as JSON;
 *  - `alerts`: every alert decided, keyed by its id (incident + ":" + kind);
 *  - `rounds`: per environment, when the watcher last finished a round of probes (a customer's state
 *    is written when it changes, so this says how fresh the states are);
 *  - `cursors`: per engine, the last of its events applied (so a watcher started again reads on from there);
 *  - `deliveries`: per alert and sink, queued, delivered or failed (to be tried again from
 *    next_attempt_at);
 *  - `samples`: each customer container's cumulative CPU time and memory, one `at` per round of
 *    samples (src/usage/usage.ts reads them for `fleet usage`), removed past the retention.
 *
 * A new state and its alerts are written in one transaction, the alerts queued for every sink in it,
 * so a kill at any point leaves either the old state and no alert or the new state with its alerts
 * queued. An alert id already present is not queued again: a decision made twice (a watcher that
 * crashed before saving decides again) sends once. A failed delivery stays to be tried again (no
 * alert is dropped); a sink gets its alerts in the order they were decided, and while its oldest
 * undelivered one waits to be retried the later ones wait too. The store assumes one watcher per file.
 */
import * as path from "node:path";
import type { DatabaseSync, SQLInputValue, SQLOutputValue } from "node:sqlite";
import { inTransaction, openSqliteFile } from "../project/sqliteFile";
import type { StatsSample } from "../usage/usage";
import { healthKey, type Alert, type CustomerHealth } from "./health";

export const DELIVERY_STATUSES = ["queued", "delivered", "failed"] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface Delivery {
  alert: Alert;
  sink: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  deliveredAt: string | null;
}

const SCHEMA_VERSION = 2;

const SAMPLES = `
CREATE TABLE samples (
  at TEXT NOT NULL,
  environment TEXT NOT NULL,
  customer TEXT NOT NULL,
  container TEXT NOT NULL,
  cpu_nanos INTEGER NOT NULL CHECK (cpu_nanos >= 0),
  memory_bytes INTEGER NOT NULL CHECK (memory_bytes >= 0)
) STRICT;
CREATE INDEX samples_by_customer ON samples (environment, customer, at);
CREATE INDEX samples_by_container ON samples (environment, container, at);
CREATE INDEX samples_by_time ON samples (at);
`;

const SCHEMA = `
CREATE TABLE health (
  environment TEXT NOT NULL,
  customer TEXT NOT NULL,
  state TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (environment, customer)
) STRICT;
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  incident TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('down', 'recovered')),
  payload TEXT NOT NULL,
  created_at TEXT NOT NULL
) STRICT;
CREATE TABLE deliveries (
  alert_id TEXT NOT NULL REFERENCES alerts(id),
  sink TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'delivered', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  last_error TEXT,
  delivered_at TEXT,
  PRIMARY KEY (alert_id, sink)
) STRICT;
CREATE INDEX deliveries_pending ON deliveries (sink, status);
CREATE TABLE rounds (
  environment TEXT PRIMARY KEY,
  at TEXT NOT NULL
) STRICT;
CREATE TABLE cursors (
  source TEXT PRIMARY KEY,
  position TEXT NOT NULL
) STRICT;
${SAMPLES}`;

/** Version 1 had no samples. */
const MIGRATIONS: Record<number, string> = { 1: SAMPLES };

/** Wait before the retry that follows failed attempt number `attempts` (1-based): 5 s, doubled, at most 5 min. */
export function deliveryBackoffMs(attempts: number): number {
  return Math.min(300_000, 5_000 * 2 ** Math.min(16, Math.max(0, attempts - 1)));
}

const iso = (d: Date) => d.toISOString();

function text(v: SQLOutputValue | undefined): string | null {
  return v === null || v === undefined ? null : String(v);
}

function rowToDelivery(row: Record<string, SQLOutputValue>): Delivery {
  return {
    alert: JSON.parse(String(row.payload)) as Alert,
    sink: String(row.sink),
    status: String(row.status) as DeliveryStatus,
    attempts: Number(row.attempts),
    nextAttemptAt: String(row.next_attempt_at),
    lastError: text(row.last_error),
    deliveredAt: text(row.delivered_at),
  };
}

/** Where `fleet watch` keeps its state unless told otherwise. */
export function defaultWatchStorePath(projectDir: string): string {
  return path.join(projectDir, ".fleet", "watch", "watch.db");
}

/** One container's reading of a round of samples. */
export interface ContainerSample {
  customer: string;
  container: string;
  cpuNanos: number;
  memoryBytes: number;
}

export class WatchStore {
  /** a file of version 1 read before the watcher migrated it has no samples table */
  private constructor(private readonly db: DatabaseSync, readonly file: string, private readonly hasSamples = true) {}

  /**
   * Opens (creating it when missing, migrating an older one) the store file; readOnly (for `fleet
   * status`) never creates it, and reads an older file as it is, without samples, until the watcher migrates it.
   */
  static open(file: string, opts: { readOnly?: boolean } = {}): WatchStore {
    const { db, file: absolute, version } = openSqliteFile(file, {
      what: "watch store", schema: SCHEMA, version: SCHEMA_VERSION, migrations: MIGRATIONS, readOlder: true,
      missing: "'fleet watch' creates it on its first start", afresh: "start afresh (every customer's state unknown)",
    }, opts);
    return new WatchStore(db, absolute, version >= 2);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }

  private transaction<T>(fn: () => T): T {
    return inTransaction(this.db, fn);
  }

  /**
   * Saves the customer's new state and queues each of its alerts for every sink, in one transaction.
   * An alert whose id is already stored is left as it is (not queued again). Returns the ids queued.
   */
  apply(environment: string, customer: string, state: CustomerHealth, alerts: Alert[], sinks: string[], now: Date = new Date(),
    cursor?: { source: string; position: string }): string[] {
    if (state.environment !== environment || healthKey(state) !== customer) {
      throw new Error(`the state of ${state.environment}/${healthKey(state)} cannot be saved as ${environment}/${customer}`);
    }
    for (const a of alerts) {
      if (a.environment !== environment || healthKey(a) !== customer) {
        throw new Error(`alert ${a.id} is for ${a.environment}/${healthKey(a)}, not ${environment}/${customer}`);
      }
    }
    return this.transaction(() => {
      const at = iso(now);
      this.db.prepare(`INSERT INTO health (environment, customer, state, updated_at) VALUES (:environment, :customer, :state, :at)
          ON CONFLICT (environment, customer) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`)
        .run({ environment, customer, state: JSON.stringify(state), at });
      if (cursor) this.saveCursor(cursor.source, cursor.position);
      const queued: string[] = [];
      for (const alert of alerts) {
        const inserted = this.db.prepare(`INSERT INTO alerts (id, incident, kind, payload, created_at)
            VALUES (:id, :incident, :kind, :payload, :at) ON CONFLICT (id) DO NOTHING`)
          .run({ id: alert.id, incident: alert.incident, kind: alert.kind, payload: JSON.stringify(alert), at });
        if (Number(inserted.changes) !== 1) continue;
        for (const sink of sinks) {
          this.db.prepare(`INSERT INTO deliveries (alert_id, sink, status, next_attempt_at) VALUES (:id, :sink, 'queued', :at)`)
            .run({ id: alert.id, sink, at });
        }
        queued.push(alert.id);
      }
      return queued;
    });
  }

  /** Where the events of `source` were read to (an event that concerned no state moves it too). */
  saveCursor(source: string, position: string): void {
    this.db.prepare(`INSERT INTO cursors (source, position) VALUES (:source, :position)
        ON CONFLICT (source) DO UPDATE SET position = excluded.position`).run({ source, position });
  }

  /** The watcher finished a round of probes of the environment at `at`. */
  saveRound(environment: string, at: Date): void {
    this.db.prepare(`INSERT INTO rounds (environment, at) VALUES (:environment, :at)
        ON CONFLICT (environment) DO UPDATE SET at = excluded.at`).run({ environment, at: at.toISOString() });
  }

  lastRound(environment: string): string | undefined {
    const row = this.db.prepare("SELECT at FROM rounds WHERE environment = :environment").get({ environment });
    return row ? String(row.at) : undefined;
  }

  cursor(source: string): string | undefined {
    const row = this.db.prepare("SELECT position FROM cursors WHERE source = :source").get({ source });
    return row ? String(row.position) : undefined;
  }

  /** Drops the states of an environment's customers and checks not in `keep` (deprovisioned); their alerts stay. */
  forgetExcept(environment: string, keep: Set<string>): string[] {
    const gone = this.db.prepare("SELECT customer FROM health WHERE environment = :environment").all({ environment })
      .map((r) => String(r.customer)).filter((c) => !keep.has(c));
    for (const customer of gone) this.db.prepare("DELETE FROM health WHERE environment = :environment AND customer = :customer").run({ environment, customer });
    return gone;
  }

  /** When each state was last saved (ISO), by environment and key. */
  updatedAt(environment: string, customer: string): string | undefined {
    const row = this.db.prepare("SELECT updated_at FROM health WHERE environment = :environment AND customer = :customer").get({ environment, customer });
    return row ? String(row.updated_at) : undefined;
  }

  healthOf(environment: string, customer: string): CustomerHealth | undefined {
    const row = this.db.prepare("SELECT state FROM health WHERE environment = :environment AND customer = :customer").get({ environment, customer });
    return row ? (JSON.parse(String(row.state)) as CustomerHealth) : undefined;
  }

  allHealth(): CustomerHealth[] {
    return this.db.prepare("SELECT state FROM health ORDER BY environment, customer").all()
      .map((row) => JSON.parse(String(row.state)) as CustomerHealth);
  }

  alert(id: string): Alert | undefined {
    const row = this.db.prepare("SELECT payload FROM alerts WHERE id = :id").get({ id });
    return row ? (JSON.parse(String(row.payload)) as Alert) : undefined;
  }

  /** The newest alerts, newest first (the status page). */
  recentAlerts(limit: number): Alert[] {
    return this.db.prepare("SELECT payload FROM alerts ORDER BY created_at DESC, rowid DESC LIMIT :limit").all({ limit })
      .map((row) => JSON.parse(String(row.payload)) as Alert);
  }

  /** A round of samples of the environment, all at `at`, in one transaction. */
  saveSamples(environment: string, at: Date, samples: ContainerSample[]): void {
    if (samples.length === 0) return;
    this.transaction(() => {
      const insert = this.db.prepare(`INSERT INTO samples (at, environment, customer, container, cpu_nanos, memory_bytes)
          VALUES (:at, :environment, :customer, :container, :cpu, :memory)`);
      for (const s of samples) {
        insert.run({ at: iso(at), environment, customer: s.customer, container: s.container,
          cpu: Math.max(0, Math.round(s.cpuNanos)), memory: Math.max(0, Math.round(s.memoryBytes)) });
      }
    });
  }

  /** Removes the environment's samples taken before `before`; how many. */
  pruneSamples(environment: string, before: Date): number {
    return Number(this.db.prepare("DELETE FROM samples WHERE environment = :env AND at < :before").run({ env: environment, before: iso(before) }).changes);
  }

  /**
   * What summarizeUsage needs for the window [from, to), by customer (those with samples in it, and
   * `customers`): the samples in it; before it, each of their containers' previous sample (CPU counts
   * from there) and the customer's last round (it holds into the window); after it, the customer's
   * next round (where the last one stops holding). Every look-up goes through an index.
   */
  samplesFor(environment: string, from: Date, to: Date, customers: string[] = []): Map<string, StatsSample[]> {
    if (!this.hasSamples) return new Map();
    const rows = this.db.prepare(`
      WITH inside AS (
        SELECT rowid AS id, customer, container FROM samples WHERE environment = :env AND at >= :from AND at < :to
      ), who AS (
        SELECT customer FROM inside UNION SELECT value FROM json_each(:customers)
      ), edges AS (
        SELECT w.customer,
          (SELECT max(at) FROM samples s WHERE s.environment = :env AND s.customer = w.customer AND s.at < :from) AS before,
          (SELECT min(at) FROM samples s WHERE s.environment = :env AND s.customer = w.customer AND s.at >= :to) AS after
        FROM who w
      ), wanted AS (
        SELECT id FROM inside
        UNION SELECT (SELECT s.rowid FROM samples s WHERE s.environment = :env AND s.container = c.container AND s.at < :from
          ORDER BY s.at DESC LIMIT 1) FROM (SELECT DISTINCT container FROM inside) c
        UNION SELECT s.rowid FROM edges e JOIN samples s ON s.environment = :env AND s.customer = e.customer AND s.at IN (e.before, e.after)
      )
      SELECT at, customer, container, cpu_nanos, memory_bytes FROM samples WHERE rowid IN (SELECT id FROM wanted)
      ORDER BY at, rowid`).all({ env: environment, from: iso(from), to: iso(to), customers: JSON.stringify(customers) });
    const out = new Map<string, StatsSample[]>();
    for (const r of rows) {
      const customer = String(r.customer);
      let list = out.get(customer);
      if (!list) out.set(customer, list = []);
      list.push({ at: String(r.at), container: String(r.container), cpuNanos: Number(r.cpu_nanos), memoryBytes: Number(r.memory_bytes) });
    }
    return out;
  }

  /** How many samples of the environment were taken within [from, to). */
  sampleCount(environment: string, from: Date, to: Date): number {
    if (!this.hasSamples) return 0;
    return Number(this.db.prepare("SELECT count(*) AS n FROM samples WHERE environment = :env AND at >= :from AND at < :to")
      .get({ env: environment, from: iso(from), to: iso(to) })?.n ?? 0);
  }

  /** The first and last sample of the environment kept, if any. */
  sampleSpan(environment: string): { first: string; last: string } | undefined {
    if (!this.hasSamples) return undefined;
    const row = this.db.prepare("SELECT min(at) AS first, max(at) AS last FROM samples WHERE environment = :env").get({ env: environment });
    return row && row.first !== null ? { first: String(row.first), last: String(row.last) } : undefined;
  }

  private deliveryRows(where: string, params: Record<string, SQLInputValue>): Delivery[] {
    return this.db.prepare(`SELECT d.*, a.payload FROM deliveries d JOIN alerts a ON a.id = d.alert_id
        WHERE ${where} ORDER BY a.created_at, a.rowid, d.sink`).all(params).map(rowToDelivery);
  }

  /** Every delivery of an alert (one per sink it was queued for). */
  deliveriesOf(alertId: string): Delivery[] {
    return this.deliveryRows("d.alert_id = :alertId", { alertId });
  }

  delivery(alertId: string, sink: string): Delivery | undefined {
    return this.deliveryRows("d.alert_id = :alertId AND d.sink = :sink", { alertId, sink })[0];
  }

  /**
   * The sink's undelivered alerts, oldest first, when the oldest may be tried at `now`; none while it
   * waits for its retry (the sink keeps its order).
   */
  due(sink: string, now: Date): Delivery[] {
    const pending = this.deliveryRows("d.sink = :sink AND d.status <> 'delivered'", { sink });
    const first = pending[0];
    if (!first || first.nextAttemptAt > iso(now)) return [];
    return pending;
  }

  /** The sink took the alert. An attempt more; nothing changes when it was already delivered. */
  markDelivered(alertId: string, sink: string, at: Date): void {
    this.db.prepare(`UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = :at, last_error = NULL
        WHERE alert_id = :alertId AND sink = :sink AND status <> 'delivered'`)
      .run({ alertId, sink, at: iso(at) });
  }

  /** The sink did not take it: an attempt more, tried again from nextAttemptAt. Never undoes a delivery. */
  markFailed(alertId: string, sink: string, error: string, nextAttemptAt: Date): void {
    this.db.prepare(`UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = :error, next_attempt_at = :next
        WHERE alert_id = :alertId AND sink = :sink AND status <> 'delivered'`)
      .run({ alertId, sink, error, next: iso(nextAttemptAt) });
  }

  /** Deliveries per sink and status (for metrics). */
  pending(): Record<string, Record<DeliveryStatus, number>> {
    const out: Record<string, Record<DeliveryStatus, number>> = {};
    for (const row of this.db.prepare("SELECT sink, status, count(*) AS n FROM deliveries GROUP BY sink, status").all()) {
      const sink = String(row.sink);
      out[sink] ??= { queued: 0, delivered: 0, failed: 0 };
      out[sink][String(row.status) as DeliveryStatus] = Number(row.n);
    }
    return out;
  }
}
