/** `fleet audit`: checks every hardening property of running customer containers. */
import type { Command } from "commander";
import Dockerode from "dockerode";
import { auditFleet, formatAuditTable } from "../audit/audit";
import { CHECKS } from "../audit/checks";
import { parseCustomerId } from "../config/load";

export function registerAudit(program: Command): void {
  program
    .command("audit")
    .description("inspect hardened-fleet's containers through the Docker Engine API and check every hardening property")
    .option("--env <environment>", "only this environment (e.g. staging, prod)")
    .option("--customer <id>", "only this customer")
    .option("--stack <stack>", "only this customer stack, e.g. staging-acme")
    .option("--json", "print JSON for machines")
    .addHelpText("after", `\nChecks:\n${Object.entries(CHECKS).map(([id, what]) => `  ${id.padEnd(18)} ${what}`).join("\n")}\n\nExit status is 1 when any check fails or nothing matched.`)
    .action(async (opts: { env?: string; customer?: string; stack?: string; json?: boolean }) => {
      let { env: environment, customer } = opts;
      if (opts.stack) {
        const m = /^([a-z0-9-]+?)-([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)$/.exec(opts.stack);
        if (!m) throw new Error(`--stack ${opts.stack}: a customer stack is named <environment>-<customer>, e.g. staging-acme`);
        environment = m[1];
        customer = m[2];
      }
      if (customer) parseCustomerId(customer, "--customer");
      const audits = await auditFleet(new Dockerode(), { environment, customer });
      if (opts.json) console.log(JSON.stringify({ ok: audits.length > 0 && audits.every((a) => a.ok), containers: audits }, null, 2));
      else console.log(formatAuditTable(audits));
      if (audits.length === 0 || audits.some((a) => !a.ok)) process.exitCode = 1;
    });
}
