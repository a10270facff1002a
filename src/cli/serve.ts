/**
 * `fleet serve`: Stripe webhooks in, a durable job queue, fleet operations out (src/webhooks/).
 * `fleet jobs`: the queue, read straight from its database file.
 */
import { createHash } from "node:crypto";
import type { Command } from "commander";
import { FLEET_SECRETS } from "../pulumi/childEnv";
import { withWaitingLock } from "../project/lock";
import { formatTable } from "../table";
import { parseIntegerOption, queuePath, serveSettings, type ServeOptions } from "../webhooks/config";
import { bindingAuthorizer } from "../webhooks/authorize";
import { BindingStore, defaultBindingsPath } from "../project/bindings";
import { checkReady, environmentTier, loadOperations } from "../webhooks/operations";
import { JOB_STATUSES, JobQueue, type Job, type JobStatus } from "../webhooks/queue";
import { Worker } from "../webhooks/worker";
import { projectContext } from "./stacks";

/** One `fleet serve` per queue file: a second one waits briefly, then fails naming the first. */
export function serveLock(dbPath: string): string {
  return `serve.${createHash("sha256").update(dbPath).digest("hex").slice(0, 16)}`;
}

function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => resolve(signal);
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

const short = (s: string | null, n: number) => {
  const line = (s ?? "").split("\n")[0]!;
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
};

const eventTime = (created: number) => new Date(created * 1000).toISOString().replace(/\.000Z$/, "Z");

/** The `fleet jobs` table: one job a line, newest last. */
export function formatJobs(jobs: Job[]): string {
  if (jobs.length === 0) return "no jobs";
  const head = ["job", "status", "customer", "action", "plan", "event", "event time", "attempts", "updated", "reason"];
  const rows = jobs.map((j) => [
    String(j.id), j.status, `${j.environment}/${j.customer ?? "-"}`, j.action ?? "-", j.plan ?? "-", `${j.eventType} ${j.eventId}`,
    eventTime(j.eventCreated), j.interrupted > 0 ? `${j.attempts} (+${j.interrupted} interrupted)` : String(j.attempts),
    j.updatedAt.replace(/\.\d{3}Z$/, "Z"), short(j.lastError ?? j.note, 100),
  ]);
  return formatTable(head, rows);
}

async function serve(opts: ServeOptions): Promise<void> {
  // the server brings in the Stripe SDK: loaded by `fleet serve` only, not by every fleet command
  const { createWebhookServer, listen, WEBHOOK_PATH } = await import("../webhooks/server");
  const { createStatusRoutes } = await import("../statusPage/server");
  const { readStatus } = await import("../statusPage/data");
  const { collectorLogReader } = await import("../statusPage/logs");
  const ctx = projectContext();
  const settings = serveSettings(opts, process.env, ctx.projectDir);
  // read once; gone from process.env before any child starts (the Automation API adds process.env to
  // its commands' environment; workspace.ts unsets what is not on the allowlist as well)
  for (const name of FLEET_SECRETS) delete process.env[name];
  const { ops, source } = loadOperations(ctx);
  let tier;
  if (source === "fleet") tier = checkReady(ctx, settings.environment).config.tier;
  else {
    console.error(`fleet serve: TEST MODE: jobs run with the ${source}; nothing is deployed`);
    tier = environmentTier(ctx, settings.environment);
  }
  await withWaitingLock(ctx.projectDir, serveLock(settings.dbPath), async () => {
    const queue = JobQueue.open(settings.dbPath);
    const bindings = BindingStore.open(defaultBindingsPath(ctx.projectDir));
    const requeued = queue.requeueInterrupted(new Date(), settings.maxAttempts); // one that used its last attempt fails
    if (requeued > 0) console.error(`fleet serve: ${requeued} job(s) interrupted by the end of the previous process are queued again`);
    const worker = new Worker(queue, ops, {
      concurrency: settings.concurrency, maxAttempts: settings.maxAttempts, retryBaseMs: settings.retryBaseMs,
      authorize: bindingAuthorizer(bindings, ops.exists ? (req) => ops.exists!(req) : async () => false),
      onFatal: (err) => {
        console.error(`fleet serve: the job queue failed, stopping (unfinished jobs run again at the next start): ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    });
    const server = createWebhookServer({
      queue, environment: settings.environment, tier, secret: settings.secret, jobsToken: settings.jobsToken,
      onQueued: () => worker.wake(),
      health: () => ({ operations: source, running: worker.active, concurrency: settings.concurrency }),
      status: createStatusRoutes({
        token: settings.statusToken,
        data: () => readStatus(ctx, { jobs: (limit) => queue.list({ limit }) }),
        logs: collectorLogReader(ctx),
      }),
    });
    const address = await listen(server, settings.host, settings.port);
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    console.log(`fleet serve: listening on http://${host}:${address.port}${WEBHOOK_PATH} ` +
      `(environment ${settings.environment}, queue ${settings.dbPath}, concurrency ${settings.concurrency}); ` +
      `status page ${settings.statusToken ? `on http://${host}:${address.port}/status` : "disabled (FLEET_STATUS_TOKEN is not set)"}`);
    worker.start();
    const signal = await waitForStopSignal();
    console.error(`fleet serve: ${signal}: no new events; waiting for ${worker.active} running job(s) to finish`);
    server.close();
    server.closeIdleConnections();
    await worker.stop();
    queue.close();
    bindings.close();
    console.error("fleet serve: stopped");
  }, 10);
}

function jobs(opts: { db?: string; json?: boolean; status?: string; limit: string; retry?: string }): void {
  const file = queuePath(projectContext().projectDir, opts.db);
  if (opts.retry !== undefined) {
    const id = parseIntegerOption(opts.retry, "--retry", 1, Number.MAX_SAFE_INTEGER);
    const queue = JobQueue.open(file);
    try {
      const job = queue.retryFailed(id, new Date());
      console.log(`job ${job.id} queued again (${job.action} ${job.environment}/${job.customer}); a running 'fleet serve' on ${file} picks it up within a second`);
    } finally {
      queue.close();
    }
    return;
  }
  if (opts.status !== undefined && !(JOB_STATUSES as readonly string[]).includes(opts.status)) {
    throw new Error(`--status must be one of ${JOB_STATUSES.join(", ")} (found ${JSON.stringify(opts.status)})`);
  }
  const limit = parseIntegerOption(opts.limit, "--limit", 1, 100_000);
  const queue = JobQueue.open(file, { readOnly: true });
  try {
    const list = queue.list({ limit, ...(opts.status ? { status: opts.status as JobStatus } : {}) });
    if (opts.json) {
      console.log(JSON.stringify({ queue: file, counts: queue.counts(), jobs: list }, null, 2));
      return;
    }
    const counts = Object.entries(queue.counts()).map(([s, n]) => `${n} ${s}`).join(", ");
    console.log(formatJobs(list));
    console.log(`\n${file}: ${counts}`);
  } finally {
    queue.close();
  }
}

export function registerServe(program: Command): void {
  program.command("serve").description("receive Stripe webhooks and run them as jobs: provision, plan change, deprovision")
    .option("--env <environment>", "environment customers are provisioned in", "prod")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8787")
    .option("--concurrency <n>", "jobs of different customers at once", "2")
    .option("--db <path>", "job queue file (default <project>/.fleet/webhooks/queue.db)")
    .option("--max-attempts <n>", "runs of a failing job before it stops as failed", "3")
    .option("--retry-delay <seconds>", "wait before the first retry, doubled for each next one", "30")
    .action(serve);

  program.command("jobs").description("the webhook job queue of 'fleet serve', read from its file")
    .option("--db <path>", "job queue file (default <project>/.fleet/webhooks/queue.db)")
    .option("--status <status>", `only jobs in this status (${JOB_STATUSES.join(", ")})`)
    .option("--limit <n>", "the newest n jobs", "50")
    .option("--json", "print JSON")
    .option("--retry <job>", "queue a failed job again, after fixing its cause")
    .action(jobs);
}
