/**
 * The policy pack's fixture program (test/policy/program: a docker.Container, docker.Service or
 * docker.Volume from its stack's config) run by the real `pulumi` of the project's toolchain, in a
 * working copy of its own with a file backend, as a Pulumi user would run it. For the pack's suite
 * (test/policy/pack.test.ts) and its benchmark (bench/policy.ts).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { stringify } from "yaml";
import { findToolchain } from "../../src/pulumi/toolchain";
import { projectDir } from "./fixtures";

export const PACK = path.join(projectDir, "policies");

export interface ProgramCase {
  /** the stack's name (prod-* stacks are production for image-pinned-by-digest) */
  stack: string;
  kind?: "container" | "service" | "volume";
  settings?: Record<string, unknown>;
  /** false: no ContainerGate (nothing sets the container's PIDs limit) */
  gate?: boolean;
  /** the pack's config file (--policy-pack-config) */
  packConfig?: Record<string, unknown>;
  /** false: preview without the pack */
  pack?: boolean;
}

export interface Preview {
  code: number;
  output: string;
  /** policy -> level, of every violation reported */
  violations: Map<string, string>;
}

export interface FixtureProgram {
  work: string;
  /** `pulumi <args>` in the program's directory; never rejects */
  pulumi(args: string[]): Promise<{ code: number; output: string }>;
  /** makes the case's stack (once) */
  init(c: ProgramCase): Promise<void>;
  /** `pulumi preview --policy-pack <policies>` of a case, in its stack */
  preview(c: ProgramCase): Promise<Preview>;
  remove(): void;
}

export function fixtureProgram(): FixtureProgram {
  // inside the checkout (gitignored), so that the program finds the project's @pulumi packages
  const work = fs.mkdtempSync(path.join(projectDir, ".fleet", "policy-program-"));
  const program = path.join(work, "program");
  for (const f of ["Pulumi.yaml", "index.js"]) fs.cpSync(path.join(projectDir, "test", "policy", "program", f), path.join(program, f));
  fs.mkdirSync(path.join(work, "state"));
  const tc = findToolchain();
  const env: Record<string, string> = {
    PATH: [tc.bin, path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter),
    HOME: process.env.HOME ?? "/root",
    ...(tc.home ? { PULUMI_HOME: tc.home } : {}),
    PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: "policy-pack-fixture",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
  };
  const made = new Set<string>();
  const pulumi = (args: string[]) => new Promise<{ code: number; output: string }>((resolve) => {
    execFile(path.join(tc.bin, "pulumi"), args, { cwd: program, env, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  });
  const init = async (c: ProgramCase) => {
    if (made.has(c.stack)) return;
    const r = await pulumi(["stack", "init", c.stack, "--non-interactive"]);
    assert.equal(r.code, 0, r.output);
    made.add(c.stack);
  };
  return {
    work,
    pulumi,
    init,
    async preview(c) {
      await init(c);
      const config = path.join(work, `${c.stack}.config.yaml`);
      fs.writeFileSync(config, stringify({ config: {
        "policy-fixture:kind": c.kind ?? "container",
        "policy-fixture:settings": c.settings ?? {},
        "policy-fixture:gate": c.gate ?? true,
        "policy-fixture:gateModule": path.join(projectDir, "dist", "components", "containerGate.js"),
      } }));
      const args = ["preview", "--stack", c.stack, "--config-file", config, "--non-interactive", "--color", "never"];
      if (c.pack !== false) args.push("--policy-pack", PACK);
      if (c.packConfig) {
        const file = path.join(work, `${c.stack}.pack.json`);
        fs.writeFileSync(file, JSON.stringify(c.packConfig));
        args.push("--policy-pack-config", file);
      }
      const r = await pulumi(args);
      const violations = new Map<string, string>();
      for (const m of r.output.matchAll(/- \[(mandatory|advisory)\]\s+(\S+)\s+\(/g)) violations.set(m[2]!, m[1]!);
      return { ...r, violations };
    },
    remove: () => fs.rmSync(work, { recursive: true, force: true }),
  };
}
