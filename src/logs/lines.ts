/**
 * A customer's log lines as `fleet logs` reads and shows them: the collector's JSON lines (rsyslog's
 * template in src/logs/assets/rsyslog.conf) and the edge proxy's access log (Caddy's JSON), the
 * filters (--since, --grep, --tail) and the text printed. Pure.
 */
import { ConfigError } from "../config/errors";

export interface LogLine {
  /** RFC 3339, microseconds */
  time: string;
  /** the container that wrote it (12 hex), or "edge" for the access log */
  source: string;
  stream: "out" | "err";
  message: string;
}

/** One line of a collector file; undefined for anything else (a torn last line, a stray write). */
export function parseCollectorLine(text: string): LogLine | undefined {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return undefined; }
  const o = v as { t?: unknown; c?: unknown; s?: unknown; m?: unknown };
  if (typeof o?.t !== "string" || typeof o.c !== "string" || typeof o.m !== "string" || Number.isNaN(Date.parse(o.t))) return undefined;
  // the engine's syslog driver: stdout is severity info, stderr err
  return { time: o.t, source: o.c, stream: o.s === "err" ? "err" : "out", message: o.m };
}

/** One request of Caddy's JSON access log, as a line: `GET /path 200 1234 B 12 ms from 203.0.113.5`. */
export function parseAccessLogLine(text: string): LogLine | undefined {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return undefined; }
  const o = v as { ts?: unknown; status?: unknown; size?: unknown; duration?: unknown; request?: { method?: unknown; uri?: unknown; remote_ip?: unknown } };
  if (typeof o?.ts !== "number" || typeof o.status !== "number" || !o.request) return undefined;
  const ms = typeof o.duration === "number" ? ` ${Math.round(o.duration * 1000)} ms` : "";
  const from = typeof o.request.remote_ip === "string" ? ` from ${o.request.remote_ip}` : "";
  return {
    time: new Date(o.ts * 1000).toISOString(),
    source: "edge",
    stream: o.status >= 500 ? "err" : "out",
    message: `${String(o.request.method)} ${String(o.request.uri)} ${o.status} ${typeof o.size === "number" ? o.size : 0} B${ms}${from}`,
  };
}

export interface LogFilter {
  /** lines at or after this instant (ms since the epoch) */
  since?: number;
  grep?: RegExp;
  /** the last N lines (after the other filters) */
  tail?: number;
}

/** `--since`: a duration back from `now` (90s, 10m, 2h, 7d) or an instant (2026-12-06T10:00:00Z). */
export function parseSince(text: string, now = Date.now()): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (m) return now - Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  const at = /^\d{4}-\d{2}-\d{2}(T|$)/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(at)) {
    throw new ConfigError("--since", [{ path: "--since", found: JSON.stringify(text),
      message: "must be a duration back from now (90s, 10m, 2h, 7d) or a time (2026-12-06T10:00:00Z)" }]);
  }
  return at;
}

export function parseGrep(text: string): RegExp {
  try {
    return new RegExp(text);
  } catch (err) {
    throw new ConfigError("--grep", [{ path: "--grep", found: JSON.stringify(text),
      message: `must be a regular expression (${(err as Error).message}); quote it for the shell` }]);
  }
}

export function parseTail(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new ConfigError("--tail", [{ path: "--tail", found: JSON.stringify(text), message: "must be a whole number of lines, 1 or more" }]);
  }
  return Number(text);
}

export function matches(line: LogLine, f: Pick<LogFilter, "since" | "grep">): boolean {
  return (f.since === undefined || Date.parse(line.time) >= f.since) && (f.grep === undefined || f.grep.test(line.message));
}

/** The lines in time order (a stable sort: lines of one instant keep the order they were written), filtered. */
export function selectLines(lines: LogLine[], f: LogFilter): LogLine[] {
  const kept = lines.map((l, i) => ({ l, i, at: Date.parse(l.time) })).filter(({ l }) => matches(l, f));
  kept.sort((a, b) => a.at - b.at || a.l.time.localeCompare(b.l.time) || a.i - b.i);
  const out = kept.map(({ l }) => l);
  return f.tail === undefined ? out : out.slice(-f.tail);
}

/** `2026-12-06T14:01:02.123456Z 3f2a9c1b0d4e err the message` */
export function formatLine(l: LogLine): string {
  return `${l.time} ${l.source.padEnd(12)} ${l.stream} ${l.message}`;
}
