/**
 * The edge proxy's traffic per customer, from Caddy's access log as `log { format json }` writes it:
 * one JSON object per line, `{"level":"info","ts":1765022400.123,"logger":"http.log.access.log0",
 * "msg":"handled request","request":{"remote_ip":…,"proto":…,"method":"GET","host":"acme.example.com",
 * "uri":"/x","headers":{…}},"bytes_read":0,"user_id":"","duration":0.0021,"size":512,"status":200,
 * "resp_headers":{…}}`. Pure: the caller reads the lines.
 *
 * Rules:
 *  - `ts` is unix seconds (the json encoder's default time_format, unix_seconds_float); a line is in
 *    the window when from <= ts < to, so consecutive windows count each request once.
 *  - bytesOut is `size`: the response body bytes written (headers not counted). bytesIn is
 *    `bytes_read`: the request body bytes read. Caddy before 2.7 (Debian bookworm ships 2.6.2) has no
 *    `bytes_read`: the request's Content-Length header stands in (0 without one) and the request is
 *    counted in bytesInEstimated.
 *  - `status` 0 (no response written by Caddy; Go answers 200) counts as a request; 500-599 in status5xx.
 *  - The host may carry a port (`acme.staging.localhost:8443`) or a trailing dot; both are dropped and
 *    it is lowercased before hostToCustomer.
 *  - Anything else on the stream (Caddy's own runtime logs, a torn last line, another program's
 *    output) is not a request and is skipped.
 */

export interface AccessRecord {
  /** unix seconds */
  ts: number;
  /** lowercase, without port */
  host: string;
  method: string;
  uri: string;
  status: number;
  /** request body bytes; undefined when the line has no bytes_read (Caddy before 2.7) */
  bytesRead: number | undefined;
  /** the request's Content-Length header, when it has a valid one */
  contentLength: number | undefined;
  /** response body bytes */
  size: number;
  /** seconds, when logged as a number */
  duration: number | undefined;
}

export interface Traffic {
  requests: number;
  bytesIn: number;
  bytesOut: number;
  status5xx: number;
  /** requests whose bytesIn is their Content-Length header (no bytes_read in the log) */
  bytesInEstimated: number;
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

/** `acme.example.com:8443` → `acme.example.com`; `[::1]:8443` → `[::1]`; lowercased, no trailing dot. */
export function hostWithoutPort(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end >= 0 ? h.slice(0, end + 1) : h;
  } else {
    const colon = h.lastIndexOf(":");
    // one colon: host:port; more: a bare IPv6 address
    if (colon >= 0 && h.indexOf(":") === colon) h = h.slice(0, colon);
  }
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

function contentLengthOf(headers: unknown): number | undefined {
  if (typeof headers !== "object" || headers === null) return undefined;
  const values = (headers as Record<string, unknown>)["Content-Length"];
  const first = Array.isArray(values) ? values[0] : undefined;
  return typeof first === "string" && /^[0-9]{1,15}$/.test(first) ? Number(first) : undefined;
}

/** One access-log line as a record, or undefined for a malformed line or one that is not a request. */
export function parseAccessLine(line: string): AccessRecord | undefined {
  const text = line.trim();
  if (!text.startsWith("{")) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) return undefined;
  const e = o as Record<string, unknown>;
  const req = e.request as Record<string, unknown> | undefined;
  if (typeof req !== "object" || req === null || Array.isArray(req)) return undefined;
  if (typeof e.ts !== "number" || !Number.isFinite(e.ts)) return undefined;
  if (typeof req.host !== "string" || req.host === "") return undefined;
  if (!isCount(e.status) || e.status > 999 || !isCount(e.size)) return undefined;
  if (e.bytes_read !== undefined && !isCount(e.bytes_read)) return undefined;
  return {
    ts: e.ts,
    host: hostWithoutPort(req.host),
    method: typeof req.method === "string" ? req.method : "",
    uri: typeof req.uri === "string" ? req.uri : "",
    status: e.status,
    bytesRead: e.bytes_read as number | undefined,
    contentLength: contentLengthOf(req.headers),
    size: e.size,
    duration: typeof e.duration === "number" && Number.isFinite(e.duration) ? e.duration : undefined,
  };
}

/**
 * The requests of each customer within the window, by the host they asked for. Hosts that map to no
 * customer (the edge's own names, scanners asking for an IP) are left out.
 */
export function aggregateByHost(lines: Iterable<string>, window: { from: string; to: string },
  hostToCustomer: (host: string) => string | undefined): Map<string, Traffic> {
  const from = Date.parse(window.from) / 1000;
  const to = Date.parse(window.to) / 1000;
  const out = new Map<string, Traffic>();
  for (const line of lines) {
    const r = parseAccessLine(line);
    if (!r || !(r.ts >= from && r.ts < to)) continue;
    const customer = hostToCustomer(r.host);
    if (customer === undefined) continue;
    let t = out.get(customer);
    if (!t) out.set(customer, t = { requests: 0, bytesIn: 0, bytesOut: 0, status5xx: 0, bytesInEstimated: 0 });
    t.requests++;
    t.bytesOut += r.size;
    if (r.bytesRead !== undefined) t.bytesIn += r.bytesRead;
    else {
      t.bytesIn += r.contentLength ?? 0;
      t.bytesInEstimated++;
    }
    if (r.status >= 500 && r.status <= 599) t.status5xx++;
  }
  return out;
}
