/** `fleet logs`: a customer's lines, kept past its containers (src/fleet/logs.ts; docs/logs.md). */
import type { Command } from "commander";
import { parseCustomerId } from "../config/load";
import { loadEnvironment } from "../fleet/environment";
import { customerLogs } from "../fleet/logs";
import { parseGrep, parseSince, parseTail } from "../logs/lines";
import { projectContext } from "./stacks";

interface LogsOptions {
  env: string;
  follow?: boolean;
  since?: string;
  tail?: string;
  grep?: string;
  access?: boolean;
}

export function registerLogs(program: Command): void {
  program.command("logs <customer>")
    .description("a customer's lines, its earlier containers' too (replaced by a plan change, a rollout, a rollback or a move): time, container, stream, line")
    .requiredOption("--env <environment>", "the environment")
    .option("-f, --follow", "then print new lines as they come, across replacements, until interrupted")
    .option("--since <when>", "only lines from then on: a duration back (90s, 10m, 2h, 7d) or a time (2026-12-06T10:00:00Z)")
    .option("--tail <n>", "only the last n lines (before following)")
    .option("--grep <regexp>", "only lines that match (a JavaScript regular expression)")
    .option("--access", "the customer's requests through the edge proxy instead (its access log)")
    .action(async (customer: string, opts: LogsOptions) => {
      // every input checked before anything is read
      parseCustomerId(customer);
      const filter = {
        since: opts.since === undefined ? undefined : parseSince(opts.since),
        grep: opts.grep === undefined ? undefined : parseGrep(opts.grep),
        tail: opts.tail === undefined ? undefined : parseTail(opts.tail),
      };
      const environment = loadEnvironment(projectContext(), opts.env);
      const stop = new AbortController();
      const interrupted = () => stop.abort();
      process.once("SIGINT", interrupted);
      process.once("SIGTERM", interrupted);
      try {
        await customerLogs(environment, { customer, filter, follow: opts.follow, access: opts.access }, {
          line: (text) => { process.stdout.write(`${text}\n`); },
          note: (text) => console.error(`fleet logs: ${text}`),
        }, stop.signal);
      } finally {
        process.off("SIGINT", interrupted);
        process.off("SIGTERM", interrupted);
      }
    });
}
