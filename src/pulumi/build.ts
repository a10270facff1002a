/** Makes sure dist/ (the JavaScript Pulumi runs) is at least as new as the TypeScript sources. */
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

/** Whether dist/index.js is at least as new as every TypeScript source of the program. */
export function isBuilt(projectDir: string): boolean {
  const out = path.join(projectDir, "dist", "index.js");
  const sources = Math.max(fs.statSync(path.join(projectDir, "index.ts")).mtimeMs,
    ...["components", "src"].map((d) => newestTs(path.join(projectDir, d))));
  return fs.existsSync(out) && fs.statSync(out).mtimeMs >= sources;
}

/** Async, so the event loop (and with it the fleet's locks and progress) keeps running while tsc works. */
export async function ensureBuilt(projectDir: string, log: (l: string) => void = () => {}): Promise<void> {
  const out = path.join(projectDir, "dist", "index.js");
  if (isBuilt(projectDir)) return;
  log("compiling the Pulumi program (tsc)");
  const tsc = path.join(projectDir, "node_modules", "typescript", "bin", "tsc");
  try {
    await promisify(execFile)(process.execPath, [tsc, "-p", projectDir], { env: childEnv(process.env, "base") });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`compiling the Pulumi program failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`.trim());
  }
  fs.utimesSync(out, new Date(), new Date());
}
