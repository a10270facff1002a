/** Finds (or builds, once) the pinned Pulumi toolchain through scripts/pulumi-toolchain.sh. */
import { execFileSync } from "node:child_process";
import * as path from "node:path";

let cached: string | undefined;

/** The bin directory holding pulumi and the Node.js language host. Progress goes to stderr. */
export function toolchainBin(projectDir: string): string {
  if (process.env.HARDENED_FLEET_PULUMI_BIN) return process.env.HARDENED_FLEET_PULUMI_BIN;
  if (cached) return cached;
  const script = path.join(projectDir, "scripts", "pulumi-toolchain.sh");
  const out = execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const bin = out.trim().split("\n").pop();
  if (!bin) throw new Error(`${script} printed no bin directory`);
  cached = bin;
  return bin;
}
