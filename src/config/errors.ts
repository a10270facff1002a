/** Config errors that name the key path, what was found and what is allowed, all at once. */
import type { z } from "zod";

export interface ConfigProblem {
  /** full key path, e.g. hardened-fleet:environment.plans.standard.memoryMb */
  path: string;
  /** the value found there, rendered short; undefined when the key is missing */
  found?: string;
  /** what is allowed, or how to fix it */
  message: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(source: string, problems: ConfigProblem[]) {
    super(formatProblems(source, problems));
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export function renderValue(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function formatProblems(source: string, problems: ConfigProblem[]): string {
  const lines = problems.map((p) => `  - ${p.path}: ${p.message}${p.found === undefined ? "" : ` (found ${p.found})`}`);
  const n = problems.length;
  return `invalid ${source}: ${n} problem${n === 1 ? "" : "s"}; nothing was created\n${lines.join("\n")}`;
}

function joinPath(prefix: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => (typeof key === "number" ? `${acc}[${key}]` : `${acc}.${String(key)}`), prefix);
}

/** What an issue found: for an unknown discriminator (target: k8s), its value rather than the whole object. */
function foundValue(issue: z.core.$ZodIssue): unknown {
  if (issue.code === "invalid_union" && "discriminator" in issue && typeof issue.discriminator === "string" &&
    issue.input !== null && typeof issue.input === "object") {
    return (issue.input as Record<string, unknown>)[issue.discriminator];
  }
  return issue.input;
}

/** Turns zod issues into problems under a key prefix such as `hardened-fleet:environment`. */
export function problemsFromZod(prefix: string, error: z.ZodError): ConfigProblem[] {
  return error.issues.map((issue) => {
    const missing = issue.code === "invalid_type" && issue.input === undefined;
    const said = issue.message.replace(/^Invalid input: /, "");
    const problem: ConfigProblem = {
      path: joinPath(prefix, issue.path),
      // a message that says "is required ..." itself is not wrapped again
      message: missing && !said.startsWith("is required") ? `is required (${said})` : said,
    };
    if (!missing && "input" in issue) problem.found = renderValue(foundValue(issue));
    return problem;
  });
}
