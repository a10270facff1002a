/**
 * The HTTP side of `fleet serve` (node:http, no framework). It only records: a request never waits
 * for a deployment, so Stripe gets its answer in milliseconds.
 *
 *  POST /webhooks/stripe  verify the signature (400 and nothing written otherwise), record the event
 *                         and its job in one transaction, then 200; a known event id is a duplicate:
 *                         200, nothing written
 *  GET  /healthz          200 with the queue's counts per status
 *  GET  /jobs             the jobs as JSON (?status=failed&limit=50); needs Authorization: Bearer <token>
 *  /status, /status/*     the operator's status page (src/statusPage/server.ts), when given
 */
import { createHash, timingSafeEqual } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Log } from "../pulumi/progress";
import { JOB_STATUSES, type JobQueue, type JobStatus } from "./queue";
import { DEFAULT_TOLERANCE_SECONDS, verifyStripeEvent, WebhookRejected } from "./signature";
import type { EnvironmentConfig } from "../config/schema";
import { refuseTestModeInProduction } from "./authorize";
import { decideEvent } from "./stripeEvents";
import type { StatusRoutes } from "../statusPage/server";

export const WEBHOOK_PATH = "/webhooks/stripe";

/** Stripe's events are a few kilobytes; anything far larger is not one. */
const MAX_BODY_BYTES = 1024 * 1024;

export interface WebhookServerOptions {
  queue: JobQueue;
  /** the environment customers are provisioned in (already validated) */
  environment: string;
  /** its tier: a test-mode event never acts on a production one */
  tier: EnvironmentConfig["tier"];
  /** the endpoint's signing secret (STRIPE_WEBHOOK_SECRET) */
  secret: string;
  toleranceSeconds?: number;
  /** bearer token for GET /jobs (FLEET_JOBS_TOKEN); without one, /jobs answers 401 */
  jobsToken?: string;
  /** called after a new job was queued (wakes the worker) */
  onQueued?: () => void;
  /** extra fields for /healthz (e.g. which operations run the jobs) */
  health?: () => Record<string, unknown>;
  /** the status page's routes (src/statusPage/server.ts) */
  status?: StatusRoutes;
  now?: () => Date;
  log?: Log;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        chunks.length = 0; // the rest is read and dropped; the answer closes the connection
        reject(new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes: not a Stripe event`));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Constant-time comparison of a presented bearer token with the configured one. */
export function bearerMatches(header: string | undefined, token: string | undefined): boolean {
  if (!token || !header) return false;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) return false;
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(match[1]!), digest(token));
}

function jobsQuery(url: URL): { status?: JobStatus; limit: number } {
  const status = url.searchParams.get("status");
  if (status !== null && !(JOB_STATUSES as readonly string[]).includes(status)) {
    throw new HttpError(400, `status must be one of ${JOB_STATUSES.join(", ")}`);
  }
  const limitText = url.searchParams.get("limit") ?? "100";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new HttpError(400, "limit must be an integer from 1 to 1000");
  return { ...(status ? { status: status as JobStatus } : {}), limit };
}

export function createWebhookServer(opts: WebhookServerOptions): http.Server {
  const now = opts.now ?? (() => new Date());
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const tolerance = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;

  async function stripeWebhook(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await readBody(req);
    let event;
    try {
      event = verifyStripeEvent(raw, req.headers["stripe-signature"], opts.secret, tolerance);
    } catch (err) {
      if (err instanceof WebhookRejected) throw new HttpError(400, err.message);
      throw err;
    }
    const decision = refuseTestModeInProduction(decideEvent(event, opts.environment), event.livemode, opts.tier, opts.environment);
    const { duplicate, job } = opts.queue.accept(event, opts.environment, decision, now());
    if (!duplicate) {
      const why = job.lastError ?? job.note;
      log(`event ${event.id} ${event.type}: job ${job.id} ${job.status}${job.action ? ` ${job.action} ${job.customer}` : ""}` +
        `${why ? `: ${why.split("\n")[0]}` : ""}`);
      if (job.status === "queued") opts.onQueued?.();
    }
    send(res, 200, { received: true, duplicate, job: job.id, status: job.status, ...(job.note ? { note: job.note } : {}) });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fleet.invalid");
    const route = (path: string, method: string) => {
      if (url.pathname !== path) return false;
      if (req.method !== method) throw new HttpError(405, `${path} takes ${method}`, { allow: method });
      return true;
    };
    if (route(WEBHOOK_PATH, "POST")) return stripeWebhook(req, res);
    if (opts.status?.owns(url.pathname)) return opts.status.handle(req, res, url);
    if (route("/healthz", "GET")) {
      send(res, 200, { status: "ok", environment: opts.environment, queue: opts.queue.counts(), ...opts.health?.() });
      return;
    }
    if (route("/jobs", "GET")) {
      if (!bearerMatches(req.headers.authorization, opts.jobsToken)) {
        const why = opts.jobsToken ? "needs Authorization: Bearer <FLEET_JOBS_TOKEN>" : "is disabled: FLEET_JOBS_TOKEN is not set on the server";
        throw new HttpError(401, `/jobs ${why}`, { "www-authenticate": 'Bearer realm="fleet"' });
      }
      send(res, 200, { jobs: opts.queue.list(jobsQuery(url)) });
      return;
    }
    throw new HttpError(404, `no such endpoint: ${url.pathname} (POST ${WEBHOOK_PATH}, GET /healthz, GET /jobs${opts.status ? ", GET /status" : ""})`);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        if (err.status === 400) log(`${req.method} ${req.url}: 400 ${err.message}`);
        if (!res.headersSent) send(res, err.status, { error: err.message }, { ...err.headers, ...(err.status === 413 ? { connection: "close" } : {}) });
        return;
      }
      // e.g. the queue could not record the event: Stripe gets a 500 and delivers it again later
      log(`${req.method} ${req.url}: 500 ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      const error = req.url?.startsWith(WEBHOOK_PATH) ? "the event could not be recorded; it will be accepted when Stripe retries" : "internal error";
      if (!res.headersSent) send(res, 500, { error });
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return server;
}

/** Listens on host:port (port 0: any free port) and resolves with the address actually bound. */
export function listen(server: http.Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
