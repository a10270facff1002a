/**
 * The status page's logs view reads here: a customer's last lines, as `fleet logs --tail` shows them
 * (src/fleet/logs.ts: on one host the log collector, every container's lines; on a swarm the service's).
 */
import { ConfigError } from "../config/errors";
import { parseCustomerTarget } from "../config/targets";
import { loadEnvironment } from "../fleet/environment";
import { customerLogs } from "../fleet/logs";
import type { FleetContext } from "../project/context";
import { environmentNames } from "../project/stackFiles";
import { NotFound, type LogReader } from "./server";

export function collectorLogReader(ctx: FleetContext): LogReader {
  return async (environment, customer, lines) => {
    parseCustomerTarget(customer, environment);
    if (!environmentNames(ctx.projectDir).includes(environment)) throw new NotFound(`There is no environment ${environment}.`);
    const env = loadEnvironment(ctx, environment, "environment");
    const out: string[] = [];
    try {
      await customerLogs(env, { customer, filter: { tail: lines } }, { line: (text) => out.push(text), note: () => {} });
    } catch (err) {
      // not a customer of the environment, or not deployed: the page says so
      if (err instanceof ConfigError) throw new NotFound(`${customer} in ${environment} has no logs: ${err.problems.map((p) => p.message).join("; ")}`);
      throw err;
    }
    return out;
  };
}
