/**
 * The vulnerability scanner's binary: where scripts/ensure-trivy.sh builds it, and running it as a
 * child process (an argument list, no shell) with an allowlisted environment.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { childEnv } from "../pulumi/childEnv";

/** scripts/supply-chain-versions.env pins the same version (scripts/ensure-trivy.sh builds it). */
export const TRIVY_VERSION = "0.74.0";

/** ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet} */
export function fleetCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HARDENED_FLEET_CACHE || path.join(os.homedir(), ".cache", "hardened-fleet");
}

/** Where scripts/ensure-trivy.sh puts trivy and the tests' fixture database writer. */
export function trivyBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(fleetCacheDir(env), "trivy", TRIVY_VERSION, "bin");
}

/** The trivy binary; throws when it has not been built. */
export function trivyPath(env: NodeJS.ProcessEnv = process.env): string {
  const bin = path.join(trivyBinDir(env), "trivy");
  if (!fs.existsSync(bin)) throw new Error(`trivy ${TRIVY_VERSION} is not built (${bin} is missing): run scripts/ensure-trivy.sh (npm run setup does it)`);
  return bin;
}

/** What trivy may see besides the base: the Docker connection, and certificates and proxies for a download. */
const TRIVY_NAMES = [
  "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG",
  "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
];

/** trivy's environment: no TRIVY_* of the caller's (they would change its flags), DOCKER_HOST as given. */
export function trivyEnv(parent: NodeJS.ProcessEnv, dockerHost?: string): Record<string, string> {
  const extra: Record<string, string> = {};
  for (const name of TRIVY_NAMES) if (parent[name] !== undefined) extra[name] = parent[name]!;
  if (dockerHost) extra.DOCKER_HOST = dockerHost;
  return childEnv(parent, "base", extra);
}

/** The last `n` non-empty lines of `text`. */
export function lastLines(text: string, n: number): string {
  return text.split("\n").map((l) => l.trimEnd()).filter((l) => l !== "").slice(-n).join("\n");
}

export interface RunOptions {
  dockerHost?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** each line trivy writes on stderr, as it comes */
  onStderrLine?: (line: string) => void;
}

/**
 * Runs trivy with `args`; resolves with its stdout. A failure (exit status, signal, timeout) is an
 * error with the last lines of its stderr.
 */
export async function runTrivy(args: string[], opts: RunOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const bin = trivyPath(env);
  const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: trivyEnv(env, opts.dockerHost), stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    let partial = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => {
      const s = b.toString("utf8");
      err = (err + s).slice(-64 * 1024);
      if (!opts.onStderrLine) return;
      const lines = (partial + s).split("\n");
      partial = lines.pop()!;
      for (const l of lines) if (l.trim()) opts.onStderrLine(l);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${bin}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(Buffer.concat(out).toString("utf8"));
      const why = timedOut ? `timed out after ${Math.round(timeoutMs / 1000)}s` : signal ? `was killed (${signal})` : `failed (exit status ${code})`;
      const tail = lastLines(err, 12);
      reject(new Error(`trivy ${args[0] ?? ""} ${why}${tail ? `:\n${tail}` : " and wrote nothing on stderr"}`));
    });
  });
}
