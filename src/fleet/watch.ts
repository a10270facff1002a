/**
 * `fleet watch` and `fleet status` as operations: the watcher's environments with their alert sinks
 * (from each environment's config and secrets), and the watcher's view read back from its store.
 */
import * as fs from "node:fs";
import { parseEnvironmentName } from "../config/targets";
import type { FleetContext } from "../project/context";
import { environmentNames } from "../project/stackFiles";
import { readStackSecrets } from "../pulumi/stacks";
import type { Sink } from "../watch/deliver";
import { healthKey, type CustomerHealth } from "../watch/health";
import { mailSink, parseWebhookUrl, webhookSink, WEBHOOK_SETTING } from "../watch/sinks";
import { defaultWatchStorePath, WatchStore } from "../watch/store";
import type { JobsView, WatchedEnvironment } from "../watch/watcher";
import { defaultQueuePath, JobQueue } from "../webhooks/queue";
import { loadEnvironment, type Environment } from "./environment";

export const SMTP_PASSWORD_SETTING = "hardened-fleet:smtpPassword";

/** The alert sinks of an environment: a chat webhook when its secret is set, mail when watch.email is. */
export async function sinksOf(env: Environment): Promise<Sink[]> {
  const target = parseEnvironmentName(env.name, "--env");
  const secrets = await readStackSecrets(env.ctx, target, [WEBHOOK_SETTING, SMTP_PASSWORD_SETTING], env.stackSettings(target));
  const sinks: Sink[] = [];
  const url = secrets[WEBHOOK_SETTING];
  if (url) {
    parseWebhookUrl(url);
    const sink = webhookSink({ url });
    sinks.push({ name: `webhook:${env.name}`, send: (a) => sink.send(a) });
  }
  const email = env.config.watch.email;
  if (email) {
    const password = secrets[SMTP_PASSWORD_SETTING];
    if (email.username && !password) {
      throw new Error(`environment '${env.name}' sends alert mail as ${email.username} but has no SMTP password: ` +
        `set it with 'pulumi config set --secret ${SMTP_PASSWORD_SETTING} -s ${env.name}' (it prompts for it)`);
    }
    const sink = mailSink({ host: email.host, port: email.port, from: email.from, to: email.to, username: email.username, password });
    sinks.push({ name: `email:${env.name}`, send: (a) => sink.send(a) });
  }
  return sinks;
}

/** The environments `fleet watch` watches: those named, else every environment of the project. */
export async function watchedEnvironments(ctx: FleetContext, names: string[] | undefined): Promise<WatchedEnvironment[]> {
  const list = names && names.length > 0 ? names : environmentNames(ctx.projectDir);
  if (list.length === 0) throw new Error("this project has no environment to watch (no Pulumi.<environment>.yaml with role environment)");
  const out: WatchedEnvironment[] = [];
  for (const name of list) {
    const env = loadEnvironment(ctx, name);
    out.push({ env, sinks: await sinksOf(env) });
  }
  return out;
}

/** Failed payment-webhook jobs (the queue of `fleet serve`), read without writing; undefined when there is no queue. */
export function jobsReader(projectDir: string): () => JobsView | undefined {
  const file = defaultQueuePath(projectDir);
  return () => {
    if (!fs.existsSync(file)) return undefined;
    const queue = JobQueue.open(file, { readOnly: true });
    try {
      const failed = queue.list({ status: "failed", limit: 1000 }).map((j) => ({ id: j.id, environment: j.environment, customer: j.customer, error: j.lastError }));
      return { counts: queue.counts(), failed };
    } finally {
      queue.close();
    }
  };
}

export interface StatusRow {
  environment: string;
  /** the customer, or "<check>:<subject>" */
  subject: string;
  status: CustomerHealth["status"];
  since: string;
  reason: string;
  /** when the watcher last saved it */
  updatedAt: string;
  /** the watcher has not looked for more than three intervals: its view is old */
  stale: boolean;
}

/** The watcher's view of an environment (one customer and its checks when `customer` is given), from its store. */
export function watchStatus(env: Environment, customer?: string, dbPath = defaultWatchStorePath(env.ctx.projectDir), now = new Date()): StatusRow[] {
  const store = WatchStore.open(dbPath, { readOnly: true });
  try {
    const staleAfterMs = 3 * env.config.watch.intervalSeconds * 1000 + 30_000;
    // a state is written when it changes; the watcher's last round of probes says how fresh they all are
    const round = store.lastRound(env.name);
    return store.allHealth()
      .filter((h) => h.environment === env.name && (customer === undefined || h.customer === customer))
      .map((h) => {
        const saved = store.updatedAt(h.environment, healthKey(h)) ?? h.since;
        const updatedAt = round && round > saved ? round : saved;
        return {
          environment: h.environment, subject: healthKey(h), status: h.status, since: h.since, reason: h.reason ?? "",
          updatedAt, stale: now.getTime() - Date.parse(updatedAt) > staleAfterMs,
        };
      });
  } finally {
    store.close();
  }
}

/** The watcher's view of each customer of an environment, when its store exists (for `fleet list`). */
export function watcherView(env: Environment, now = new Date()): Map<string, StatusRow> {
  const file = defaultWatchStorePath(env.ctx.projectDir);
  if (!fs.existsSync(file)) return new Map();
  return new Map(watchStatus(env, undefined, file, now).filter((r) => !r.subject.includes(":")).map((r) => [r.subject, r]));
}
