/** Builds the staging image exactly as HardenedImage renders it, on the real engine, for tests. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readEnvironmentConfig } from "../../src/project/stackFiles";
import type { EnvironmentConfig } from "../../src/config/schema";
import { buildImage } from "../../src/engine/build";
import { prepareBuild } from "../../src/image/buildContext";
import { engine } from "./engine";
import { projectDir } from "./fixtures";

export async function buildStagingImage(tag: string): Promise<{ env: EnvironmentConfig; imageId: string }> {
  const env = readEnvironmentConfig(projectDir, "staging");
  if (env.image.mode !== "build") throw new Error("staging must build its image");
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-image-"));
  try {
    const build = prepareBuild({ image: env.image, app: env.app, projectDir, workDir });
    return { env, imageId: await buildImage(engine, build.context, build.dockerfile, tag) };
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/** An image derived from `from` by a few Dockerfile lines (to weaken it in one way). */
export async function deriveImage(from: string, lines: string[], tag: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-derive-"));
  try {
    fs.writeFileSync(path.join(dir, "Dockerfile"), [`FROM ${from}`, ...lines, ""].join("\n"));
    return await buildImage(engine, dir, path.join(dir, "Dockerfile"), tag);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
