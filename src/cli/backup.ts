/** `fleet backup`, `fleet backups`, `fleet restore`: restic backups of customers' data (docs/backups.md). */
import type { Command } from "commander";
import { parseCustomerId } from "../config/load";
import {
  backup, backupEnvironment, drillBackups, initEnvironmentBackups, pruneBackups, restore, snapshotsOf,
} from "../fleet/operations";
import { formatBytes, formatTable } from "../table";
import { projectContext } from "./stacks";

export function registerBackup(program: Command): void {
  const cmd = program.command("backup").argument("[customer]", "the customer to back up now")
    .description("back up a customer's data now (a consistent snapshot: it is paused while restic reads it), or --all, or --due (the schedule)")
    // not a required option: it would be required of `fleet backup drill` too
    .option("--env <environment>", "the environment (required)")
    .option("--all", "every customer of the environment, one after another")
    .option("--due", "the customers whose scheduled backup is due (backup.schedule, spread over it) or whose last one failed: for a timer")
    .action(async (customer: string | undefined, opts: { env?: string; all?: boolean; due?: boolean }) => {
      if (opts.env === undefined) throw new Error("required option '--env <environment>' not specified");
      const env = opts.env;
      const ctx = projectContext();
      const chosen = [customer !== undefined, opts.all === true, opts.due === true].filter(Boolean).length;
      if (chosen !== 1) throw new Error("name one customer, or give --all or --due (one of them)");
      if (customer !== undefined) {
        parseCustomerId(customer);
        const r = await backup(ctx, { customer, environment: env });
        console.log(`${customer}: snapshot ${r.snapshot!.slice(0, 8)}: ${r.files} files, ${formatBytes(r.bytes!)} (${formatBytes(r.added!)} new), paused ${r.pauseMs} ms`);
        return;
      }
      const r = await backupEnvironment(ctx, env, { dueOnly: opts.due === true });
      console.log(`${env}: ${r.ok.length} backed up, ${r.failed.length} failed${opts.due ? `, ${r.skipped.length} not due` : ""}`);
      for (const f of r.failed) console.log(`  ${f.customer}: FAILED: ${f.error}`);
      if (r.failed.length > 0) process.exitCode = 1;
    });

  cmd.command("init").description("make the environment's backup password (a Pulumi secret of its stack) when it has none")
    .requiredOption("--env <environment>", "the environment")
    .action(async (opts: { env: string }) => {
      const r = await initEnvironmentBackups(projectContext(), opts.env);
      console.log(`${opts.env}: backups go to ${r.repository}/<customer>; password ${r.created ? "made" : "already set"}`);
    });

  cmd.command("drill").description("restore each customer's newest snapshot into a scratch volume, check every file, boot its image there without a network")
    .requiredOption("--env <environment>", "the environment")
    .action(async (opts: { env: string }) => {
      const results = await drillBackups(projectContext(), opts.env);
      console.log(results.length === 0 ? "no customers" : formatTable(["customer", "drill", "snapshot", "files", "size", "seconds", "error"],
        results.map((r) => [r.customer, r.ok ? "passed" : "FAILED", r.snapshot?.slice(0, 8) ?? "-", String(r.files ?? "-"),
          r.bytes === undefined ? "-" : formatBytes(r.bytes), (r.durationMs / 1000).toFixed(1), r.error ?? ""])));
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    });

  cmd.command("prune").description("apply backup.retention to every customer's repository, with a credential that may delete (the fleet host's may only append)")
    .requiredOption("--env <environment>", "the environment")
    .requiredOption("--repository <repository>", "the repository with delete rights, written like backup.repository")
    .requiredOption("--credential-file <file>", "a file holding that account's password (read, never stored)")
    .option("--username <user>", "that account (default: backup.username)")
    .action(async (opts: { env: string; repository: string; credentialFile: string; username?: string }) => {
      const results = await pruneBackups(projectContext(), opts.env, { repository: opts.repository, credentialFile: opts.credentialFile, username: opts.username });
      console.log(results.length === 0 ? "no snapshots" : formatTable(["customer", "before", "kept", "removed"],
        results.map((r) => [r.customer, String(r.before), String(r.kept), String(r.removed)])));
    });

  program.command("backups <customer>").description("a customer's snapshots: id, time, why, size")
    .requiredOption("--env <environment>", "the environment")
    .option("--json", "print JSON")
    .action(async (customer: string, opts: { env: string; json?: boolean }) => {
      parseCustomerId(customer);
      const list = await snapshotsOf(projectContext(), { customer, environment: opts.env });
      if (opts.json) { console.log(JSON.stringify(list, null, 2)); return; }
      console.log(list.length === 0 ? `${customer}: no snapshots` : formatTable(["snapshot", "time", "reason", "files", "size"],
        list.map((s) => [s.shortId, s.time.replace(/\.\d+/, ""), s.tags.find((t) => t.startsWith("hf-reason="))?.slice(10) ?? "-",
          String(s.files ?? "-"), s.bytes === undefined ? "-" : formatBytes(s.bytes)])));
    });

  program.command("restore <customer>")
    .description("restore a customer's data from a snapshot: checked in a scratch volume, a safety snapshot of the current data first, then swapped in and the customer restarted")
    .requiredOption("--env <environment>", "the environment")
    .option("--snapshot <id>", "the snapshot (default: the newest); see 'fleet backups'")
    .option("--into <volume>", "only restore into this new volume, for inspection; the customer is not touched")
    .option("--node <node>", "target: swarm: restore on this node and run the customer there (its own node was lost)")
    .action(async (customer: string, opts: { env: string; snapshot?: string; into?: string; node?: string }) => {
      parseCustomerId(customer);
      const r = await restore(projectContext(), { customer, environment: opts.env, snapshot: opts.snapshot, into: opts.into, node: opts.node });
      console.log(opts.into
        ? `${customer}: snapshot ${r.snapshot.shortId} restored into volume ${r.volume}: ${r.files} files, ${formatBytes(r.bytes)} (checked)`
        : `${customer}: restored snapshot ${r.snapshot.shortId} (${r.files} files, ${formatBytes(r.bytes)})${r.node ? ` on ${r.node}` : ""}; healthy; ` +
          `the data it replaced is snapshot ${r.safety?.slice(0, 8)}`);
    });
}
