/**
 * Assembles the build context of the hardened image from the app source: no Pulumi here.
 *
 * Template builds get a context of their own (Dockerfile, app/, wheelhouse/, requirements.txt) so the
 * wheelhouse never lands in the final image; an operator's own Dockerfile is checked against the
 * hardening rules first and then builds from the app source as it is.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { AppSettings, BuildImageConfig } from "../config/schema";
import {
  CONTEXT_APP_DIR, CONTEXT_REQUIREMENTS, CONTEXT_ROOTFS_SCRIPT, CONTEXT_SUPERVISOR, CONTEXT_WHEELHOUSE_DIR, renderDockerfile,
  type DockerfileInputs,
} from "../hardening/dockerfile";
import { checkDockerfile, checkDockerfileAdvice, DockerfileRuleError, type DockerfileViolation } from "../hardening/dockerfileRules";

export interface PreparedBuild {
  /** directory handed to docker as the build context */
  context: string;
  /** Dockerfile path (absolute) */
  dockerfile: string;
  dockerfileText: string;
  version: string;
  revision: string;
  created: string;
  /**
   * `name:<version>-<build12>`, build12 a hash of everything the build reads (Dockerfile, app, wheels,
   * supervisor, rootfs script): immutable, so an image customers may roll back to is never untagged by a later build
   * and `docker image prune` cannot remove it.
   */
  tag: string;
  /** recommendations the Dockerfile does not follow (checkDockerfileAdvice): to show, they stop nothing; [] for the template */
  advice: DockerfileViolation[];
}

const SKIP = new Set([CONTEXT_WHEELHOUSE_DIR, "__pycache__", ".git", "node_modules", ".hardened-fleet"]);

function walk(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (SKIP.has(entry.name) || entry.name.endsWith(".pyc")) continue;
    const child = path.join(rel, entry.name);
    if (entry.isDirectory()) out.push(...walk(dir, child));
    else if (entry.isFile()) out.push(child);
  }
  return out;
}

export interface SourceFacts {
  files: string[];
  version: string;
  revision: string;
  created: string;
}

/** Version (VERSION file), content hash and newest modification time of an app source tree. */
export function sourceFacts(sourceDir: string, extraFiles: string[] = []): SourceFacts {
  if (!fs.existsSync(sourceDir) || !fs.statSync(sourceDir).isDirectory()) {
    throw new Error(`app source ${sourceDir} is not a directory: set hardened-fleet:environment.image.appSource to the app's directory`);
  }
  const files = walk(sourceDir);
  const hash = createHash("sha256");
  let newest = 0;
  for (const rel of [...files, ...extraFiles]) {
    const abs = path.isAbsolute(rel) ? rel : path.join(sourceDir, rel);
    // names relative to the source: where the checkout lives is no part of the revision (nor of the image)
    hash.update(path.relative(sourceDir, abs)).update("\0").update(fs.readFileSync(abs)).update("\0");
    newest = Math.max(newest, Math.floor(fs.statSync(abs).mtimeMs / 1000) * 1000);
  }
  const versionFile = path.join(sourceDir, "VERSION");
  const version = fs.existsSync(versionFile) ? fs.readFileSync(versionFile, "utf8").trim() : "0.0.0";
  if (!/^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/.test(version)) {
    throw new Error(`${versionFile} holds '${version}', which is not a valid version (letters, digits, '.', '_', '-')`);
  }
  return { files, version, revision: hash.digest("hex"), created: new Date(newest).toISOString() };
}

/** The supervisor every rendered image runs as PID 1 (read from the sources: tsc does not copy it to dist/). */
export const supervisorSource = (projectDir: string) => path.join(projectDir, "src", "image", "assets", "supervise.py");
/** What gathers the shell-less runtime's root filesystem in the rootfs stage (read from the sources, like the supervisor). */
export const rootfsScriptSource = (projectDir: string) => path.join(projectDir, "src", "image", "assets", "rootfs.py");

/** An immutable tag: the version, then a hash of the Dockerfile and of every file the build context holds. */
export function immutableTag(name: string, version: string, dockerfileText: string, contentHash: string): string {
  const build = createHash("sha256").update(dockerfileText).update("\0").update(contentHash).digest("hex");
  return `${name}:${version}-${build.slice(0, 12)}`;
}

function writeIfChanged(file: string, content: string | Buffer): void {
  if (fs.existsSync(file) && fs.readFileSync(file).equals(Buffer.from(content))) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

/** Mirrors `files` from src to dest, removing what is no longer there; unchanged files keep their mtime. */
function mirror(src: string, dest: string, files: string[]): void {
  const keep = new Set(files);
  if (fs.existsSync(dest)) {
    for (const rel of walk(dest)) if (!keep.has(rel)) fs.rmSync(path.join(dest, rel));
  }
  for (const rel of files) writeIfChanged(path.join(dest, rel), fs.readFileSync(path.join(src, rel)));
}

export function prepareBuild(opts: {
  image: BuildImageConfig;
  app: AppSettings;
  projectDir: string;
  /** where the assembled context goes, e.g. <project>/.fleet/build/staging */
  workDir: string;
}): PreparedBuild {
  const { image, app } = opts;
  const sourceDir = path.resolve(opts.projectDir, image.appSource);

  if (image.dockerfile) {
    const file = path.resolve(sourceDir, image.dockerfile);
    if (!fs.existsSync(file)) throw new Error(`hardened-fleet:environment.image.dockerfile: ${file} does not exist`);
    const text = fs.readFileSync(file, "utf8");
    const violations = checkDockerfile(text);
    if (violations.length > 0) throw new DockerfileRuleError(file, violations);
    const facts = sourceFacts(sourceDir);
    return { context: sourceDir, dockerfile: file, dockerfileText: text, version: facts.version, revision: facts.revision,
      created: facts.created, tag: immutableTag(image.name, facts.version, text, facts.revision), advice: checkDockerfileAdvice(text) };
  }

  const requirements = path.join(sourceDir, CONTEXT_REQUIREMENTS);
  const wheelhouse = path.join(sourceDir, CONTEXT_WHEELHOUSE_DIR);
  if (!fs.existsSync(requirements)) throw new Error(`${requirements} is missing: the Python template installs the app's requirements from it`);
  if (!fs.existsSync(wheelhouse)) {
    throw new Error(`${wheelhouse} is missing: the build installs offline from a wheelhouse; run scripts/setup-engine.sh (it makes one) or 'pip download -d ${wheelhouse} -r ${requirements}'`);
  }
  const wheels = fs.readdirSync(wheelhouse).filter((f) => f.endsWith(".whl") || f.endsWith(".tar.gz")).sort();
  const facts = sourceFacts(sourceDir, wheels.map((w) => path.join(wheelhouse, w)));
  const inputs: DockerfileInputs = {
    base: image.base, builder: image.builder, app, version: facts.version, revision: facts.revision,
    created: facts.created, sourceUrl: image.sourceUrl,
  };
  const text = renderDockerfile(inputs);
  const context = opts.workDir;
  mirror(sourceDir, path.join(context, CONTEXT_APP_DIR), facts.files.filter((f) => f !== CONTEXT_REQUIREMENTS));
  mirror(wheelhouse, path.join(context, CONTEXT_WHEELHOUSE_DIR), wheels);
  writeIfChanged(path.join(context, CONTEXT_REQUIREMENTS), fs.readFileSync(requirements));
  writeIfChanged(path.join(context, "Dockerfile"), text);
  const supervisor = fs.readFileSync(supervisorSource(opts.projectDir));
  writeIfChanged(path.join(context, CONTEXT_SUPERVISOR), supervisor);
  const rootfsScript = fs.readFileSync(rootfsScriptSource(opts.projectDir));
  writeIfChanged(path.join(context, CONTEXT_ROOTFS_SCRIPT), rootfsScript);
  const contentHash = createHash("sha256").update(facts.revision).update("\0").update(supervisor).update("\0").update(rootfsScript)
    .digest("hex");
  return { context, dockerfile: path.join(context, "Dockerfile"), dockerfileText: text, version: facts.version,
    revision: facts.revision, created: facts.created, tag: immutableTag(image.name, facts.version, text, contentHash), advice: [] };
}
