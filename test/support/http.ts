/**
 * Tiny HTTP(S) client for tests: loopback only.
 *
 * `https://<customer>.<env>.localhost:<port>/…` goes to 127.0.0.1:<port> (names under .localhost are
 * this host) with the hostname as SNI and Host, and the certificate is checked against the local CA
 * of the edge proxy that publishes that port, read from the proxy itself: what a client that trusts
 * `fleet edge ca` sees.
 */
import * as http from "node:http";
import * as https from "node:https";
import { EDGE_CA_ROOT } from "../../src/edge/routes";
import { execIn } from "../../src/engine/exec";
import { LABEL_ROLE, ROLE_EDGE } from "../../src/hardening/names";
import { engine } from "./engine";

export interface HttpResult { status: number; body: unknown }

const caByProxy = new Map<string, string>();

/** The root certificate of the edge proxy publishing `port` on 127.0.0.1. */
export async function edgeCaForPort(port: number): Promise<string> {
  const found = await engine.listContainers({ filters: { label: [`${LABEL_ROLE}=${ROLE_EDGE}`], publish: [String(port)] } });
  if (found.length !== 1) throw new Error(`no single edge proxy publishes port ${port} (found ${found.length})`);
  const id = found[0]!.Id;
  const cached = caByProxy.get(id);
  if (cached) return cached;
  const r = await execIn(engine.getContainer(id), ["cat", EDGE_CA_ROOT]);
  if (r.exitCode !== 0) throw new Error(`the edge proxy on port ${port} has no local CA yet: ${r.stderr}`);
  caByProxy.set(id, r.stdout);
  return r.stdout;
}

export async function request(url: string, method = "GET", body?: string | Buffer, opts: { timeoutMs?: number } = {}): Promise<HttpResult> {
  const u = new URL(url);
  const edge = u.protocol === "https:";
  if (edge ? !u.hostname.endsWith(".localhost") : !u.hostname.startsWith("127.")) {
    throw new Error(`tests only talk to loopback addresses (127.x, or names under .localhost through an edge proxy), not ${u.hostname}`);
  }
  const port = Number(u.port || (edge ? 443 : 80));
  const ca = edge ? await edgeCaForPort(port) : undefined;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = body ? { "content-length": Buffer.byteLength(body) } : {};
    const options = { method, timeout: opts.timeoutMs ?? 10_000, headers };
    const onResponse = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    };
    const req = edge
      ? https.request({ ...options, host: "127.0.0.1", port, path: `${u.pathname}${u.search}`, servername: u.hostname,
        headers: { ...headers, host: u.host }, ca, agent: false }, onResponse)
      : http.request(u, options, onResponse);
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}
