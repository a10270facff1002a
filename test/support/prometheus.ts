/**
 * A real Prometheus for tests: one `prometheus` process (Debian's package, scripts/ensure-prometheus.sh)
 * with a config of its own in a temporary directory, scraping the given targets as the job
 * hardened-fleet-watch (the job name of docs/prometheus/prometheus.yml) and evaluating a rules file.
 *
 *  - listens on 127.0.0.1 at a free port; the package's own service (:9090) is never used;
 *  - its data and its output (prometheus.log) are in the temporary directory; errors name the log and
 *    quote its tail. stop() kills the process and removes the directory; a start that fails keeps the
 *    directory, for the log;
 *  - scrapes and evaluates every second by default, so an alert without `for` fires within a few seconds.
 *
 * Queries go over HTTP to 127.0.0.1 only. Installs nothing.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export const WATCH_JOB = "hardened-fleet-watch";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface PrometheusOptions {
  /** host:port of each /metrics endpoint, e.g. 127.0.0.1:41234 */
  targets: string[];
  /** rule file to load (absolute, or relative to the working directory) */
  rulesFile?: string;
  /** default 1 */
  scrapeIntervalSeconds?: number;
  /** default: the scrape interval */
  evaluationIntervalSeconds?: number;
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
  /** unix seconds of the evaluation */
  timestamp: number;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "pending" | "firing";
  activeAt?: string;
  value?: string;
}

export interface PrometheusTarget {
  scrapeUrl: string;
  health: "up" | "down" | "unknown";
  lastError: string;
}

export interface Prometheus {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** the temporary directory: config, data, prometheus.log */
  dir: string;
  logFile: string;
  /** an instant query now; a scalar result comes back as one sample without labels */
  query(expr: string): Promise<Sample[]>;
  /** the pending and firing alerts */
  alerts(): Promise<PromAlert[]>;
  targets(): Promise<PrometheusTarget[]>;
  /** polls `predicate` (every 250 ms) until it returns something truthy, and returns that; throws after timeoutMs */
  waitFor<T>(predicate: () => T | Promise<T>, timeoutMs?: number, what?: string): Promise<NonNullable<T>>;
  stop(): Promise<void>;
}

/** The path of `name` on PATH; throws naming scripts/ensure-prometheus.sh when it is not there. */
export function prometheusTool(name: "prometheus" | "promtool"): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch { /* not here */ }
  }
  throw new Error(`${name} is not on PATH: run \`bash scripts/ensure-prometheus.sh\` (Debian's prometheus package)`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** GET http://127.0.0.1:<port><pathAndQuery>: status and body text */
function get(port: number, pathAndQuery: string, timeoutMs = 5000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: pathAndQuery, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${pathAndQuery} on 127.0.0.1:${port} timed out`)));
    req.on("error", reject);
  });
}

function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

const seconds = (s: number) => {
  if (!(s > 0) || !Number.isFinite(s)) throw new Error(`interval ${s}: a positive number of seconds`);
  return `${Math.round(s * 1000)}ms`;
};

/** the config: JSON, which is YAML too */
function configText(opts: PrometheusOptions): string {
  const scrape = seconds(opts.scrapeIntervalSeconds ?? 1);
  for (const t of opts.targets) {
    if (!/^127\.\d+\.\d+\.\d+:\d+$/.test(t)) throw new Error(`target ${t}: tests scrape loopback only (127.x.x.x:port)`);
  }
  return JSON.stringify({
    global: {
      scrape_interval: scrape,
      // at most the interval (the default, 10s, is refused when longer)
      scrape_timeout: scrape,
      evaluation_interval: seconds(opts.evaluationIntervalSeconds ?? opts.scrapeIntervalSeconds ?? 1),
    },
    rule_files: opts.rulesFile ? [path.resolve(opts.rulesFile)] : [],
    scrape_configs: [{ job_name: WATCH_JOB, metrics_path: "/metrics", static_configs: [{ targets: opts.targets }] }],
  }, null, 2);
}

interface ApiAnswer<T> { status: string; data: T; error?: string; errorType?: string }

export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const binary = prometheusTool("prometheus");
  if (opts.rulesFile && !fs.existsSync(opts.rulesFile)) throw new Error(`rules file ${opts.rulesFile} does not exist`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-prometheus-"));
  const configFile = path.join(dir, "prometheus.yml");
  const logFile = path.join(dir, "prometheus.log");
  fs.writeFileSync(configFile, configText(opts));

  let child: ChildProcess | undefined;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** set by the child's exit event (a read TypeScript does not narrow away) */
  const exitedNow = () => exited;
  // a test process that ends without stop() takes its Prometheus with it
  const killOnExit = () => { try { child?.kill("SIGKILL"); } catch { /* gone */ } };
  process.once("exit", killOnExit);

  const failed = (why: string) =>
    new Error(`prometheus (${dir}): ${why}; log ${logFile}:\n${tail(logFile)}`);

  /** one start on `port`: resolves once /-/ready answers 200; rejects if the process ends first */
  const startOn = async (port: number) => {
    const out = fs.openSync(logFile, "a");
    exited = undefined;
    try {
      child = spawn(binary, [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ], { stdio: ["ignore", out, out] });
    } finally {
      fs.closeSync(out);
    }
    const proc = child;
    proc.once("exit", (code, signal) => { if (child === proc) exited = { code, signal }; });
    proc.once("error", (err) => {
      if (child === proc) exited = { code: null, signal: null };
      fs.appendFileSync(logFile, `spawn: ${err.message}\n`);
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const end = exitedNow();
      if (end) throw failed(`exited (${end.signal ?? `code ${end.code}`}) before it was ready`);
      const ready = await get(port, "/-/ready", 1000).catch(() => undefined);
      if (ready?.status === 200) return;
      if (Date.now() > deadline) throw failed("not ready within 30 s");
      await sleep(100);
    }
  };

  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await startOn(port);
      break;
    } catch (err) {
      killOnExit();
      // another process took the port between freePort() and the bind: try another
      if (attempt < 3 && /address already in use/.test(tail(logFile, 5))) continue;
      process.removeListener("exit", killOnExit);
      throw err;
    }
  }

  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const r = await get(port, pathAndQuery);
    let body: ApiAnswer<T>;
    try {
      body = JSON.parse(r.text) as ApiAnswer<T>;
    } catch {
      throw failed(`GET ${pathAndQuery}: ${r.status}, not JSON: ${r.text.slice(0, 200)}`);
    }
    if (r.status !== 200 || body.status !== "success") {
      throw failed(`GET ${pathAndQuery}: ${r.status} ${body.errorType ?? ""} ${body.error ?? ""}`.trim());
    }
    return body.data;
  };

  const query = async (expr: string): Promise<Sample[]> => {
    type Value = [number, string];
    const data = await api<{ resultType: string; result: unknown }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (data.resultType === "scalar") {
      const [ts, v] = data.result as Value;
      return [{ metric: {}, value: Number(v), timestamp: ts }];
    }
    if (data.resultType !== "vector") throw new Error(`query ${expr}: a ${data.resultType}, not an instant vector`);
    return (data.result as { metric: Record<string, string>; value: Value }[])
      .map((s) => ({ metric: s.metric, value: Number(s.value[1]), timestamp: s.value[0] }));
  };

  const alerts = async (): Promise<PromAlert[]> => (await api<{ alerts: PromAlert[] }>("/api/v1/alerts")).alerts;

  const targets = async (): Promise<PrometheusTarget[]> =>
    (await api<{ activeTargets: PrometheusTarget[] }>("/api/v1/targets?state=active")).activeTargets
      .map((t) => ({ scrapeUrl: t.scrapeUrl, health: t.health, lastError: t.lastError }));

  const waitFor = async <T>(predicate: () => T | Promise<T>, timeoutMs = 20_000, what = "the condition"): Promise<NonNullable<T>> => {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      try {
        const v = await predicate();
        if (v) return v as NonNullable<T>;
        lastError = undefined;
      } catch (err) {
        lastError = err;
      }
      if (exited) throw failed(`exited (${exited.signal ?? `code ${exited.code}`}) while waiting for ${what}`);
      if (Date.now() > deadline) {
        const state = await Promise.all([alerts(), targets()]).then(
          ([a, t]) => `alerts: ${JSON.stringify(a.map((x) => ({ ...x.labels, state: x.state })))}; targets: ${JSON.stringify(t)}`,
          (err: unknown) => `state unavailable: ${err instanceof Error ? err.message : String(err)}`);
        const last = lastError ? `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}` : "";
        throw failed(`${what} not met within ${timeoutMs} ms${last}; ${state}`);
      }
      await sleep(250);
    }
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const proc = child;
    if (proc && !exited) {
      const gone = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => { try { proc.kill("SIGKILL"); } catch { /* gone */ } }, 5000);
      await gone;
      clearTimeout(timer);
    }
    process.removeListener("exit", killOnExit);
    fs.rmSync(dir, { recursive: true, force: true });
  };

  return { url: `http://127.0.0.1:${port}`, port, dir, logFile, query, alerts, targets, waitFor, stop };
}
