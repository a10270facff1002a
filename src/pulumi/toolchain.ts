/**
 * Finds the pinned Pulumi toolchain through toolchain/locate.sh. Never builds it: when it is
 * missing this fails at once, naming the command that builds it (`npm run toolchain`).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { childEnv } from "./childEnv";

export interface Toolchain {
  /** `system` (the user's own pulumi on PATH), `built` (toolchain/build.sh) or `override` */
  source: string;
  /** directory holding `pulumi` and `pulumi-language-nodejs` */
  bin: string;
  /** PULUMI_HOME to set (the project-local one for the built toolchain); undefined: the user's own */
  home?: string;
}

let cached: Toolchain | undefined;

/** The checkout this code belongs to: the nearest directory above it holding toolchain/locate.sh. */
export function toolchainRoot(from = __dirname): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "toolchain", "locate.sh"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no toolchain/locate.sh above ${from}`);
  }
}

/** Parses locate.sh's `key=value` lines. */
export function parseLocate(text: string): Toolchain {
  const kv = new Map(text.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  const bin = kv.get("bin");
  if (!bin) throw new Error(`toolchain/locate.sh printed no bin directory:\n${text}`);
  return { source: kv.get("source") ?? "unknown", bin, home: kv.get("home") || undefined };
}

export function findToolchain(env = process.env): Toolchain {
  // an explicit bin directory is used as is (locate.sh's first rule), also where this code has no
  // toolchain/ above it, such as a test's copy of the project run by a checkout that has one
  if (env.HARDENED_FLEET_PULUMI_BIN) return { source: "override", bin: env.HARDENED_FLEET_PULUMI_BIN, home: env.PULUMI_HOME || undefined };
  if (cached) return cached;
  const script = path.join(toolchainRoot(), "toolchain", "locate.sh");
  try {
    cached = parseLocate(execFileSync("bash", [script],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: childEnv(env, "pulumi") }));
  } catch (err) {
    const e = err as { status?: number; stderr?: string; message: string };
    const said = e.stderr?.trim().replace(/^\[toolchain\] /, "");
    throw new Error(said || `${script} failed: ${e.message}`);
  }
  return cached;
}

/** The bin directory holding pulumi and the Node.js language host. */
export function toolchainBin(): string {
  return findToolchain().bin;
}
