/**
 * Prints the size of the hardened multi-stage image next to a single-stage build of the same app
 * that keeps its build tools (what the seeds started from). A benchmark, not a test.
 *   npm run bench
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Dockerode from "dockerode";
import { readEnvironmentConfig } from "../src/project/stackFiles";
import { buildImage } from "../src/engine/build";
import { execIn } from "../src/engine/exec";
import { prepareBuild } from "../src/image/buildContext";
import { formatTable } from "../src/table";

const projectDir = path.resolve(__dirname, "..");

function singleStage(builder: string, port: number): string {
  return `FROM ${builder}
WORKDIR /app
COPY requirements.txt /build/requirements.txt
COPY wheelhouse/ /build/wheelhouse/
RUN pip install --break-system-packages --no-index --find-links /build/wheelhouse -r /build/requirements.txt
COPY app/ /app/
EXPOSE ${port}
CMD ["gunicorn", "--bind", "0.0.0.0:${port}", "app:application"]
`;
}

async function tools(engine: Dockerode, image: string): Promise<string> {
  const c = await engine.createContainer({ Image: image, Cmd: ["sleep", "30"], User: "0" });
  await c.start();
  try {
    const r = await execIn(c, ["sh", "-c", "for t in gcc make pip3 apt-get; do command -v $t >/dev/null && printf '%s ' $t; done; true"]);
    return r.stdout.trim() || "none";
  } finally {
    await c.remove({ force: true });
  }
}

async function main(): Promise<void> {
  const engine = new Dockerode();
  const env = readEnvironmentConfig(projectDir, "staging");
  if (env.image.mode !== "build") throw new Error("staging must build its image");
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-bench-"));
  const build = prepareBuild({ image: env.image, app: env.app, projectDir, workDir });
  fs.writeFileSync(path.join(workDir, "Dockerfile.single"), singleStage(env.image.builder, env.app.port));
  const rows: [string, string, string, string, string][] = [];
  for (const [label, dockerfile, tag] of [
    ["hardened (multi-stage)", build.dockerfile, "hardened-fleet/bench:hardened"],
    ["single-stage with build tools", path.join(workDir, "Dockerfile.single"), "hardened-fleet/bench:single"],
  ] as const) {
    const t0 = Date.now();
    const id = await buildImage(engine, workDir, dockerfile, tag);
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    const info = await engine.getImage(id).inspect();
    rows.push([label, `${(info.Size / 1e6).toFixed(1)} MB`, info.Config.User || "root", await tools(engine, id), `${seconds} s`]);
  }
  const head: [string, string, string, string, string] = ["image", "size", "user", "build tools inside", "build time (cached layers count)"];
  console.log(formatTable(head, rows));
  const [hardened, single] = rows.map((r) => parseFloat(r[1]));
  console.log(`\nhardened image is ${(100 * (1 - hardened! / single!)).toFixed(0)}% smaller`);
  fs.rmSync(workDir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
