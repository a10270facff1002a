/**
 * The durable job queue of `fleet serve`: one SQLite file (node:sqlite, no native addon) in WAL mode.
 *
 *  - `events`: every accepted Stripe event, keyed by its id, so a second delivery is recognised;
 *  - `jobs`: one per event: what to do to which customer, and how far it got;
 *  - `customers`: per customer, the newest event applied to completion (for out-of-order deliveries).
 *
 * The event and its job are written in one transaction (synchronous=FULL: on disk when it commits)
 * before the HTTP answer, so an event Stripe saw acknowledged is never lost, whatever kills the process.
 *
 * Order: a customer's jobs run one at a time in the order of their events' `created` time (ties in
 * arrival order); a job whose event is older than the newest event already applied for its customer
 * is not run but recorded as ignored, "superseded", so a late delivery never undoes a newer change.
 * The queue assumes one worker process per file (`fleet serve` holds a lock for that).
 *
 * A job ends done, failed (its operation could not complete), ignored (nothing to do, or superseded)
 * or refused: the event was not allowed to act on its customer (authorize.ts), and nothing changed.
 */
import * as path from "node:path";
import type { DatabaseSync, SQLInputValue, SQLOutputValue } from "node:sqlite";
import { inTransaction, openSqliteFile } from "../project/sqliteFile";
import type { EventDecision, JobAction } from "./stripeEvents";

export const JOB_STATUSES = ["queued", "running", "done", "failed", "ignored", "refused"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export interface Job {
  id: number;
  eventId: string;
  eventType: string;
  /** the Stripe event's `created` (unix seconds): the order of a customer's jobs */
  eventCreated: number;
  environment: string;
  /** null when the event named none; as received (at most 64 characters) when it is invalid */
  customer: string | null;
  /** null for an event that is only recorded (ignored) */
  action: JobAction | null;
  plan: string | null;
  /** the event's Stripe customer (cus_...) and subscription (sub_...): who pays, checked against the customer's binding */
  stripeCustomer: string | null;
  stripeSubscription: string | null;
  status: JobStatus;
  /** runs started (the running one included), counted durably before each run begins: interrupted ones too */
  attempts: number;
  /** of those, runs cut short by the end of the process (crash, kill -9, power loss) */
  interrupted: number;
  /** ISO time from which a queued job may run (later than now while it waits to retry) */
  nextAttemptAt: string;
  /** why the last run failed; for a failed job, why it stopped; for a refused one, why it was refused */
  lastError: string | null;
  /** why a job was ignored (event type not acted on, superseded by a newer event) */
  note: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface AcceptedEvent {
  id: string;
  type: string;
  created: number;
  livemode: boolean;
}

export interface AcceptResult {
  /** the event was already in the queue: nothing was written */
  duplicate: boolean;
  job: Job;
}

export type QueueCounts = Record<JobStatus, number>;

/** 2: the refused status and the Stripe customer and subscription of each job (a version-1 file is migrated) */
const SCHEMA_VERSION = 2;

const JOB_COLUMNS_V1 = ["id", "event_id", "event_type", "event_created", "environment", "customer", "action", "plan", "status",
  "attempts", "interrupted", "next_attempt_at", "last_error", "note", "created_at", "updated_at"];

const jobsTable = (name: string) => `
CREATE TABLE ${name} (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE REFERENCES events(id),
  event_type TEXT NOT NULL,
  event_created INTEGER NOT NULL,
  environment TEXT NOT NULL,
  customer TEXT,
  action TEXT CHECK (action IN ('provision', 'plan-change', 'deprovision')),
  plan TEXT,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'ignored', 'refused')),
  attempts INTEGER NOT NULL DEFAULT 0,
  interrupted INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  last_error TEXT,
  note TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  stripe_customer TEXT,
  stripe_subscription TEXT
) STRICT;`;

const JOB_INDEXES = `
CREATE INDEX IF NOT EXISTS jobs_by_customer ON jobs (environment, customer, status);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, next_attempt_at);`;

/** Version 1 to 2: SQLite cannot change a CHECK, so the jobs table is copied into the new one. */
const MIGRATE_1_TO_2 = `${jobsTable("jobs_v2")}
INSERT INTO jobs_v2 (${JOB_COLUMNS_V1.join(", ")}) SELECT ${JOB_COLUMNS_V1.join(", ")} FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;
${JOB_INDEXES}`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  created INTEGER NOT NULL,
  livemode INTEGER NOT NULL,
  received_at TEXT NOT NULL
) STRICT;
${jobsTable("jobs")}
${JOB_INDEXES}
CREATE TABLE IF NOT EXISTS customers (
  environment TEXT NOT NULL,
  customer TEXT NOT NULL,
  last_event_id TEXT NOT NULL,
  last_event_created INTEGER NOT NULL,
  action TEXT NOT NULL,
  plan TEXT,
  applied_at TEXT NOT NULL,
  PRIMARY KEY (environment, customer)
) STRICT;
`;

/** The head of each customer's line whose time has come, oldest arrival first; skips busy customers. */
const CLAIMABLE = `
SELECT j.* FROM jobs j
WHERE j.status = 'queued' AND j.next_attempt_at <= :now
  AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.environment = j.environment AND r.customer = j.customer AND r.status = 'running')
  AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.environment = j.environment AND e.customer = j.customer AND e.status = 'queued'
                  AND (e.event_created < j.event_created OR (e.event_created = j.event_created AND e.id < j.id)))
ORDER BY j.id
LIMIT 1`;

const iso = (d: Date) => d.toISOString();

function text(v: SQLOutputValue | undefined): string | null {
  return v === null || v === undefined ? null : String(v);
}

function rowToJob(row: Record<string, SQLOutputValue>): Job {
  return {
    id: Number(row.id),
    eventId: String(row.event_id),
    eventType: String(row.event_type),
    eventCreated: Number(row.event_created),
    environment: String(row.environment),
    customer: text(row.customer),
    action: text(row.action) as JobAction | null,
    plan: text(row.plan),
    stripeCustomer: text(row.stripe_customer),
    stripeSubscription: text(row.stripe_subscription),
    status: String(row.status) as JobStatus,
    attempts: Number(row.attempts),
    interrupted: Number(row.interrupted),
    nextAttemptAt: String(row.next_attempt_at),
    lastError: text(row.last_error),
    note: text(row.note),
    createdAt: String(row.created_at),
    updatedAt: String(row.updated_at),
  };
}

/** Where `fleet serve` and `fleet jobs` keep the queue unless --db says otherwise. */
export function defaultQueuePath(projectDir: string): string {
  return path.join(projectDir, ".fleet", "webhooks", "queue.db");
}

export class JobQueue {
  private constructor(private readonly db: DatabaseSync, readonly file: string) {}

  /**
   * Opens (creating it when missing) the queue file. readOnly (for `fleet jobs`) never creates
   * anything and fails, naming the file, when there is no queue there.
   */
  static open(file: string, opts: { readOnly?: boolean } = {}): JobQueue {
    const { db, file: absolute } = openSqliteFile(file, {
      what: "job queue", schema: SCHEMA, version: SCHEMA_VERSION, migrations: { 1: MIGRATE_1_TO_2 },
      missing: "'fleet serve' creates it on its first start (or pass --db with the path 'fleet serve' uses)",
      afresh: "start an empty queue",
    }, opts);
    return new JobQueue(db, absolute);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }

  private transaction<T>(fn: () => T): T {
    return inTransaction(this.db, fn);
  }

  private one(sql: string, params: Record<string, SQLInputValue> = {}): Job | undefined {
    const row = this.db.prepare(sql).get(params);
    return row ? rowToJob(row) : undefined;
  }

  job(id: number): Job | undefined {
    return this.one("SELECT * FROM jobs WHERE id = :id", { id });
  }

  jobForEvent(eventId: string): Job | undefined {
    return this.one("SELECT * FROM jobs WHERE event_id = :eventId", { eventId });
  }

  /**
   * Records a verified event and its job in one transaction. A known event id changes nothing and
   * returns the job recorded the first time. An invalid request is a failed job at once (never run),
   * an event not allowed to act a refused one; an event that asks for nothing is an ignored job.
   */
  accept(event: AcceptedEvent, environment: string, decision: EventDecision, now: Date): AcceptResult {
    return this.transaction(() => {
      const known = this.jobForEvent(event.id);
      if (known) return { duplicate: true, job: known };
      const at = iso(now);
      this.db.prepare("INSERT INTO events (id, type, created, livemode, received_at) VALUES (:id, :type, :created, :livemode, :at)")
        .run({ id: event.id, type: event.type, created: event.created, livemode: event.livemode ? 1 : 0, at });
      const status: JobStatus = { run: "queued", reject: "failed", refuse: "refused", ignore: "ignored" }[decision.kind] as JobStatus;
      const action = decision.kind === "ignore" ? null : decision.action;
      const plan = decision.kind === "ignore" ? null : decision.plan;
      const payer = decision.kind === "run" || decision.kind === "refuse" ? decision.payer : undefined;
      this.db.prepare(`INSERT INTO jobs (event_id, event_type, event_created, environment, customer, action, plan, status,
          next_attempt_at, last_error, note, created_at, updated_at, stripe_customer, stripe_subscription)
        VALUES (:eventId, :type, :created, :environment, :customer, :action, :plan, :status, :at, :error, :note, :at, :at,
          :stripeCustomer, :stripeSubscription)`)
        .run({
          eventId: event.id, type: event.type, created: event.created, environment, customer: decision.customer,
          action, plan, status, at, stripeCustomer: payer?.customer ?? null, stripeSubscription: payer?.subscription ?? null,
          error: decision.kind === "reject" || decision.kind === "refuse" ? decision.reason : null,
          note: decision.kind === "ignore" ? decision.reason : null,
        });
      return { duplicate: false, job: this.jobForEvent(event.id)! };
    });
  }

  /**
   * At start-up, before the worker runs: jobs a previous process was running when it ended are queued
   * again, to run at once (their operations are idempotent). The interrupted run stays counted (claim
   * counted it, durably, before it ran), so a job that ends the process each time it runs stops as
   * failed once it has had `maxAttempts` runs instead of looping. Returns how many were queued again.
   */
  requeueInterrupted(now: Date, maxAttempts = Number.MAX_SAFE_INTEGER): number {
    return this.transaction(() => {
      const at = iso(now);
      const spent = this.db.prepare("SELECT * FROM jobs WHERE status = 'running' AND attempts >= :max").all({ max: maxAttempts }).map(rowToJob);
      for (const job of spent) {
        const before = job.lastError ? `; the failure before: ${job.lastError.split("\n")[0]}` : "";
        const reason = `the process ended (crash, kill -9, power loss) while attempt ${job.attempts} ran${before}\n` +
          `  (gave up after ${job.attempts} attempts, ${job.interrupted + 1} of them interrupted: fix the cause, then 'fleet jobs --retry ${job.id}')`;
        this.db.prepare("UPDATE jobs SET status = 'failed', interrupted = interrupted + 1, last_error = :reason, updated_at = :at WHERE id = :id")
          .run({ reason, at, id: job.id });
      }
      const result = this.db.prepare(`UPDATE jobs SET status = 'queued', interrupted = interrupted + 1,
          next_attempt_at = :at, updated_at = :at WHERE status = 'running'`).run({ at });
      return Number(result.changes);
    });
  }

  /**
   * Takes the next job that may run now and marks it running (one attempt more), or undefined. On the
   * way, a customer's head job whose event is older than the newest one applied for that customer is
   * recorded as ignored (superseded) instead.
   */
  claim(now: Date): Job | undefined {
    return this.transaction(() => {
      for (;;) {
        const next = this.one(CLAIMABLE, { now: iso(now) });
        if (!next) return undefined;
        const applied = this.db.prepare("SELECT last_event_id, last_event_created FROM customers WHERE environment = :env AND customer = :customer")
          .get({ env: next.environment, customer: next.customer });
        if (applied && Number(applied.last_event_created) > next.eventCreated) {
          const note = `superseded: ${String(applied.last_event_id)} (created ${Number(applied.last_event_created)}) is newer and was applied first`;
          this.db.prepare("UPDATE jobs SET status = 'ignored', note = :note, updated_at = :at WHERE id = :id")
            .run({ note, at: iso(now), id: next.id });
          continue;
        }
        this.db.prepare("UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = :at WHERE id = :id")
          .run({ at: iso(now), id: next.id });
        return this.job(next.id);
      }
    });
  }

  private finishRunning(id: number, set: string, params: Record<string, SQLInputValue>): void {
    const result = this.db.prepare(`UPDATE jobs SET ${set} WHERE id = :id AND status = 'running'`).run({ ...params, id });
    if (Number(result.changes) !== 1) throw new Error(`job ${id} is not running: the queue was changed by another process`);
  }

  /** The job's operation completed: done, and its event is now the newest applied for its customer. */
  complete(id: number, now: Date): void {
    this.transaction(() => {
      const job = this.job(id);
      if (!job) throw new Error(`no job ${id}`);
      this.finishRunning(id, "status = 'done', last_error = NULL, updated_at = :at", { at: iso(now) });
      this.db.prepare(`INSERT INTO customers (environment, customer, last_event_id, last_event_created, action, plan, applied_at)
          VALUES (:env, :customer, :eventId, :created, :action, :plan, :at)
          ON CONFLICT (environment, customer) DO UPDATE SET last_event_id = excluded.last_event_id,
            last_event_created = excluded.last_event_created, action = excluded.action, plan = excluded.plan, applied_at = excluded.applied_at
          WHERE excluded.last_event_created >= customers.last_event_created`)
        .run({ env: job.environment, customer: job.customer, eventId: job.eventId, created: job.eventCreated,
          action: job.action, plan: job.plan, at: iso(now) });
    });
  }

  /** The run failed and will be tried again from `at`. */
  retryLater(id: number, error: string, at: Date, now: Date): void {
    this.finishRunning(id, "status = 'queued', last_error = :error, next_attempt_at = :next, updated_at = :at",
      { error, next: iso(at), at: iso(now) });
  }

  /** The job stops as failed with its reason. */
  fail(id: number, error: string, now: Date): void {
    this.finishRunning(id, "status = 'failed', last_error = :error, updated_at = :at", { error, at: iso(now) });
  }

  /** The job was not allowed to act on its customer: it ends refused with the reason, nothing applied. */
  refuse(id: number, reason: string, now: Date): void {
    this.finishRunning(id, "status = 'refused', last_error = :error, updated_at = :at", { error: reason, at: iso(now) });
  }

  /**
   * `fleet jobs --retry`: a failed job goes back to the queue with fresh attempts, to run at once; so
   * does a job refused by the customer's binding, once an operator re-bound it (`fleet bind`).
   */
  retryFailed(id: number, now: Date): Job {
    return this.transaction(() => {
      const job = this.job(id);
      if (!job) throw new Error(`no job ${id} in ${this.file}`);
      if (job.status !== "failed" && job.status !== "refused") {
        throw new Error(`job ${id} is ${job.status}: only a failed or refused job can be retried`);
      }
      if (job.action === null) throw new Error(`job ${id} has nothing to run`);
      if (job.attempts === 0) {
        throw new Error(`job ${id} was refused on its event's content and never ran (${(job.lastError ?? "").split("\n")[0]}): ` +
          "running it again cannot fix that; the customer needs a new Stripe event with valid values, or run 'fleet provision' by hand");
      }
      this.db.prepare("UPDATE jobs SET status = 'queued', attempts = 0, next_attempt_at = :at, updated_at = :at WHERE id = :id")
        .run({ at: iso(now), id });
      return this.job(id)!;
    });
  }

  /** When the earliest queued job may run (ISO time), or undefined when nothing is queued. */
  nextAttemptAt(): string | undefined {
    const row = this.db.prepare("SELECT min(next_attempt_at) AS at FROM jobs WHERE status = 'queued'").get();
    return text(row?.at) ?? undefined;
  }

  counts(): QueueCounts {
    const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as QueueCounts;
    for (const row of this.db.prepare("SELECT status, count(*) AS n FROM jobs GROUP BY status").all()) {
      counts[String(row.status) as JobStatus] = Number(row.n);
    }
    return counts;
  }

  /** The newest `limit` jobs (optionally of one status), oldest first. */
  list(opts: { status?: JobStatus; limit?: number } = {}): Job[] {
    const rows = this.db.prepare(`SELECT * FROM (SELECT * FROM jobs WHERE (:status IS NULL OR status = :status)
        ORDER BY id DESC LIMIT :limit) ORDER BY id`)
      .all({ status: opts.status ?? null, limit: opts.limit ?? 100 });
    return rows.map(rowToJob);
  }

  eventCount(): number {
    return Number(this.db.prepare("SELECT count(*) AS n FROM events").get()?.n ?? 0);
  }

  /** Per customer, the newest event applied to completion. */
  appliedState(): { environment: string; customer: string; lastEventId: string; lastEventCreated: number; action: JobAction; plan: string | null }[] {
    return this.db.prepare("SELECT * FROM customers ORDER BY environment, customer").all().map((r) => ({
      environment: String(r.environment), customer: String(r.customer), lastEventId: String(r.last_event_id),
      lastEventCreated: Number(r.last_event_created), action: String(r.action) as JobAction, plan: text(r.plan),
    }));
  }
}
