/** `fleet usage`: each customer's CPU, memory, data volume and traffic over a window (src/fleet/usage.ts). */
import * as path from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../config/errors";
import { loadEnvironment } from "../fleet/environment";
import { customerUsage } from "../fleet/usage";
import { parseSince } from "../logs/lines";
import { formatBytes, formatTable } from "../table";
import { formatUsageCsv, formatUsageJson, type UsageRow } from "../usage/usage";
import { projectContext } from "./stacks";

interface UsageOptions {
  env: string;
  since: string;
  until?: string;
  json?: boolean;
  csv?: boolean;
  db?: string;
}

/** The window [since, until) the options name; a ConfigError naming the option otherwise. Pure but for `now`. */
export function usageWindow(opts: { since: string; until?: string }, now = Date.now()): { from: Date; to: Date } {
  const from = parseSince(opts.since, now);
  let to = now;
  if (opts.until !== undefined) {
    try {
      to = parseSince(opts.until, now);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      throw new ConfigError("--until", err.problems.map((p) => ({ ...p, path: "--until" })));
    }
  }
  if (!(from < to)) {
    throw new ConfigError("--since", [{ path: "--since", found: JSON.stringify(opts.since),
      message: `must be before --until (${new Date(to).toISOString()}): the window is from --since up to --until` }]);
  }
  return { from: new Date(from), to: new Date(to) };
}

const percent = (share: number) => `${(share * 100).toFixed(1)}%`;

function tableRow(r: UsageRow): string[] {
  const sampled = r.samples > 0 || r.coverageSeconds > 0;
  const na = "not sampled";
  return [
    r.customer, r.plan || "-", r.stripeCustomer || "-",
    sampled ? `${r.cpuSeconds.toFixed(1)} s (${percent(r.cpuShareOfPlan)})` : na,
    sampled ? `${formatBytes(r.memoryPeakBytes)} (${percent(r.memoryPeakShareOfPlan)})` : na,
    sampled ? `${formatBytes(r.memoryAverageBytes)} (${percent(r.memoryAverageShareOfPlan)})` : na,
    r.dataVolumeBytes === null ? "-" : formatBytes(r.dataVolumeBytes),
    String(r.requests), formatBytes(r.bytesIn), formatBytes(r.bytesOut), String(r.status5xx),
    r.windowSeconds > 0 ? percent(r.coverageSeconds / r.windowSeconds) : "-",
  ];
}

export function registerUsage(program: Command): void {
  program.command("usage")
    .description("each customer's CPU time, memory peak and average against its plan, data volume, and requests and bytes through the edge over a window, with its Stripe customer (from the samples of fleet watch)")
    .requiredOption("--env <environment>", "the environment")
    .option("--since <when>", "the window's start: a duration back (90s, 10m, 2h, 7d) or a time (2026-12-01T00:00:00Z)", "24h")
    .option("--until <when>", "the window's end, not included (default: now); as --since")
    .option("--json", "print JSON")
    .option("--csv", "print CSV (RFC 4180, a header line)")
    .option("--db <path>", "the watcher's state (default <project>/.fleet/watch/watch.db)")
    .action(async (opts: UsageOptions) => {
      if (opts.json && opts.csv) {
        throw new ConfigError("--csv", [{ path: "--csv", found: "with --json", message: "and --json are two formats: choose one" }]);
      }
      const window = usageWindow(opts);
      const env = loadEnvironment(projectContext(), opts.env);
      const { rows, notes } = await customerUsage(env, { ...window, db: opts.db ? path.resolve(opts.db) : undefined });
      for (const n of notes) console.error(`fleet usage: ${n}`);
      if (opts.json) { console.log(formatUsageJson(rows)); return; }
      if (opts.csv) { process.stdout.write(formatUsageCsv(rows)); return; }
      console.log(`${env.name} from ${window.from.toISOString()} to ${window.to.toISOString()} (memory and CPU against the plan; volume size as of now)`);
      console.log(formatTable(["customer", "plan", "stripe", "cpu (of plan)", "memory peak (of plan)", "memory average", "volume",
        "requests", "in", "out", "5xx", "sampled"], rows.map(tableRow)));
    });
}
