/**
 * Image sizes, side by side in one run: the pinned base, a single-stage build of the demo app (a naive
 * Dockerfile: everything in one stage on the base that can install it, build tools kept), the
 * multi-stage runtime on the base that fleet rendered before issue 25, and the shell-less runtime it
 * renders now (FROM scratch). What each keeps is read from `docker export`, so the scratch runtime
 * needs no shell for it. A benchmark, not a test.
 *   npm run bench -- image
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Dockerode from "dockerode";
import { readEnvironmentConfig } from "../src/project/stackFiles";
import type { AppSettings } from "../src/config/schema";
import { buildImage } from "../src/engine/build";
import { APP_DIR, CONTEXT_SUPERVISOR, SUPERVISOR_PATH, VENV_DIR } from "../src/hardening/dockerfile";
import { prepareBuild } from "../src/image/buildContext";
import { formatTable } from "../src/table";

const projectDir = path.resolve(__dirname, "..");
const PREFIX = "hf25-bench";

function singleStage(builder: string, app: AppSettings): string {
  return `FROM ${builder}
WORKDIR ${APP_DIR}
COPY requirements.txt /build/requirements.txt
COPY wheelhouse/ /build/wheelhouse/
RUN pip install --break-system-packages --no-index --find-links /build/wheelhouse -r /build/requirements.txt
COPY app/ ${APP_DIR}/
EXPOSE ${app.port}
CMD ["gunicorn", "--bind", "0.0.0.0:${app.port}", "app:application"]
`;
}

/** The runtime stage fleet rendered before issue 25: the pinned base with its shell and dpkg, user made with useradd. */
function multiStageOnBase(rendered: string, base: string, app: AppSettings): string {
  const builder = rendered.slice(0, rendered.indexOf("\n# ---- rootfs"));
  const writable = [app.dataPath, ...app.writablePaths].join(" ");
  return `${builder}

FROM ${base}
RUN set -e; \\
    groupadd --gid 1000 ${app.user}; \\
    useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${app.user}; \\
    mkdir -p ${writable}; chown 1000:1000 ${writable}; chmod 0750 ${app.dataPath}; \\
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /root/.cache /tmp/*; \\
    find / -xdev -type f -perm /6000 -exec chmod a-s {} +
COPY --from=builder --chown=0:0 ${VENV_DIR} ${VENV_DIR}
COPY --chown=1000:1000 app/ ${APP_DIR}/
COPY ${CONTEXT_SUPERVISOR} ${SUPERVISOR_PATH}
WORKDIR ${APP_DIR}
USER 1000:1000
CMD ["${VENV_DIR}/bin/gunicorn", "--bind", "0.0.0.0:${app.port}", "app:application"]
`;
}

/** Every path of the image's filesystem with its mode, from `docker export` of a container never started. */
async function listing(engine: Dockerode, image: string): Promise<{ path: string; mode: string }[]> {
  const c = await engine.createContainer({ Image: image, name: `${PREFIX}-list-${process.pid}` });
  try {
    const tar = spawn("tar", ["-tvf", "-"]);
    const out: Buffer[] = [];
    tar.stdout.on("data", (b: Buffer) => out.push(b));
    (await c.export()).pipe(tar.stdin);
    await new Promise((resolve) => tar.on("close", resolve));
    return Buffer.concat(out).toString("utf8").split("\n").flatMap((line) => {
      const m = /^(\S{10})\s+\S+\s+\d+\s+\S+\s+\S+\s+(.*?)(?: -> .*)?$/.exec(line);
      return m ? [{ mode: m[1]!, path: m[2]!.replace(/\/$/, "") }] : [];
    });
  } finally {
    await c.remove({ force: true });
  }
}

const SHELLS = ["sh", "bash", "dash"];
const PACKAGE_TOOLS = ["apt", "apt-get", "dpkg"];
const BUILD_TOOLS = ["gcc", "cc", "make", "pip", "pip3"];

function found(files: { path: string }[], names: string[]): string {
  const bins = new Set(files.filter((f) => /^(usr\/)?(local\/)?s?bin\/[^/]+$/.test(f.path)).map((f) => path.basename(f.path)));
  const hits = names.filter((n) => bins.has(n));
  return hits.length ? hits.join(" ") : "none";
}

async function main(): Promise<void> {
  const engine = new Dockerode();
  const env = readEnvironmentConfig(projectDir, "staging");
  if (env.image.mode !== "build") throw new Error("staging must build its image");
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`));
  const tags: string[] = [];
  try {
    const build = prepareBuild({ image: env.image, app: env.app, projectDir, workDir });
    fs.writeFileSync(path.join(workDir, "Dockerfile.single"), singleStage(env.image.builder, env.app));
    fs.writeFileSync(path.join(workDir, "Dockerfile.multi"), multiStageOnBase(build.dockerfileText, env.image.base, env.app));
    const base = await engine.getImage(env.image.base).inspect();
    const rows: string[][] = [];
    const row = async (label: string, image: string, size: number, seconds: string) => {
      const files = await listing(engine, image);
      const setid = files.filter((f) => /^-..[sS]|^-.....[sS]/.test(f.mode)).length;
      rows.push([label, `${(size / 1e6).toFixed(1)} MB`, `${((100 * size) / base.Size).toFixed(0)}%`, found(files, SHELLS),
        found(files, PACKAGE_TOOLS), found(files, BUILD_TOOLS), String(setid), seconds]);
    };
    await row(`base ${env.image.base}`, env.image.base, base.Size, "-");
    for (const [label, dockerfile, name] of [
      ["single stage on the builder base", "Dockerfile.single", "single"],
      ["multi-stage on the base (before issue 25)", "Dockerfile.multi", "multi"],
      ["shell-less runtime, FROM scratch (now)", "Dockerfile", "shellless"],
    ] as const) {
      const tag = `${PREFIX}-${name}:latest`;
      tags.push(tag);
      const t0 = Date.now();
      const id = await buildImage(engine, workDir, path.join(workDir, dockerfile), tag);
      const seconds = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
      await row(label, id, (await engine.getImage(id).inspect()).Size, seconds);
    }
    console.log(formatTable(["image", "size", "% of base", "shell", "package manager", "build tools", "setuid/setgid files", "build time (cached layers count)"], rows));
  } finally {
    for (const tag of tags) await engine.getImage(tag).remove({ force: true }).catch(() => {});
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
