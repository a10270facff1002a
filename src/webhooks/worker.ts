/**
 * The worker of `fleet serve`: takes jobs from the queue and runs them through the fleet operations,
 * in the same process as the HTTP server but never inside a request.
 *
 * Up to `concurrency` jobs run at once, each for a different customer (the queue hands out one job per
 * customer at a time, in event order). A run that throws a ConfigError (an invalid customer id, plan or
 * environment: nothing was created) fails the job at once; any other error is tried again after
 * retryBaseMs, then twice that, and so on, up to maxAttempts runs, then the job stops as failed with
 * the last reason. The operations are injected (FleetOperations), so tests run the worker on fakes.
 * Before each run `authorize` (authorize.ts: the customer's binding) may refuse the job: it ends
 * refused with the reason, and its operation is never called.
 */
import { ConfigError } from "../config/errors";
import type { Log } from "../pulumi/progress";
import type { Job, JobQueue } from "./queue";
import { explainConfigError } from "./stripeEvents";

/** What a running job hands its operation: who it is, and where its progress lines go. */
export interface JobRun {
  jobId: number;
  eventId: string;
  log: Log;
}

/** The fleet operations a job calls; `fleet serve` wires src/fleet/operations.ts (webhooks/operations.ts). */
export interface FleetOperations {
  /** create or update the customer on this plan (a plan change too); idempotent */
  provision(req: { customer: string; environment: string; plan: string }, run: JobRun): Promise<unknown>;
  /** destroy the customer's stack, keeping its data volume; idempotent */
  deprovision(req: { customer: string; environment: string }, run: JobRun): Promise<unknown>;
  /** whether the customer exists, bound or not (its stack file or its kept data volume); without it: never */
  exists?(req: { customer: string; environment: string }): Promise<boolean>;
}

/** Whether a job may act on its customer (authorize.ts): a refused job ends `refused`, nothing run. */
export type Authorization = { kind: "allow" } | { kind: "refuse"; reason: string };

export interface WorkerOptions {
  /** asked before each run; an error here is a failed attempt like the operation's own */
  authorize?: (job: Job) => Promise<Authorization>;
  /** jobs of different customers at once (default 2) */
  concurrency?: number;
  /** runs of a job before it stops as failed (default 3) */
  maxAttempts?: number;
  /** wait before the first retry; doubled for each further one (default 30 s) */
  retryBaseMs?: number;
  /** longest wait between retries (default 10 min) */
  retryMaxMs?: number;
  /** how often the queue is looked at when nothing wakes the worker (default 1 s) */
  pollMs?: number;
  now?: () => Date;
  log?: Log;
  /** the queue itself failed (disk full, file removed): default rethrows, so the process ends */
  onFatal?: (err: unknown) => void;
}

/** Wait before the retry that follows failed run number `attempt` (1-based). */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

/** A failure that running again cannot fix: invalid names or plan, found before anything was created. */
export function isPermanent(err: unknown): boolean {
  return err instanceof ConfigError || (err instanceof Error && err.name === "ConfigError");
}

export function describeJob(job: Job): string {
  const plan = job.plan ? ` (plan ${job.plan})` : "";
  return `job ${job.id} ${job.action ?? "none"} ${job.environment}/${job.customer ?? "?"}${plan} from ${job.eventType} ${job.eventId}`;
}

const MAX_ERROR_CHARS = 4000;

function errorText(err: unknown): string {
  const text = err instanceof ConfigError ? explainConfigError(err) : err instanceof Error ? err.message : String(err);
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}… (cut)` : text;
}

export class Worker {
  private readonly running = new Map<number, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly pollMs: number;
  private readonly now: () => Date;
  private readonly log: Log;
  private readonly onFatal: (err: unknown) => void;
  private readonly authorize: (job: Job) => Promise<Authorization>;
  private settledWaiters: (() => void)[] = [];

  constructor(private readonly queue: JobQueue, private readonly ops: FleetOperations, opts: WorkerOptions = {}) {
    this.concurrency = opts.concurrency ?? 2;
    this.maxAttempts = opts.maxAttempts ?? 3;
    this.retryBaseMs = opts.retryBaseMs ?? 30_000;
    this.retryMaxMs = opts.retryMaxMs ?? 600_000;
    this.pollMs = opts.pollMs ?? 1000;
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.onFatal = opts.onFatal ?? ((err) => { throw err; });
    this.authorize = opts.authorize ?? (async () => ({ kind: "allow" }));
  }

  /** Jobs running now. */
  get active(): number {
    return this.running.size;
  }

  start(): void {
    this.started = true;
    this.tick();
  }

  /** Something was queued: look at once rather than at the next poll. */
  wake(): void {
    if (this.started) setImmediate(() => this.tick());
  }

  /** Takes no more jobs and waits for the running ones to end. */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.running.values()]);
  }

  /** Resolves once every job has ended (done, failed or ignored): nothing runs, nothing is queued, not even a retry. */
  settled(): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  private isSettled(): boolean {
    return this.running.size === 0 && this.queue.nextAttemptAt() === undefined;
  }

  private tick(): void {
    if (!this.started) return;
    clearTimeout(this.timer);
    try {
      while (this.running.size < this.concurrency) {
        const job = this.queue.claim(this.now());
        if (!job) break;
        this.running.set(job.id, this.run(job));
      }
      if (this.isSettled()) for (const resolve of this.settledWaiters.splice(0)) resolve();
      const next = this.queue.nextAttemptAt();
      const dueIn = next === undefined ? this.pollMs : Math.max(10, Date.parse(next) - this.now().getTime());
      this.timer = setTimeout(() => this.tick(), Math.min(this.pollMs, dueIn));
    } catch (err) {
      this.onFatal(err);
    }
  }

  private async run(job: Job): Promise<void> {
    const started = Date.now();
    const what = describeJob(job);
    const log: Log = (line) => this.log(`[job ${job.id} ${job.customer}] ${line}`);
    this.log(`${what}: started (attempt ${job.attempts} of ${this.maxAttempts})`);
    let failure: unknown;
    let ok = false;
    let refused: string | undefined;
    try {
      const run: JobRun = { jobId: job.id, eventId: job.eventId, log };
      const customer = job.customer!;
      const authorization = await this.authorize(job);
      if (authorization.kind === "refuse") refused = authorization.reason;
      else if (job.action === "deprovision") await this.ops.deprovision({ customer, environment: job.environment }, run);
      else await this.ops.provision({ customer, environment: job.environment, plan: job.plan! }, run);
      ok = true;
    } catch (err) {
      failure = err;
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    try {
      const now = this.now();
      if (refused !== undefined) {
        this.queue.refuse(job.id, refused, now);
        this.log(`${what}: refused: ${refused.split("\n")[0]}`);
      } else if (ok) {
        this.queue.complete(job.id, now);
        this.log(`${what}: done in ${seconds}s`);
      } else if (isPermanent(failure)) {
        this.queue.fail(job.id, errorText(failure), now);
        this.log(`${what}: failed, not retried (invalid request): ${errorText(failure).split("\n")[0]}`);
      } else if (job.attempts >= this.maxAttempts) {
        const reason = `${errorText(failure)}\n  (gave up after ${job.attempts} attempts: fix the cause, then 'fleet jobs --retry ${job.id}')`;
        this.queue.fail(job.id, reason, now);
        this.log(`${what}: failed after ${job.attempts} attempts: ${errorText(failure).split("\n")[0]}`);
      } else {
        const delay = retryDelayMs(job.attempts, this.retryBaseMs, this.retryMaxMs);
        this.queue.retryLater(job.id, errorText(failure), new Date(now.getTime() + delay), now);
        this.log(`${what}: attempt ${job.attempts} failed in ${seconds}s, retrying in ${(delay / 1000).toFixed(1)}s: ${errorText(failure).split("\n")[0]}`);
      }
    } catch (err) {
      this.onFatal(err);
    } finally {
      this.running.delete(job.id);
      this.tick();
    }
  }
}
