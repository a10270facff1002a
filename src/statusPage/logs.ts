/**
 * The status page's logs view reads here: a customer's last log lines from its current container
 * (on a swarm: its service), as `docker logs --tail` gives them, through the environment's
 * DeployTarget. One function, to be replaced by the log collector's reader.
 */
import { customerStackName, parseCustomerTarget } from "../config/targets";
import { loadEnvironment } from "../fleet/environment";
import type { FleetContext } from "../project/context";
import { environmentNames } from "../project/stackFiles";
import { readStack } from "../pulumi/stackState";
import { NotFound, type LogReader } from "./server";

/** Docker's multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, size) as text; a TTY's plain stream as it is. */
export function demuxLogs(raw: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= raw.length) {
    const kind = raw[at]!;
    if (kind > 2 || raw[at + 1] !== 0 || raw[at + 2] !== 0 || raw[at + 3] !== 0) return raw.toString("utf8"); // not framed
    const size = raw.readUInt32BE(at + 4);
    parts.push(raw.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(parts).toString("utf8");
}

async function collect(out: Buffer | NodeJS.ReadableStream): Promise<Buffer> {
  if (Buffer.isBuffer(out)) return out;
  const chunks: Buffer[] = [];
  for await (const chunk of out) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The last lines of the customer's current container (or service), with Docker's timestamps. */
export function engineLogReader(ctx: FleetContext): LogReader {
  return async (environment, customer, lines) => {
    parseCustomerTarget(customer, environment);
    if (!environmentNames(ctx.projectDir).includes(environment)) throw new NotFound(`There is no environment ${environment}.`);
    const env = loadEnvironment(ctx, environment, "environment");
    if (!env.customers().some((c) => c.id === customer)) throw new NotFound(`There is no customer ${customer} in ${environment}.`);
    const outputs = (await readStack(ctx, customerStackName(environment, customer)))?.outputs ?? {};
    if (typeof outputs.containerName !== "string") throw new NotFound(`${customer} in ${environment} is not deployed: it has no logs.`);
    const source = env.target.logSource(outputs.containerName);
    const options = { stdout: true, stderr: true, timestamps: true, tail: lines, follow: false as const };
    let raw: Buffer;
    try {
      raw = source.kind === "container"
        ? await collect(await source.engine.getContainer(source.name).logs(options))
        : await collect(await source.engine.getService(source.name).logs(options));
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) throw new NotFound(`${customer}'s ${source.kind} ${source.name} is gone: it has no logs.`);
      throw err;
    }
    const text = demuxLogs(raw).replace(/\n$/, "");
    return text === "" ? [] : text.split("\n").slice(-lines);
  };
}
