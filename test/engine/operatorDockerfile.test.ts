/**
 * An operator's own Dockerfile on the real engine: one that passes the rules builds through the same
 * path as the template and runs as 1000; one that breaks them never reaches the engine.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { readEnvironmentConfig } from "../../src/project/stackFiles";
import { buildImage } from "../../src/engine/build";
import { prepareBuild } from "../../src/image/buildContext";
import { DockerfileRuleError } from "../../src/hardening/dockerfileRules";
import { engine, removeQuietly } from "../support/engine";
import { projectDir } from "../support/fixtures";

const TAG = "hardened-fleet/operator-dockerfile:test";

describe("operator Dockerfile on the real engine", () => {
  const env = readEnvironmentConfig(projectDir, "staging");
  if (env.image.mode !== "build") throw new Error("staging must build");
  const image = env.image;
  const src = fs.mkdtempSync(path.join(os.tmpdir(), "hf-operator-"));
  fs.writeFileSync(path.join(src, "hello.py"), "print('hello from the operator image')\n");

  after(async () => {
    await removeQuietly({ images: [TAG] });
    fs.rmSync(src, { recursive: true, force: true });
  });

  it("a compliant multi-stage Dockerfile builds and runs as 1000:1000 with its healthcheck", async () => {
    fs.writeFileSync(path.join(src, "Dockerfile"), `FROM ${image.builder} AS builder
RUN python3 -m compileall -q /usr/lib/python3.11/json
FROM ${image.base}
COPY --chown=1000:1000 hello.py /app/hello.py
USER 1000:1000
HEALTHCHECK CMD ["python3", "-c", "print(1)"]
CMD ["python3", "/app/hello.py"]
`);
    const build = prepareBuild({ image: { ...image, appSource: src, dockerfile: "Dockerfile" }, app: env.app, projectDir, workDir: src });
    const id = await buildImage(engine, build.context, build.dockerfile, TAG);
    const info = await engine.getImage(id).inspect();
    assert.equal(info.Config.User, "1000:1000");
    assert.deepEqual(info.Config.Healthcheck?.Test, ["CMD", "python3", "-c", "print(1)"]);
    const c = await engine.createContainer({ Image: id, HostConfig: { CapDrop: ["ALL"], ReadonlyRootfs: true, NetworkMode: "none" } });
    try {
      await c.start();
      assert.equal(((await c.wait()) as { StatusCode: number }).StatusCode, 0);
      const logs = (await c.logs({ stdout: true })).toString("utf8");
      assert.match(logs, /hello from the operator image/);
    } finally {
      await c.remove({ force: true });
    }
  });

  it("a root, single-stage Dockerfile is refused before any build", () => {
    fs.writeFileSync(path.join(src, "Dockerfile"), `FROM ${image.base}\nADD hello.py /app/\nCMD python3 /app/hello.py\n`);
    assert.throws(() => prepareBuild({ image: { ...image, appSource: src, dockerfile: "Dockerfile" }, app: env.app, projectDir, workDir: src }),
      (err: unknown) => err instanceof DockerfileRuleError && /\[multi-stage\]/.test(err.message) && /:2 \[copy-not-add\]/.test(err.message)
        && /\[non-root-user\]/.test(err.message) && /\[healthcheck\]/.test(err.message) && /:3 \[exec-form\]/.test(err.message));
  });
});
