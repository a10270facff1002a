#!/usr/bin/env node
/**
 * The newcomer's demo, not an operator command: `node dist/demo/docker.js` (what `npm run demo` runs)
 * deploys the staging environment and two demo customers on the local engine, then shows what it made.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Command } from "commander";
import { auditFleet, formatAuditTable } from "../src/audit/audit";
import { projectContext, summarize } from "../src/cli/stacks";
import { readEnvironmentConfig } from "../src/project/stackFiles";
import { engineFor } from "../src/engine/connection";
import { backupEnvironment, drillBackups, edgeCaCertificate, getThroughEdge, provision, upStack } from "../src/fleet/operations";
import { formatBytes, formatTable } from "../src/table";
import { edgeNames, logCollectorNames } from "../src/hardening/names";
import { customerLogs } from "../src/fleet/logs";
import { startDemoServices } from "./statusPage";
import { ensureDemoDatabase, supplyChainDemo } from "./supplyChain";
import { loadEnvironment } from "../src/fleet/environment";
import { watchStatus } from "../src/fleet/watch";
import { WatchMetrics } from "../src/watch/metrics";
import { defaultWatchStorePath, WatchStore } from "../src/watch/store";
import { Watcher } from "../src/watch/watcher";

export const DEMO_CUSTOMERS = [
  { customer: "acme", plan: "starter" },
  { customer: "globex", plan: "standard" },
] as const;

export function buildDockerDemoCli(): Command {
  return new Command("demo/docker")
    .description("deploy staging (with its edge proxy) and two demo customers to the local Docker engine, request each over HTTPS, then audit them")
    .showHelpAfterError()
    .action(async () => {
      const ctx = projectContext();
      // the demo's vulnerability database (one real advisory), before staging scans its image
      ensureDemoDatabase(ctx.projectDir);
      const summaries = [summarize(await upStack(ctx, "staging"))];
      const urls: string[] = [];
      const urlOf = new Map<string, string>();
      for (const c of DEMO_CUSTOMERS) {
        const r = await provision(ctx, { customer: c.customer, environment: "staging", plan: c.plan });
        summaries.push(summarize(r));
        urlOf.set(c.customer, String(r.outputs.url));
        urls.push(`  ${String(r.outputs.customerId).padEnd(8)} ${r.outputs.url}  plan ${r.outputs.plan}, version ${r.outputs.version}, container ${r.outputs.containerName}, volume ${r.outputs.dataVolumeName}`);
      }
      console.log(["", "deployments:", ...summaries.map((s) => `  ${s}`), "", "customers:", ...urls, ""].join("\n"));
      // each customer through the edge proxy, over HTTPS, trusting only the environment's local CA
      const { edge } = readEnvironmentConfig(ctx.projectDir, "staging");
      const ca = edge.tls === "internal" ? await edgeCaCertificate(ctx, "staging") : undefined;
      const caFile = path.join(ctx.projectDir, ".fleet", "staging-edge-ca.pem");
      if (ca) fs.writeFileSync(caFile, ca);
      const answers: string[] = [];
      for (const c of DEMO_CUSTOMERS) {
        const url = `${urlOf.get(c.customer)}/`;
        const r = await getThroughEdge(edge.address, url, ca);
        answers.push(`  GET ${url} -> ${r.status} ${r.body.trim().slice(0, 100)}`);
        if (r.status !== 200) process.exitCode = 1;
      }
      const u = new URL(urlOf.get(DEMO_CUSTOMERS[0].customer)!);
      console.log(["through the edge proxy (HTTPS, certificate checked against the local CA):", ...answers, "",
        "try it:", `  curl --cacert ${path.relative(process.cwd(), caFile) || caFile} --resolve ${u.hostname}:${u.port || 443}:${edge.address} ${u.href}`,
        "  (names under .localhost resolve to this host in browsers; 'npm run fleet -- edge ca --env staging' prints the CA)", ""].join("\n"));
      // the demo's own customers and its proxy only: other staging containers (a test's, say) are not the demo's to judge
      const infrastructure = [edgeNames("staging", edge.name).container, logCollectorNames("staging", edge.name).container];
      const audits = (await auditFleet(engineFor(ctx.projectDir, "staging"), { environment: "staging" }))
        .filter((a) => DEMO_CUSTOMERS.some((c) => c.customer === a.customer) || infrastructure.includes(a.container));
      console.log(formatAuditTable(audits));
      if (audits.length !== DEMO_CUSTOMERS.length + infrastructure.length || audits.some((a) => !a.ok)) process.exitCode = 1;
      await supplyChainDemo(ctx);
      await backupDemo(ctx);
      await watchDemo(ctx);
      await logsDemo(ctx);
      const services = await startDemoServices(ctx.projectDir);
      const rel = (p: string) => path.relative(process.cwd(), p) || p;
      console.log(["", `status page: ${services.statusUrl}`,
        `  sign in with the token in ${rel(services.tokenFile)} (cat ${rel(services.tokenFile)}); it is this project's, made once`,
        `  fleet serve and fleet watch keep running in the background for it (logs and pid files in ${rel(services.dir)}/;`,
        `  stop them: kill $(cat ${rel(services.dir)}/serve.pid ${rel(services.dir)}/watch.pid)); docs/status-page.md`, ""].join("\n"));
    });
}

/** The last lines of the first demo customer, from the environment's log collector (what `fleet logs` shows). */
async function logsDemo(ctx: ReturnType<typeof projectContext>): Promise<void> {
  const env = loadEnvironment(ctx, "staging");
  const id = DEMO_CUSTOMERS[0].customer;
  const lines: string[] = [];
  await customerLogs(env, { customer: id, filter: { tail: 5 } }, { line: (l) => lines.push(`  ${l}`), note: (n) => lines.push(`  (${n})`) });
  console.log([`${id}'s last lines, kept by the environment's log collector past every container that wrote them:`, ...lines,
    "", `try: npm run fleet -- logs ${id} --env staging -f; npm run fleet -- logs ${id} --env staging --access (docs/logs.md)`].join("\n"));
}

/** One round of the watcher over the demo's customers (what `fleet watch` does every 15 s), then its view. */
async function watchDemo(ctx: ReturnType<typeof projectContext>): Promise<void> {
  const env = loadEnvironment(ctx, "staging");
  const store = WatchStore.open(defaultWatchStorePath(ctx.projectDir));
  const watcher = new Watcher({ environments: [{ env, sinks: [] }], store, metrics: new WatchMetrics(), log: () => {} });
  try {
    watcher.start();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !DEMO_CUSTOMERS.every((c) => (store.healthOf("staging", c.customer)?.status ?? "unknown") !== "unknown")) {
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await watcher.stop();
    store.close();
  }
  const rows = watchStatus(env).filter((r) => DEMO_CUSTOMERS.some((c) => c.customer === r.subject));
  console.log(["", "the watcher's view (each customer probed through its hostname over HTTPS; `fleet watch` does it every 15 s and alerts on changes):",
    formatTable(["customer", "status", "since", "reason"], rows.map((r) => [r.subject, r.status, r.since.replace(/\.\d+Z$/, "Z"), r.reason || "-"])),
    "", "try: npm run fleet -- watch (Prometheus metrics on 127.0.0.1:9464); npm run fleet -- status --env staging (docs/watch.md)", ""].join("\n"));
  if (rows.length !== DEMO_CUSTOMERS.length || rows.some((r) => r.status !== "up")) process.exitCode = 1;
}

/** A backup of each demo customer (restic, into backup.repository), then a restore drill of them. */
async function backupDemo(ctx: ReturnType<typeof projectContext>): Promise<void> {
  const backups = await backupEnvironment(ctx, "staging", { dueOnly: false });
  const drills = await drillBackups(ctx, "staging");
  const demo = (id: string) => DEMO_CUSTOMERS.some((c) => c.customer === id);
  const drillOf = new Map(drills.map((d) => [d.customer, d]));
  console.log(["", "backups (restic, one repository per customer; each customer paused while its snapshot is read), then a restore drill of each:",
    formatTable(["customer", "snapshot", "files", "size", "paused ms", "drill", "drill: restored, checked and booted without a network"],
      [...backups.ok, ...backups.failed].filter((r) => demo(r.customer)).map((r) => {
        const d = drillOf.get(r.customer);
        return [r.customer, r.snapshot?.slice(0, 8) ?? "FAILED", String(r.files ?? "-"), r.bytes === undefined ? "-" : formatBytes(r.bytes),
          String(r.pauseMs ?? "-"), d?.ok ? "passed" : "FAILED", d?.ok ? `${d.files} files, ${((d.durationMs) / 1000).toFixed(1)} s` : d?.error ?? r.error ?? ""];
      })),
    "", "try: npm run fleet -- backups acme --env staging; npm run fleet -- restore acme --env staging (docs/backups.md)", ""].join("\n"));
  if (backups.failed.some((r) => demo(r.customer)) || drills.some((d) => demo(d.customer) && !d.ok)) process.exitCode = 1;
}

if (require.main === module) {
  buildDockerDemoCli().parseAsync(process.argv).catch((err: unknown) => {
    console.error(`demo/docker: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
