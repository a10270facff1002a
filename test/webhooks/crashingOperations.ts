/**
 * Test-only fleet operations for `fleet serve` (FLEET_SERVE_TEST_OPERATIONS names this file): every run
 * appends `start <event> <op> <customer>` to FAKE_OPS_LOG, then kills its own process with SIGKILL, as
 * a crash or the OOM killer would in the middle of a deployment. Nothing is deployed.
 */
import * as fs from "node:fs";
import type { JobRun } from "../../src/webhooks/worker";

function crash(line: string): Promise<never> {
  fs.appendFileSync(process.env.FAKE_OPS_LOG!, `${line}\n`);
  process.kill(process.pid, "SIGKILL");
  return new Promise(() => {});
}

export function provision(req: { customer: string; environment: string; plan: string }, run: JobRun): Promise<void> {
  return crash(`start ${run.eventId} provision ${req.customer}`);
}

export function deprovision(req: { customer: string; environment: string }, run: JobRun): Promise<void> {
  return crash(`start ${run.eventId} deprovision ${req.customer}`);
}
