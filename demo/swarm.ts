#!/usr/bin/env node
/**
 * The local test cluster's demo, not an operator command: `node dist/demo/swarm.js env-file|demo`
 * (`npm run demo:swarm` runs `demo`) on the cluster that scripts/swarm-cluster.sh makes on this machine.
 */
import { ensureDemoDatabase } from "./supplyChain";
import * as fs from "node:fs";
import * as path from "node:path";
import { Command } from "commander";
import { formatAuditTable } from "../src/audit/audit";
import { projectContext, summarize } from "../src/cli/stacks";
import { parseEnvironmentName } from "../src/config/targets";
import { auditEnvironments, edgeCaCertificate, provision, upStack } from "../src/fleet/operations";
import { stackFile, writeFileAtomic } from "../src/project/stackFiles";
import { formatTable } from "../src/table";
import { clusterEnvironmentFile, ENV_FILE_MARK, isClusterEnvironmentFile, readCluster, requestInNamespace } from "./swarmCluster";

export const SWARM_DEMO_CUSTOMERS = [
  { customer: "acme", plan: "starter" },
  { customer: "globex", plan: "standard" },
  { customer: "initech", plan: "starter" },
] as const;

/** Writes Pulumi.<env>.yaml for the cluster that cluster.json describes; returns its path. */
function writeEnvironmentFile(projectDir: string, clusterFile: string, environment: string, promoteFrom?: string): string {
  const { environment: name } = parseEnvironmentName(environment);
  if (promoteFrom) parseEnvironmentName(promoteFrom, "--promote-from");
  const file = stackFile(projectDir, name);
  const text = clusterEnvironmentFile(readCluster(clusterFile), name, promoteFrom);
  ensureDemoDatabase(projectDir);
  refuseForeignEnvironmentFile(file, name);
  writeFileAtomic(file, text);
  return file;
}

/**
 * An environment file this command did not write (a prod or staging file, one written by hand) is
 * never replaced: its settings and passphrase would silently become a local demo's. Its own file
 * (the first line's mark) it may rewrite.
 */
function refuseForeignEnvironmentFile(file: string, name: string): void {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (isClusterEnvironmentFile(text)) return;
  throw new Error(`--env ${name}: ${file} exists and was not written by 'demo/swarm.js env-file' (its first line lacks "${ENV_FILE_MARK}"), ` +
    "so it is left as it is: choose another --env name, or remove that file yourself if you mean to replace it");
}

export function buildSwarmDemoCli(): Command {
  const program = new Command("demo/swarm")
    .description("the local test cluster of scripts/swarm-cluster.sh: its environment file, and a demo on it")
    .showHelpAfterError();
  program.command("env-file")
    .description("write Pulumi.<env>.yaml: a staging-tier swarm environment on the cluster that --cluster describes")
    .requiredOption("--cluster <file>", "cluster.json from 'bash scripts/swarm-cluster.sh up'")
    .option("--env <environment>", "environment name", "swarm")
    .option("--promote-from <environment>", "a production-tier environment instead, promoting what that one runs (by repository digest)")
    .action((opts: { cluster: string; env: string; promoteFrom?: string }) => {
      console.log(writeEnvironmentFile(projectContext().projectDir, opts.cluster, opts.env, opts.promoteFrom));
    });

  program.command("demo")
    .description("deploy a swarm environment and three customers spread over the cluster's ordinary nodes (its sandbox node takes only sandboxed plans), request each over HTTPS, then audit every node")
    .requiredOption("--cluster <file>", "cluster.json from 'bash scripts/swarm-cluster.sh up'")
    .option("--env <environment>", "environment name", "swarm")
    .action(async (opts: { cluster: string; env: string }) => {
      const ctx = projectContext();
      const cluster = readCluster(opts.cluster);
      const env = opts.env;
      writeEnvironmentFile(ctx.projectDir, opts.cluster, env);
      const summaries = [summarize(await upStack(ctx, env))];
      const rows: string[][] = [];
      const urls = new Map<string, string>();
      for (const c of SWARM_DEMO_CUSTOMERS) {
        const r = await provision(ctx, { customer: c.customer, environment: env, plan: c.plan });
        summaries.push(summarize(r));
        urls.set(c.customer, String(r.outputs.url));
        rows.push([c.customer, String(r.outputs.node), String(r.outputs.plan), String(r.outputs.url), String(r.outputs.containerName)]);
      }
      console.log(["", "deployments:", ...summaries.map((s) => `  ${s}`), "", "customers (one Swarm service each, pinned to its node):",
        formatTable(["customer", "node", "plan", "url", "service"], rows), ""].join("\n"));

      const caFile = path.join(ctx.projectDir, ".fleet", `${env}-edge-ca.pem`);
      fs.mkdirSync(path.dirname(caFile), { recursive: true });
      fs.writeFileSync(caFile, await edgeCaCertificate(ctx, env));
      const manager = cluster.nodes[0]!;
      const answers: string[] = [];
      for (const c of SWARM_DEMO_CUSTOMERS) {
        const url = `${urls.get(c.customer)}/`;
        const r = await requestInNamespace(manager.namespace, url, caFile);
        answers.push(`  GET ${url} -> ${r.status} ${r.body.trim().slice(0, 100)}`);
        if (r.status !== 200) process.exitCode = 1;
      }
      const first = new URL(urls.get(SWARM_DEMO_CUSTOMERS[0].customer)!);
      console.log([`through the edge proxy on ${manager.name} (HTTPS, certificate checked against the local CA):`, ...answers, "",
        "try it (the proxy listens on the manager's own loopback, inside its network namespace):",
        `  ip netns exec ${manager.namespace} curl --cacert ${path.relative(process.cwd(), caFile) || caFile} --resolve ${first.hostname}:443:127.0.0.1 ${first.href}`, ""].join("\n"));

      const audits = await auditEnvironments(ctx, [env]);
      console.log(`audit of every node (${cluster.nodes.map((n) => n.name).join(", ")}):`);
      console.log(formatAuditTable(audits));
      // the customers' tasks, the proxy, and the log collector on each node
      if (audits.length !== SWARM_DEMO_CUSTOMERS.length + 1 + cluster.nodes.length || audits.some((a) => !a.ok)) process.exitCode = 1;
    });
  return program;
}

if (require.main === module) {
  buildSwarmDemoCli().parseAsync(process.argv).catch((err: unknown) => {
    console.error(`demo/swarm: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
