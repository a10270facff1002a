/**
 * Makes sure dist/ (the JavaScript Pulumi runs) is at least as new as the TypeScript sources, and so is
 * the policy pack's policies/dist (a package of its own, with its own compiler: docs/policy-pack.md).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as fs from "node:fs";
import * as path from "node:path";
import { childEnv } from "./childEnv";

function newestTs(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function programBuilt(projectDir: string): boolean {
  const out = path.join(projectDir, "dist", "index.js");
  // the program imports the pack's rules (src/config/schema.ts): they are its sources too
  const sources = Math.max(fs.statSync(path.join(projectDir, "index.ts")).mtimeMs,
    ...["components", "src", "policies/src"].map((d) => newestTs(path.join(projectDir, d))));
  return fs.existsSync(out) && fs.statSync(out).mtimeMs >= sources;
}

function packBuilt(projectDir: string): boolean {
  const out = path.join(projectDir, "policies", "dist", "index.js");
  return fs.existsSync(out) && fs.statSync(out).mtimeMs >= newestTs(path.join(projectDir, "policies", "src"));
}

/** Whether dist/index.js and policies/dist/index.js are at least as new as every TypeScript source of theirs. */
export function isBuilt(projectDir: string): boolean {
  return programBuilt(projectDir) && packBuilt(projectDir);
}

/** Runs tsc of `tscRoot`'s node_modules on `project`, then marks `out` as built now. */
async function compile(tscRoot: string, project: string, out: string, what: string): Promise<void> {
  const tsc = path.join(tscRoot, "node_modules", "typescript", "bin", "tsc");
  if (!fs.existsSync(tsc)) throw new Error(`${tsc} is missing: run 'bash scripts/ensure-node-modules.sh' (it installs ${what}'s packages)`);
  try {
    await promisify(execFile)(process.execPath, [tsc, "-p", project], { env: childEnv(process.env, "base") });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`compiling ${what} failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`.trim());
  }
  fs.utimesSync(out, new Date(), new Date());
}

/** Async, so the event loop (and with it the fleet's locks and progress) keeps running while tsc works. */
export async function ensureBuilt(projectDir: string, log: (l: string) => void = () => {}): Promise<void> {
  if (!programBuilt(projectDir)) {
    log("compiling the Pulumi program (tsc)");
    await compile(projectDir, projectDir, path.join(projectDir, "dist", "index.js"), "the Pulumi program");
  }
  if (!packBuilt(projectDir)) {
    const pack = path.join(projectDir, "policies");
    log("compiling the policy pack (tsc)");
    await compile(pack, pack, path.join(pack, "dist", "index.js"), "the policy pack (policies/)");
  }
}
