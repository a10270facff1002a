/**
 * The edge proxy in numbers, for bench/fleet.ts:
 *  - the latency it adds: GET /healthz through the proxy (HTTPS, certificate checked) next to the
 *    same app reached directly (a copy of the customer's container, published on 127.0.0.1 for this
 *    measurement only), with a kept-alive connection and with a new connection per request;
 *  - failed requests while an update runs: a client requests the customer through the proxy back to
 *    back while `during` runs, and every failure is counted.
 */
import * as http from "node:http";
import * as https from "node:https";
import { edgeCaForPort } from "../test/support/http";
import { percentile } from "./measure";

export interface LoadCount {
  requests: number;
  failed: number;
  /** the first few failures, for the report */
  failures: string[];
}

type Agent = http.Agent | https.Agent | false;

/** One GET; resolves with its status and milliseconds (loopback and .localhost names only). */
export async function timedGet(url: string, agent: Agent): Promise<{ status: number; ms: number }> {
  const u = new URL(url);
  const secure = u.protocol === "https:";
  if (secure ? !u.hostname.endsWith(".localhost") : !u.hostname.startsWith("127.")) throw new Error(`bench traffic stays on this host, not ${u.hostname}`);
  const ca = secure ? await edgeCaForPort(Number(u.port || 443)) : undefined;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const done = (res: http.IncomingMessage) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    };
    const req = secure
      ? https.request({ host: "127.0.0.1", port: Number(u.port || 443), path: u.pathname, servername: u.hostname, headers: { host: u.host }, ca, agent, timeout: 5000 }, done)
      : http.request(u, { agent, timeout: 5000 }, done);
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** p50 / p99 / max of `n` sequential requests (after 20 not counted). */
export async function latency(url: string, agent: Agent, n = 300): Promise<{ p50: number; p99: number; max: number }> {
  for (let i = 0; i < 20; i++) await timedGet(url, agent);
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await timedGet(url, agent);
    if (r.status !== 200) throw new Error(`GET ${url} answered ${r.status}`);
    ms.push(r.ms);
  }
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), max: Math.max(...ms) };
}

/** Requests each URL back to back while `during` runs; counts what failed. */
export async function failedDuring(urls: string[], during: () => Promise<unknown>): Promise<LoadCount> {
  const count: LoadCount = { requests: 0, failed: 0, failures: [] };
  let running = true;
  const loops = urls.map(async (url) => {
    while (running) {
      count.requests++;
      try {
        const r = await timedGet(url, false);
        if (r.status !== 200) throw new Error(`${r.status}`);
      } catch (err) {
        count.failed++;
        if (count.failures.length < 5) count.failures.push(`${url}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  try {
    await during();
  } finally {
    running = false;
    await Promise.all(loops);
  }
  return count;
}
