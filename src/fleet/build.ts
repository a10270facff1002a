/** Makes sure dist/ (the JavaScript Pulumi runs) is at least as new as the TypeScript sources. */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

function newestTs(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

export function ensureBuilt(projectDir: string, log: (l: string) => void = () => {}): void {
  const out = path.join(projectDir, "dist", "index.js");
  const sources = Math.max(fs.statSync(path.join(projectDir, "index.ts")).mtimeMs,
    ...["components", "src"].map((d) => newestTs(path.join(projectDir, d))));
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= sources) return;
  log("compiling the Pulumi program (tsc)");
  const tsc = path.join(projectDir, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", projectDir], { stdio: "inherit" });
  fs.utimesSync(out, new Date(), new Date());
}
