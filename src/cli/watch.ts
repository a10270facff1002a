/**
 * `fleet watch`: the watcher (src/watch/watcher.ts) as one long-running process, with Prometheus
 * metrics on --listen. `fleet status`: its view of an environment, read from its store.
 */
import { createHash } from "node:crypto";
import * as path from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../config/errors";
import { loadEnvironment } from "../fleet/environment";
import { jobsReader, watchedEnvironments, watchStatus } from "../fleet/watch";
import { withWaitingLock } from "../project/lock";
import { formatTable } from "../table";
import { parseListen } from "../webhooks/config";
import { WatchMetrics } from "../watch/metrics";
import { defaultWatchStorePath, WatchStore } from "../watch/store";
import { Watcher } from "../watch/watcher";
import { projectContext } from "./stacks";

export const DEFAULT_METRICS_LISTEN = "127.0.0.1:9464";

function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
}

async function watch(opts: { env: string[]; listen: string; db?: string }): Promise<void> {
  const ctx = projectContext();
  const listen = parseListen(opts.listen);
  const dbPath = opts.db ? path.resolve(opts.db) : defaultWatchStorePath(ctx.projectDir);
  const environments = await watchedEnvironments(ctx, opts.env);
  const lock = `watch.${createHash("sha256").update(dbPath).digest("hex").slice(0, 16)}`;
  await withWaitingLock(ctx.projectDir, lock, async () => {
    const store = WatchStore.open(dbPath);
    const metrics = new WatchMetrics();
    const { server, port } = await metrics.serve(listen.host, listen.port).catch((err: NodeJS.ErrnoException) => {
      store.close();
      throw err.code === "EADDRINUSE" || err.code === "EACCES"
        ? new ConfigError("--listen", [{ path: "--listen", found: JSON.stringify(opts.listen),
          message: `cannot be listened on (${err.code}: another program, or another fleet watch, has it): choose another address with --listen host:port` }])
        : err;
    });
    const log = (line: string) => console.error(`fleet watch: ${line}`);
    const watcher = new Watcher({ environments, store, metrics, log, jobs: jobsReader(ctx.projectDir) });
    console.log(`fleet watch: metrics on http://${listen.host}:${port}/metrics; watching ${environments.map((e) =>
      `${e.env.name} (every ${e.env.config.watch.intervalSeconds}s; alerts to ${e.sinks.map((s) => s.name).join(", ") || "no sink: metrics and fleet status only"})`).join(", ")}; state ${dbPath}`);
    watcher.start();
    const signal = await waitForStopSignal();
    log(`${signal}: stopping`);
    await watcher.stop();
    server.close();
    store.close();
    log("stopped");
  }, 10);
}

export function registerWatch(program: Command): void {
  program.command("watch").description("watch every customer between deployments: probes through the edge, engine events, alerts on transitions, Prometheus /metrics")
    .option("--env <environment>", "an environment to watch (repeat it; default: every environment of the project)", (v: string, all: string[]) => [...all, v], [] as string[])
    .option("--listen <host:port>", "where /metrics is served", DEFAULT_METRICS_LISTEN)
    .option("--db <path>", "the watcher's state (default <project>/.fleet/watch/watch.db)")
    .action(watch);

  program.command("status [customer]").description("the watcher's view: each customer's status (up, degraded, down) since when and why, and the checks of what fleet owns")
    .requiredOption("--env <environment>", "the environment")
    .option("--db <path>", "the watcher's state (default <project>/.fleet/watch/watch.db)")
    .option("--json", "print JSON")
    .action((customer: string | undefined, opts: { env: string; db?: string; json?: boolean }) => {
      const env = loadEnvironment(projectContext(), opts.env);
      const rows = watchStatus(env, customer, opts.db ? path.resolve(opts.db) : undefined);
      if (opts.json) { console.log(JSON.stringify(rows, null, 2)); return; }
      if (rows.length === 0) {
        console.log(customer ? `${customer}: the watcher has not seen it (is 'fleet watch' running, and is ${customer} deployed?)` : "the watcher has seen nothing in this environment yet");
        return;
      }
      console.log(formatTable(["environment", "customer / check", "status", "since", "reason", "last look"], rows.map((r) => [
        r.environment, r.subject, r.status, r.since.replace(/\.\d+Z$/, "Z"), r.reason || "-",
        `${r.updatedAt.replace(/\.\d+Z$/, "Z")}${r.stale ? " (OLD: is fleet watch running?)" : ""}`])));
      if (rows.some((r) => r.status === "down")) process.exitCode = 3;
    });
}
