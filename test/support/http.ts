/** Tiny HTTP client for tests: loopback only. */
import * as http from "node:http";

export interface HttpResult { status: number; body: unknown }

export function request(url: string, method = "GET", body?: string | Buffer): Promise<HttpResult> {
  const u = new URL(url);
  if (!u.hostname.startsWith("127.")) throw new Error(`tests only talk to loopback addresses, not ${u.hostname}`);
  return new Promise((resolve, reject) => {
    const req = http.request(u, { method, timeout: 10_000, headers: body ? { "content-length": Buffer.byteLength(body) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}
