/** The rendered template and the rules an operator's Dockerfile must pass: pure, no Pulumi. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEnvironmentConfig } from "../../src/config/load";
import { EXTENSIONS_DROPPED, renderDockerfile, STDLIB_DROPPED, type DockerfileInputs } from "../../src/hardening/dockerfile";
import { checkDockerfile, checkDockerfileAdvice } from "../../src/hardening/dockerfileRules";
import { immutableTag } from "../../src/image/buildContext";
import { rawEnvironment } from "../support/fixtures";

const env = parseEnvironmentConfig(rawEnvironment("staging"));
const inputs: DockerfileInputs = {
  base: "python:3.11-slim@sha256:" + "a".repeat(64), builder: "python:3.11@sha256:" + "b".repeat(64), app: env.app,
  version: "1.2.3", revision: "c".repeat(64), created: "2026-01-01T00:00:00.000Z", sourceUrl: "https://example.invalid/app",
};

/** the instructions of each stage, continuation lines joined */
function stages(text: string): string[][] {
  const lines = text.replace(/\\\n/g, " ").split("\n").filter((l) => l.trim() && !l.startsWith("#"));
  const out: string[][] = [];
  for (const l of lines) {
    if (l.startsWith("FROM ")) out.push([l]);
    else out[out.length - 1]!.push(l);
  }
  return out;
}

describe("rendered Dockerfile", () => {
  const text = renderDockerfile(inputs);
  const final = stages(text).at(-1)!;
  const rootfs = stages(text).find((s) => / AS rootfs$/.test(s[0]!))!;

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

  it("has a builder stage, a rootfs stage from the pinned base and a runtime FROM scratch", () => {
    assert.deepEqual(stages(text).map((s) => s[0]), [`FROM ${inputs.builder} AS builder`, `FROM ${inputs.base} AS rootfs`, "FROM scratch"]);
  });

  it("runs nothing in the runtime stage: no RUN, so it needs no shell; only COPY from the other stages and the context", () => {
    assert.deepEqual(final.filter((l) => /^RUN\b/.test(l)), []);
    assert.deepEqual(final.filter((l) => l.startsWith("COPY")), [
      "COPY --from=rootfs /rootfs/ /",
      "COPY --from=builder --chown=0:0 /opt/venv /opt/venv",
      "COPY --chown=1000:1000 app/ /app/",
      "COPY hardened-fleet/supervise.py /opt/hardened-fleet/supervise.py",
    ]);
  });

  it("gathers the interpreter, the libraries it and the venv load, and their package records in the rootfs stage", () => {
    assert.ok(rootfs.includes("COPY --from=builder /opt/venv /opt/venv"));
    assert.ok(rootfs.includes("COPY hardened-fleet/rootfs.py /build/rootfs.py"));
    const run = rootfs.find((l) => l.startsWith("RUN "))!;
    assert.match(run, /^RUN python3 \/build\/rootfs\.py --dest \/rootfs --scan \/opt\/venv --package-records --dlopen libgcc_s\.so\.1 /);
    assert.match(run, new RegExp(`--drop-stdlib ${STDLIB_DROPPED.join(",")}( |$)`));
    assert.match(run, new RegExp(`--drop-ext ${EXTENSIONS_DROPPED.join(",")}( |$)`));
    for (const kept of ["json", "sqlite3", "ssl", "tarfile", "email", "http", "urllib", "logging", "unittest"]) {
      assert.ok(!(STDLIB_DROPPED as readonly string[]).includes(kept), kept);
    }
    for (const kept of ["_ssl", "_hashlib", "_sqlite3", "_ctypes", "_json", "_decimal", "_uuid", "_lzma", "_bz2"]) {
      assert.ok(!(EXTENSIONS_DROPPED as readonly string[]).includes(kept), kept);
    }
  });

  it("runs as numeric 1000:1000 with a user named from config", () => {
    assert.match(text, /^USER 1000:1000$/m);
    assert.match(text, /--user appuser:1000:1000 /);
    const custom = renderDockerfile({ ...inputs, app: { ...env.app, user: "minipass" } });
    assert.match(custom, /--user minipass:1000:1000 /);
  });

  it("makes the data and scratch directories owned by 1000 (the data path 0750) before USER", () => {
    assert.match(text, /--writable \/data:0750 --writable \/tmp:1777 /);
    const custom = renderDockerfile({ ...inputs, app: { ...env.app, dataPath: "/srv/data", writablePaths: ["/tmp", "/var/cache/app"] } });
    assert.match(custom, /--writable \/srv\/data:0750 --writable \/tmp:1777 --writable \/var\/cache\/app:0755 /);
    assert.ok(text.indexOf("--writable") < text.indexOf("USER 1000:1000"));
  });

  it("keeps the base's LANG and uses no curl or wget", () => {
    assert.ok(final.some((l) => /^ENV .*\bLANG=C\.UTF-8\b/.test(l)));
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

  it("advises, without refusing, a runtime from a base with a shell and no reason label", () => {
    const [advice, ...more] = checkDockerfileAdvice(good);
    assert.deepEqual(more, []);
    assert.equal(advice!.rule, "shell-reason");
    assert.equal(advice!.line, 3);
    assert.match(advice!.fix, /FROM scratch/);
    assert.match(advice!.fix, /LABEL io\.hardened-fleet\.shell-reason=/);
    assert.deepEqual(checkDockerfileAdvice(renderDockerfile(inputs)), []);
  });

  const noShell: { name: string; text: string }[] = [
    { name: "a reason label in the final stage", text: good.replace("USER 1000:1000", 'LABEL io.hardened-fleet.shell-reason="entrypoint script runs migrations"\nUSER 1000:1000') },
    { name: "a reason label in the stage the final one builds on",
      text: good.replace(/FROM (python:3.11-slim@sha256:a+)/, 'FROM $1 AS runtime\nLABEL io.hardened-fleet.shell-reason="legacy cron"\nFROM runtime') },
    { name: "a final stage from scratch", text: good.replace(/FROM python:3.11-slim@sha256:a+/, "FROM scratch") },
    { name: "a final stage built on a stage from scratch", text: good.replace(/FROM python:3.11-slim@sha256:a+/, "FROM scratch AS rt\nFROM rt") },
    { name: "a distroless base", text: good.replace(/FROM python:3.11-slim@sha256:a+/, "FROM gcr.io/distroless/python3-debian12:nonroot") },
  ];
  for (const c of noShell) {
    it(`gives no shell advice for ${c.name}`, () => {
      assert.deepEqual(checkDockerfile(c.text).filter((v) => v.rule !== "non-root-user"), []);
      assert.deepEqual(checkDockerfileAdvice(c.text), []);
    });
  }
  it("still advises for a distroless :debug base (it has busybox) and an empty reason", () => {
    assert.equal(checkDockerfileAdvice(good.replace(/FROM python:3.11-slim@sha256:a+/, "FROM gcr.io/distroless/python3-debian12:debug")).length, 1);
    assert.equal(checkDockerfileAdvice(good.replace("USER 1000:1000", 'LABEL io.hardened-fleet.shell-reason=""\nUSER 1000:1000')).length, 1);
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
