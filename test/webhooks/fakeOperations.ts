/**
 * Test-only fleet operations for `fleet serve` as a real process (FLEET_SERVE_TEST_OPERATIONS names
 * this file): each call appends `start <event> <op> <customer> <plan>` to FAKE_OPS_LOG, waits
 * FAKE_OPS_DELAY_MS (a stand-in for `pulumi up`), then appends `done ...`. Nothing is deployed.
 * `exists` answers from the same file (and FAKE_OPS_EXISTING) for the payment bindings.
 */
import * as fs from "node:fs";
import type { JobRun } from "../../src/webhooks/worker";

function line(text: string): void {
  const file = process.env.FAKE_OPS_LOG;
  if (!file) throw new Error("FAKE_OPS_LOG is not set");
  fs.appendFileSync(file, `${text}\n`);
}

const pause = () => new Promise((r) => setTimeout(r, Number(process.env.FAKE_OPS_DELAY_MS ?? "300")));

export async function provision(req: { customer: string; environment: string; plan: string }, run: JobRun): Promise<void> {
  line(`start ${run.eventId} provision ${req.customer} ${req.plan}`);
  await pause();
  line(`done ${run.eventId} provision ${req.customer} ${req.plan}`);
}

export async function deprovision(req: { customer: string; environment: string }, run: JobRun): Promise<void> {
  line(`start ${run.eventId} deprovision ${req.customer} -`);
  await pause();
  line(`done ${run.eventId} deprovision ${req.customer} -`);
}

/**
 * Whether the customer exists: it was ever provisioned here (a deprovision keeps its data volume), or
 * FAKE_OPS_EXISTING (comma-separated) names it, standing for a customer the CLI made.
 */
export async function exists(req: { customer: string; environment: string }): Promise<boolean> {
  if ((process.env.FAKE_OPS_EXISTING ?? "").split(",").includes(req.customer)) return true;
  const file = process.env.FAKE_OPS_LOG;
  return !!file && fs.existsSync(file) && fs.readFileSync(file, "utf8").split("\n").some((l) => / provision (\S+) /.exec(l)?.[1] === req.customer && l.startsWith("done "));
}
