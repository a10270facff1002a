/**
 * `fleet logs`: a customer's lines, from the environment's log collectors its target names
 * (DeployTarget.logSource): the host's, or every node's on a swarm. They have every container's lines
 * past its end (a plan change, a rollback, a move). Without a running collector (an environment stack
 * from before them): the current container's or service's lines, saying so. With --access, the edge
 * proxy's access log. With follow, new lines as they come, across replacements and rotations, until
 * `signal` aborts.
 */
import { PassThrough, Readable } from "node:stream";
import type Dockerode from "dockerode";
import { ConfigError } from "../config/errors";
import { customerStackName, edgeNames } from "../hardening/names";
import { execIn, runningContainer } from "../engine/exec";
import { ACCESS_LOG_FILE, accessLogDir } from "../edge/routes";
import { formatLine, matches, parseAccessLogLine, parseCollectorLine, selectLines, type LogFilter, type LogLine } from "../logs/lines";
import { accessReadCommand, parsePoll, parseRead, pollCommand, readCommand, type FilePosition } from "../logs/reading";
import { readStack } from "../pulumi/stackState";
import type { Environment } from "./environment";

export interface LogsRequest {
  customer: string;
  filter: LogFilter;
  follow?: boolean;
  /** the edge proxy's access log instead of the app's lines */
  access?: boolean;
  /** how often a follow asks for new lines (ms) */
  pollMs?: number;
}

export interface LogsOutput {
  line(text: string): void;
  /** what the operator should know about the lines (which source, what is missing) */
  note(text: string): void;
}

/** The container (or service) the customer's last deployment made, from its stack's outputs. */
async function deployedName(environment: Environment, customer: string): Promise<string> {
  const state = await readStack(environment.ctx, customerStackName(environment.name, customer));
  const name = state?.outputs.containerName;
  if (typeof name !== "string") {
    throw new ConfigError("customer", [{ path: "customer", found: JSON.stringify(customer),
      message: `has no deployment in ${environment.name}: see 'fleet list --env ${environment.name}'` }]);
  }
  return name;
}

/** A customer's lines through the engine's own logs API (exported for its test) (a container, or a swarm service's tasks): `<time> <message>` per line. */
export async function engineLogs(engine: Dockerode, target: { container?: string; service?: string }, req: LogsRequest, out: LogsOutput,
  signal?: AbortSignal): Promise<void> {
  const opts = { stdout: true, stderr: true, timestamps: true, follow: Boolean(req.follow),
    ...(req.filter.since !== undefined ? { since: Math.floor(req.filter.since / 1000) } : {}) };
  const source = target.container ?? target.service!;
  const stream = target.container
    ? await engine.getContainer(target.container).logs({ ...opts, follow: opts.follow as true })
    : await (engine.getService(target.service!) as unknown as { logs(o: object): Promise<NodeJS.ReadableStream> }).logs(opts);
  // without follow the engine's answer comes whole, as a Buffer of frames; with it, as a stream
  const frames = Buffer.isBuffer(stream) ? Readable.from([stream]) : (stream as NodeJS.ReadableStream);
  const lines: LogLine[] = [];
  const emit = (stream: "out" | "err") => {
    let rest = "";
    const pass = new PassThrough();
    pass.on("data", (c: Buffer) => {
      const parts = (rest + c.toString("utf8")).split("\n");
      rest = parts.pop()!;
      for (const p of parts) {
        const sp = p.indexOf(" ");
        const line: LogLine = { time: p.slice(0, sp), source: source.slice(-12), stream, message: p.slice(sp + 1) };
        if (req.follow) { if (matches(line, req.filter)) out.line(formatLine(line)); } else lines.push(line);
      }
    });
    return pass;
  };
  engine.modem.demuxStream(frames, emit("out"), emit("err"));
  await new Promise<void>((resolve) => {
    const stop = () => { (frames as unknown as { destroy(): void }).destroy(); resolve(); };
    signal?.addEventListener("abort", stop, { once: true });
    frames.on("end", () => resolve());
    frames.on("error", () => resolve());
  });
  for (const l of selectLines(lines, req.filter)) out.line(formatLine(l));
}

/** Follows the customer's file in each collector from where its read ended, printing new lines in time order, until `signal` aborts. */
async function followCollectors(followed: { collector: Dockerode.Container; at: FilePosition }[], customer: string, req: LogsRequest,
  out: LogsOutput, signal?: AbortSignal): Promise<void> {
  while (!signal?.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, req.pollMs ?? 500);
      signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
    if (signal?.aborted) break;
    const fresh: LogLine[] = [];
    for (const f of followed) {
      const r = await execIn(f.collector, pollCommand(customer, f.at));
      if (r.exitCode !== 0) throw new Error(`reading ${customer}'s lines in the log collector failed: ${r.output.trim()}`);
      const polled = parsePoll(Buffer.from(r.stdout, "utf8"), f.at);
      f.at = polled.position;
      for (const text of polled.lines) {
        const line = parseCollectorLine(text);
        if (line) fresh.push(line);
      }
    }
    for (const l of selectLines(fresh, { since: req.filter.since, grep: req.filter.grep })) out.line(formatLine(l));
  }
}

export async function customerLogs(environment: Environment, req: LogsRequest, out: LogsOutput, signal?: AbortSignal): Promise<void> {
  if (!environment.customers().some((c) => c.id === req.customer)) {
    throw new ConfigError("customer", [{ path: "customer", found: JSON.stringify(req.customer),
      message: `is not a customer of ${environment.name}: see 'fleet list --env ${environment.name}'` }]);
  }
  if (req.access) return accessLog(environment, req, out);
  const source = environment.target.logSource(req.customer, await deployedName(environment, req.customer));
  const running = (await Promise.all(source.collectors.map(async (c) => runningContainer(c.engine, source.collector))))
    .filter((c): c is Dockerode.Container => c !== undefined);
  if (running.length === 0) {
    const { kind, engine, name } = source.fallback;
    out.note(`${req.customer}: no log collector ${source.collector} runs (run 'fleet up ${environment.name}'): only the lines of its ${kind} ${name}`);
    return engineLogs(engine, kind === "container" ? { container: name } : { service: name }, req, out, signal);
  }
  if (running.length < source.collectors.length) {
    out.note(`${req.customer}: ${source.collectors.length - running.length} of ${source.collectors.length} log collectors do not run: their lines are missing`);
  }
  // every collector's lines, in one time order (a customer that moved has lines on more than one node)
  const followed: { collector: Dockerode.Container; at: FilePosition }[] = [];
  const lines: LogLine[] = [];
  for (const collector of running) {
    const r = await execIn(collector, readCommand(req.customer), 120_000);
    if (r.exitCode !== 0) throw new Error(`reading ${req.customer}'s lines in the log collector failed: ${r.output.trim()}`);
    const read = parseRead(Buffer.from(r.stdout, "utf8"));
    lines.push(...read.lines.map(parseCollectorLine).filter((l): l is LogLine => l !== undefined));
    followed.push({ collector, at: read.position });
  }
  for (const l of selectLines(lines, req.filter)) out.line(formatLine(l));
  if (req.follow) await followCollectors(followed, req.customer, req, out, signal);
}

/** The raw lines of each customer's access log in the environment's edge proxy (Caddy's JSON, rolled files first). */
export async function accessLogLines(environment: Environment, customers: string[]): Promise<Map<string, string[]>> {
  const name = edgeNames(environment.name, environment.config.edge.name).container;
  const edge = await runningContainer(environment.engine(), name);
  if (!edge) throw new Error(`the edge proxy ${name} is not running, so its access logs cannot be read: run 'fleet up ${environment.name}' first`);
  const out = new Map<string, string[]>();
  for (const customer of customers) {
    const r = await execIn(edge, accessReadCommand(accessLogDir(customer), ACCESS_LOG_FILE), 120_000);
    if (r.exitCode !== 0) throw new Error(`reading ${customer}'s access log in ${name} failed: ${r.output.trim()}`);
    out.set(customer, r.stdout.split("\n"));
  }
  return out;
}

/** The customer's requests through the edge proxy (Caddy's access log in its volume). */
async function accessLog(environment: Environment, req: LogsRequest, out: LogsOutput): Promise<void> {
  if (req.follow) {
    throw new ConfigError("--access", [{ path: "--access", found: "with --follow",
      message: "reads the access log as it is: leave out --follow (or follow the app's lines without --access)" }]);
  }
  const raw = (await accessLogLines(environment, [req.customer])).get(req.customer) ?? [];
  const lines = raw.map(parseAccessLogLine).filter((l): l is LogLine => l !== undefined);
  for (const l of selectLines(lines, req.filter)) out.line(formatLine(l));
}
