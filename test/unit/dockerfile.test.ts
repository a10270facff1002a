/** The rendered template and the rules an operator's Dockerfile must pass: pure, no Pulumi. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEnvironmentConfig } from "../../src/config/load";
import { renderDockerfile, type DockerfileInputs } from "../../src/hardening/dockerfile";
import { checkDockerfile } from "../../src/hardening/dockerfileRules";
import { immutableTag } from "../../src/image/buildContext";
import { rawEnvironment } from "../support/fixtures";

const env = parseEnvironmentConfig(rawEnvironment("staging"));
const inputs: DockerfileInputs = {
  base: "python:3.11-slim@sha256:" + "a".repeat(64), builder: "python:3.11@sha256:" + "b".repeat(64), app: env.app,
  version: "1.2.3", revision: "c".repeat(64), created: "2026-01-01T00:00:00.000Z", sourceUrl: "https://example.invalid/app",
};

describe("rendered Dockerfile", () => {
  const text = renderDockerfile(inputs);

  it("passes every hardening rule", () => {
    assert.deepEqual(checkDockerfile(text), []);
  });

  it("runs the supervisor as PID 1 in front of the app's command (exits 143 when the engine stops it)", () => {
    assert.match(text, /^COPY hardened-fleet\/supervise\.py \/opt\/hardened-fleet\/supervise\.py$/m);
    assert.match(text, /^ENTRYPOINT \["\/opt\/venv\/bin\/python","\/opt\/hardened-fleet\/supervise\.py"\]$/m);
    assert.match(text, /^CMD \["\/opt\/venv\/bin\/gunicorn",/m);
  });

  it("tags each build immutably: the version, then a hash of the Dockerfile and the context", () => {
    const a = immutableTag("acme/app", "1.0.0", text, "c".repeat(64));
    assert.match(a, /^acme\/app:1\.0\.0-[0-9a-f]{12}$/);
    assert.equal(immutableTag("acme/app", "1.0.0", text, "c".repeat(64)), a);
    // same version and source, another Dockerfile (a new base, say): another tag, the old one keeps its image
    assert.notEqual(immutableTag("acme/app", "1.0.0", text.replace(inputs.base, "other/base:1"), "c".repeat(64)), a);
    assert.notEqual(immutableTag("acme/app", "1.0.0", text, "d".repeat(64)), a);
  });

  it("has a builder stage and a runtime stage from the configured bases", () => {
    assert.match(text, new RegExp(`^FROM ${inputs.builder} AS builder$`, "m"));
    assert.match(text, new RegExp(`^FROM ${inputs.base.replace(/[.]/g, "\\.")}$`, "m"));
  });

  it("runs as numeric 1000:1000 with a user named from config", () => {
    assert.match(text, /^USER 1000:1000$/m);
    assert.match(text, /useradd --uid 1000 --gid 1000 .* appuser/);
    const custom = renderDockerfile({ ...inputs, app: { ...env.app, user: "minipass" } });
    assert.match(custom, /groupadd --gid 1000 minipass/);
  });

  it("creates and owns the data and scratch directories before USER", () => {
    assert.match(text, /mkdir -p \/data \/tmp/);
    assert.match(text, /chown 1000:1000 \/data \/tmp/);
    assert.ok(text.indexOf("chown 1000:1000") < text.indexOf("USER 1000:1000"));
  });

  it("strips setuid/setgid bits and package lists, and uses no curl or wget", () => {
    assert.match(text, /find \/ -xdev -type f -perm \/6000 -exec chmod a-s/);
    assert.match(text, /rm -rf \/var\/lib\/apt\/lists\/\*/);
    assert.doesNotMatch(text, /curl|wget/);
  });

  it("installs offline from the wheelhouse and removes pip from the venv", () => {
    assert.match(text, /pip install --no-index --find-links \/build\/wheelhouse/);
    assert.match(text, /pip uninstall --yes --quiet pip setuptools/);
  });

  it("carries OCI and hardening labels and a JSON-form HEALTHCHECK and CMD", () => {
    for (const label of ["source", "revision", "created", "version"]) assert.match(text, new RegExp(`org\\.opencontainers\\.image\\.${label}=`));
    assert.match(text, /io\.hardened-fleet\.nonroot-uid="1000"/);
    assert.match(text, /^HEALTHCHECK --interval=2s --timeout=3s --start-period=2s --retries=3 \\\n  CMD \["\/opt\/venv\/bin\/python","\/app\/healthcheck.py"\]$/m);
    assert.match(text, /^CMD \["\/opt\/venv\/bin\/gunicorn",/m);
  });

  it("is the same text for the same inputs (no rebuild without a change)", () => {
    assert.equal(renderDockerfile(inputs), text);
    assert.notEqual(renderDockerfile({ ...inputs, revision: "d".repeat(64) }), text);
  });
});

describe("operator Dockerfile rules", () => {
  const good = `FROM python:3.11@sha256:${"b".repeat(64)} AS builder
RUN pip wheel -w /w flask
FROM python:3.11-slim@sha256:${"a".repeat(64)}
COPY --from=builder /w /w
USER 1000:1000
HEALTHCHECK CMD ["python", "-c", "print(1)"]
CMD ["python", "-m", "app"]
`;
  it("accepts a compliant Dockerfile", () => {
    assert.deepEqual(checkDockerfile(good), []);
  });

  const cases: { name: string; text: string; rule: string; line?: number; fix: RegExp }[] = [
    { name: "single stage", text: good.split("\n").slice(2).join("\n").replace("COPY --from=builder /w /w\n", ""), rule: "multi-stage", line: 1, fix: /builder stage/ },
    { name: "untagged FROM", text: good.replace(/FROM python:3.11-slim@sha256:a+/, "FROM python"), rule: "from-pinned", line: 3, fix: /pin it/ },
    { name: "latest FROM", text: good.replace(/FROM python:3.11-slim@sha256:a+/, "FROM python:latest"), rule: "from-pinned", line: 3, fix: /digest/ },
    { name: "FROM through a variable", text: `ARG BASE=python:3.11\n${good.replace(/FROM python:3.11-slim@sha256:a+/, "FROM $BASE")}`, rule: "from-pinned", line: 4, fix: /literally/ },
    { name: "no USER", text: good.replace("USER 1000:1000\n", ""), rule: "non-root-user", fix: /USER 1000:1000/ },
    { name: "USER root by name", text: good.replace("USER 1000:1000", "USER appuser"), rule: "non-root-user", line: 5, fix: /numeric/ },
    { name: "USER 0", text: good.replace("USER 1000:1000", "USER 0:0"), rule: "non-root-user", line: 5, fix: /1000:1000/ },
    { name: "USER set only in the builder", text: good.replace("RUN pip", "USER 1000\nRUN pip").replace("USER 1000:1000\n", ""), rule: "non-root-user", fix: /final stage/ },
    { name: "no HEALTHCHECK", text: good.replace(/HEALTHCHECK.*\n/, ""), rule: "healthcheck", fix: /own runtime/ },
    { name: "HEALTHCHECK NONE", text: good.replace(/HEALTHCHECK.*\n/, "HEALTHCHECK NONE\n"), rule: "healthcheck", line: 6, fix: /own runtime/ },
    { name: "ADD", text: good.replace("COPY --from", "ADD https://example.invalid/x.tgz /x\nCOPY --from"), rule: "copy-not-add", line: 4, fix: /use COPY/ },
    { name: "secret in ENV", text: good.replace("USER 1000:1000", "ENV DB_PASSWORD=hunter2\nUSER 1000:1000"), rule: "no-secret-in-image", line: 5, fix: /Pulumi secrets/ },
    { name: "token in ARG", text: `ARG GITHUB_TOKEN\n${good}`, rule: "no-secret-in-image", line: 1, fix: /runtime/ },
    { name: "shell-form CMD", text: good.replace(/^CMD \[.*\]$/m, "CMD python -m app"), rule: "exec-form", line: 7, fix: /JSON form/ },
  ];
  for (const c of cases) {
    it(`catches ${c.name} as [${c.rule}]${c.line ? ` at line ${c.line}` : ""}`, () => {
      const found = checkDockerfile(c.text).filter((v) => v.rule === c.rule);
      assert.equal(found.length, 1, JSON.stringify(checkDockerfile(c.text)));
      assert.equal(found[0]!.line, c.line);
      assert.match(found[0]!.fix, c.fix);
    });
  }
});
