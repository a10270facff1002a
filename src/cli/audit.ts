/** `fleet audit`: checks every hardening property of running customer containers. */
import type { Command } from "commander";
import { formatAuditTable, type ContainerAudit } from "../audit/audit";
import { CHECKS } from "../audit/checks";
import { OVERLAY_CHECK_DESCRIPTION, OVERLAY_CHECK_ID } from "../audit/overlay";
import { parseCustomerId } from "../config/load";
import { parseEnvironmentName, parseStackTarget } from "../config/targets";
import { auditEnvironments, environmentNames } from "../fleet/operations";
import { findingsColumn, recordedFindings } from "../fleet/supplyChain";
import { projectContext } from "./stacks";

export function registerAudit(program: Command): void {
  program
    .command("audit")
    .description("inspect hardened-fleet's containers through the Docker Engine API and check every hardening property")
    .option("--env <environment>", "only this environment (e.g. staging, prod)")
    .option("--customer <id>", "only this customer")
    .option("--stack <stack>", "only this customer stack, e.g. staging-acme")
    .option("--json", "print JSON for machines")
    .addHelpText("after", `\nChecks:\n${Object.entries({ ...CHECKS, [OVERLAY_CHECK_ID]: OVERLAY_CHECK_DESCRIPTION }).map(([id, what]) => `  ${id.padEnd(18)} ${what}`).join("\n")}\n\nExit status is 1 when any check fails or nothing matched.`)
    .action(async (opts: { env?: string; customer?: string; stack?: string; json?: boolean }) => {
      let { env: environment, customer } = opts;
      if (opts.stack) {
        const target = parseStackTarget(opts.stack, "--stack");
        if (target.kind !== "customer") throw new Error(`--stack ${opts.stack}: a customer stack is named <environment>-<customer>, e.g. staging-acme`);
        environment = target.environment;
        customer = target.customer;
      }
      if (customer) parseCustomerId(customer, "--customer");
      // each environment on the engine it deploys to
      const ctx = projectContext();
      const environments = environment ? [parseEnvironmentName(environment).environment] : environmentNames(ctx.projectDir);
      // each environment's target audits every engine it uses (on a swarm: every node's, tasks and the edge proxy)
      const audits = await auditEnvironments(ctx, environments, { customer });
      // the image's known vulnerabilities, as staging's scan or a promotion recorded them (not a check: the gate is at promotion)
      for (const a of audits) a.findings = findingsColumn(recordedFindings(ctx.projectDir, a.imageRef));
      if (opts.json) console.log(JSON.stringify({ ok: audits.length > 0 && audits.every((a) => a.ok), containers: audits }, null, 2));
      else {
        // a swarm's rows have the overlay check too: one table per set of checks keeps the columns aligned
        const groups = new Map<string, ContainerAudit[]>();
        for (const a of audits) groups.set(a.checks.map((c) => c.id).join(), [...(groups.get(a.checks.map((c) => c.id).join()) ?? []), a]);
        console.log(audits.length === 0 ? formatAuditTable(audits) : [...groups.values()].map(formatAuditTable).join("\n\n"));
      }
      if (audits.length === 0 || audits.some((a) => !a.ok)) process.exitCode = 1;
    });
}
