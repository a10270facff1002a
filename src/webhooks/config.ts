/**
 * The settings of `fleet serve`, parsed once from its options and environment variables, with errors
 * that name the option and the fix (ConfigError, like every other fleet entry point).
 *
 *   --env (default prod)  --listen host:port (default 127.0.0.1:8787)  --concurrency (default 2)
 *   --db (default <project>/.fleet/webhooks/queue.db)  --max-attempts (3)  --retry-delay seconds (30)
 *   STRIPE_WEBHOOK_SECRET (required)  FLEET_JOBS_TOKEN (optional: enables GET /jobs)
 *   FLEET_STATUS_TOKEN (optional, at least 16 characters: enables the status page, /status)
 */
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { parseEnvironmentName } from "../config/targets";
import { defaultQueuePath } from "./queue";

export const DEFAULT_LISTEN = "127.0.0.1:8787";

export interface ServeOptions {
  env?: string;
  listen?: string;
  concurrency?: string;
  db?: string;
  maxAttempts?: string;
  retryDelay?: string;
}

export interface ServeSettings {
  environment: string;
  host: string;
  port: number;
  concurrency: number;
  dbPath: string;
  maxAttempts: number;
  retryBaseMs: number;
  secret: string;
  jobsToken?: string;
  statusToken?: string;
}

/** A status page token shorter than this is refused: its sign-in form can be reached by anyone who reaches the server. */
export const MIN_STATUS_TOKEN_LENGTH = 16;

function invalid(source: string, found: unknown, message: string): ConfigError {
  return new ConfigError(source, [{ path: source, found: JSON.stringify(found), message }]);
}

/** `127.0.0.1:8787`, `[::1]:8787`, `0.0.0.0:8787` (port 0: any free port, for tests). */
export function parseListen(raw: string, source = "--listen"): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(raw);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw invalid(source, raw, "must be host:port, e.g. 127.0.0.1:8787 or [::1]:8787 (port 0 to 65535)");
  return { host: match[1] ?? match[2]!, port };
}

export function parseIntegerOption(raw: string, source: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw invalid(source, raw, `must be a whole number from ${min} to ${max}`);
  }
  return n;
}

/** The queue file: --db relative to the current directory, else the project's default. */
export function queuePath(projectDir: string, db?: string): string {
  return db ? path.resolve(db) : defaultQueuePath(projectDir);
}

export function serveSettings(opts: ServeOptions, env: NodeJS.ProcessEnv, projectDir: string): ServeSettings {
  const environment = parseEnvironmentName(opts.env ?? "prod", "--env").environment;
  const { host, port } = parseListen(opts.listen ?? DEFAULT_LISTEN);
  const secret = env.STRIPE_WEBHOOK_SECRET ?? "";
  if (secret.trim() === "") {
    throw invalid("STRIPE_WEBHOOK_SECRET", env.STRIPE_WEBHOOK_SECRET,
      "must be set to the signing secret (whsec_...) of the Stripe webhook endpoint that points at this server");
  }
  const jobsToken = env.FLEET_JOBS_TOKEN?.trim() || undefined;
  const statusToken = env.FLEET_STATUS_TOKEN?.trim() || undefined;
  if (statusToken && statusToken.length < MIN_STATUS_TOKEN_LENGTH) {
    throw invalid("FLEET_STATUS_TOKEN", "(hidden)", `must be at least ${MIN_STATUS_TOKEN_LENGTH} characters (e.g. openssl rand -base64 32), or unset to disable the status page`);
  }
  return {
    environment, host, port, secret, ...(jobsToken ? { jobsToken } : {}), ...(statusToken ? { statusToken } : {}),
    concurrency: parseIntegerOption(opts.concurrency ?? "2", "--concurrency", 1, 32),
    dbPath: queuePath(projectDir, opts.db),
    maxAttempts: parseIntegerOption(opts.maxAttempts ?? "3", "--max-attempts", 1, 20),
    retryBaseMs: parseIntegerOption(opts.retryDelay ?? "30", "--retry-delay", 0, 3600) * 1000,
  };
}
