/** `fleet demo`: the staging environment and two demo customers on the local engine, then what it made. */
import type { Command } from "commander";
import { engineFor } from "../engine/connection";
import { auditFleet, formatAuditTable } from "../audit/audit";
import { provision, upStack } from "../fleet/operations";
import { projectContext, summarize } from "./stacks";

export const DEMO_CUSTOMERS = [
  { customer: "acme", plan: "starter" },
  { customer: "globex", plan: "standard" },
] as const;

export function registerDemo(program: Command): void {
  program.command("demo").description("deploy staging and two demo customers to the local Docker engine, then audit them")
    .action(async () => {
      const ctx = projectContext();
      const summaries = [summarize(await upStack(ctx, "staging"))];
      const urls: string[] = [];
      for (const c of DEMO_CUSTOMERS) {
        const r = await provision(ctx, { customer: c.customer, environment: "staging", plan: c.plan });
        summaries.push(summarize(r));
        urls.push(`  ${String(r.outputs.customerId).padEnd(8)} ${r.outputs.url}  plan ${r.outputs.plan}, version ${r.outputs.version}, container ${r.outputs.containerName}, volume ${r.outputs.dataVolumeName}`);
      }
      console.log(["", "deployments:", ...summaries.map((s) => `  ${s}`), "", "customers:", ...urls, ""].join("\n"));
      // the demo's own customers only: other staging customers (a test's, say) are not the demo's to judge
      const audits = (await auditFleet(engineFor(ctx.projectDir, "staging"), { environment: "staging" }))
        .filter((a) => DEMO_CUSTOMERS.some((c) => c.customer === a.customer));
      console.log(formatAuditTable(audits));
      if (audits.length !== DEMO_CUSTOMERS.length || audits.some((a) => !a.ok)) process.exitCode = 1;
    });
}
