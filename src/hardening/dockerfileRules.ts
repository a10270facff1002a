/**
 * Checks an operator's own Dockerfile against the hardening rules the rendered template follows.
 * Pure: text in, violations out. Each violation names the rule, the line and the fix.
 * checkDockerfile holds what is required (a violation stops the build); checkDockerfileAdvice what is
 * recommended (reported, the build goes on).
 */
import { DockerfileParser, type From, type Instruction, type JSONInstruction, type PropertyInstruction } from "dockerfile-ast";
import { LABEL_SHELL_REASON } from "./names";

export interface DockerfileViolation {
  rule: string;
  /** 1-based line, or undefined for a rule about the whole file */
  line?: number;
  message: string;
  fix: string;
}

const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;
const NUMERIC_USER = /^(\d+)(?::(\d+))?$/;

const lineOf = (i: Instruction) => i.getRange().start.line + 1;

function stagesOf(instructions: Instruction[]): Instruction[][] {
  const stages: Instruction[][] = [];
  for (const ins of instructions) {
    if (ins.getKeyword() === "FROM") stages.push([ins]);
    else if (stages.length > 0) stages[stages.length - 1]!.push(ins);
  }
  return stages;
}

function checkFrom(from: From, stageNames: Set<string>): DockerfileViolation | undefined {
  const image = from.getImage() ?? "";
  const line = lineOf(from);
  if (image === "scratch" || stageNames.has(image.toLowerCase())) return undefined;
  if (image.includes("$")) {
    return { rule: "from-pinned", line, message: `FROM ${image} names its image through a variable, so it cannot be checked`,
      fix: "write the image reference literally, pinned by tag or digest" };
  }
  const tag = from.getImageTag();
  const digest = from.getImageDigest();
  if (!tag && !digest) {
    return { rule: "from-pinned", line, message: `FROM ${image} has no tag or digest, which means 'latest'`,
      fix: `pin it: ${image}:<version> or ${image}@sha256:<digest>` };
  }
  if (tag === "latest") {
    return { rule: "from-pinned", line, message: `FROM ${image} uses the 'latest' tag`,
      fix: "pin a version tag or, better, a digest (@sha256:...)" };
  }
  return undefined;
}

function isJsonForm(ins: Instruction): boolean {
  return (ins as JSONInstruction).getOpeningBracket?.() != null && (ins as JSONInstruction).getClosingBracket?.() != null;
}

export function checkDockerfile(text: string): DockerfileViolation[] {
  const dockerfile = DockerfileParser.parse(text);
  const instructions = dockerfile.getInstructions();
  const stages = stagesOf(instructions);
  const out: DockerfileViolation[] = [];

  if (stages.length < 2) {
    out.push({ rule: "multi-stage", line: stages[0] ? lineOf(stages[0][0]!) : undefined,
      message: `found ${stages.length} stage${stages.length === 1 ? "" : "s"}; build tools must stay in a builder stage`,
      fix: "add a builder stage (FROM <builder> AS builder) and COPY --from=builder only what the app needs" });
  }

  const stageNames = new Set<string>();
  for (const stage of stages) {
    const from = stage[0] as From;
    const violation = checkFrom(from, stageNames);
    if (violation) out.push(violation);
    const name = from.getBuildStage();
    if (name) stageNames.add(name.toLowerCase());
  }

  for (const ins of instructions) {
    const kw = ins.getKeyword();
    if (kw === "ADD") {
      out.push({ rule: "copy-not-add", line: lineOf(ins), message: "ADD can fetch URLs and unpack archives implicitly",
        fix: "use COPY (and an explicit download step in the builder stage if you need one)" });
    }
    if (kw === "ENV" || kw === "ARG") {
      for (const prop of (ins as PropertyInstruction).getProperties()) {
        if (SECRET_NAME.test(prop.getName())) {
          out.push({ rule: "no-secret-in-image", line: lineOf(ins),
            message: `${kw} ${prop.getName()} looks like a secret; it would be stored in the image and its history`,
            fix: "remove it: hardened-fleet hands secrets to the container at runtime as Pulumi secrets" });
        }
      }
    }
  }

  const final = stages[stages.length - 1] ?? [];
  const users = final.filter((i) => i.getKeyword() === "USER");
  const lastUser = users[users.length - 1];
  if (!lastUser) {
    out.push({ rule: "non-root-user", line: undefined, message: "the final stage sets no USER, so the app runs as root",
      fix: "end the final stage with USER 1000:1000" });
  } else {
    const value = (lastUser.getArgumentsContent() ?? "").trim();
    const m = NUMERIC_USER.exec(value);
    if (!m) {
      out.push({ rule: "non-root-user", line: lineOf(lastUser), message: `USER ${value} is not numeric, so the runtime cannot verify it is not root`,
        fix: "use a numeric uid:gid, e.g. USER 1000:1000" });
    } else if (m[1] === "0" || m[2] === "0") {
      out.push({ rule: "non-root-user", line: lineOf(lastUser), message: `USER ${value} is root`, fix: "use USER 1000:1000" });
    }
  }

  const healthchecks = final.filter((i) => i.getKeyword() === "HEALTHCHECK");
  const lastHealthcheck = healthchecks[healthchecks.length - 1];
  if (!lastHealthcheck || /^none$/i.test((lastHealthcheck.getArgumentsContent() ?? "").trim())) {
    out.push({ rule: "healthcheck", line: lastHealthcheck ? lineOf(lastHealthcheck) : undefined,
      message: "the final stage has no HEALTHCHECK",
      fix: "add HEALTHCHECK CMD [...] using the app's own runtime (no curl or wget)" });
  }

  for (const ins of final) {
    if ((ins.getKeyword() === "CMD" || ins.getKeyword() === "ENTRYPOINT") && !isJsonForm(ins)) {
      out.push({ rule: "exec-form", line: lineOf(ins), message: `${ins.getKeyword()} uses shell form, so signals do not reach the app`,
        fix: `write it in JSON form: ${ins.getKeyword()} ["executable", "arg", ...]` });
    }
  }
  return out.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/** Bases known to have no shell: scratch, and distroless images other than their :debug variants (busybox). */
function shellFreeBase(image: string): boolean {
  if (image === "scratch") return true;
  return /(^|\/)distroless\//.test(image) && !/:debug(-|@|$)/.test(image);
}

/**
 * Recommendations: not required, so nothing stops the build. `shell-reason`: a final stage that does
 * not start from scratch (or a distroless base) most likely keeps a shell; `fleet audit` accepts a
 * shell in the runtime only when the image says why, with LABEL io.hardened-fleet.shell-reason.
 */
export function checkDockerfileAdvice(text: string): DockerfileViolation[] {
  const stages = stagesOf(DockerfileParser.parse(text).getInstructions());
  const byName = new Map<string, Instruction[]>();
  for (const stage of stages) {
    const name = (stage[0] as From).getBuildStage();
    if (name) byName.set(name.toLowerCase(), stage);
  }
  // the final stage and the stages it builds on, down to an image
  const chain: Instruction[][] = [];
  let stage = stages[stages.length - 1];
  while (stage && !chain.includes(stage)) {
    chain.push(stage);
    stage = byName.get(((stage[0] as From).getImage() ?? "").toLowerCase());
  }
  const root = chain[chain.length - 1];
  if (!root) return [];
  const image = (root[0] as From).getImage() ?? "";
  if (shellFreeBase(image)) return [];
  const reasons = chain.flat().filter((i) => i.getKeyword() === "LABEL").flatMap((i) => (i as PropertyInstruction).getProperties())
    .filter((p) => p.getName() === LABEL_SHELL_REASON && (p.getValue() ?? "").trim() !== "");
  if (reasons.length > 0) return [];
  const final = stages[stages.length - 1]!;
  return [{ rule: "shell-reason", line: lineOf(final[0]!),
    message: `the final stage starts from ${image}, which most likely has a shell: fleet audit fails a runtime with a shell that gives no reason`,
    fix: `end with a stage FROM scratch (or a distroless base) holding only what the app needs, or say why it needs a shell: LABEL ${LABEL_SHELL_REASON}="<reason>"` }];
}

export class DockerfileRuleError extends Error {
  constructor(readonly file: string, readonly violations: DockerfileViolation[]) {
    super(
      `${file} breaks ${violations.length} hardening rule${violations.length === 1 ? "" : "s"}; nothing was built\n` +
        violations.map((v) => `  - ${file}${v.line ? `:${v.line}` : ""} [${v.rule}] ${v.message}. Fix: ${v.fix}`).join("\n"),
    );
    this.name = "DockerfileRuleError";
  }
}
