/**
 * The audit's look inside a sandboxed container (runsc, docs/sandbox.md). From the host's side a
 * gVisor sandbox is one process of its own kernel: joining its PID namespace from fleet's tools image
 * (probe.ts) finds the sandbox, not the app, and its /proc/<pid>/root is not the app's filesystem. So
 * the probe runs inside, as an exec of the image's own Python (the interpreter of its healthcheck),
 * as the container's user with the container's capabilities (none): the app's kernel answers, and
 * what it prints is what probe.ts prints, sections and all, read by the same parseProbeOutput.
 */
import type Dockerode from "dockerode";
import { APP_GID, APP_UID } from "../hardening/names";
import { execIn } from "../engine/exec";
import type { Probes } from "./checks";
import { BIN_DIRS, CACHE_DIRS, COMPILERS, PACKAGE_MANAGERS, parseProbeOutput, SEPARATOR, SHELLS } from "./probe";

const PROBE_TIMEOUT_MS = 60_000;

/** The Python the probe runs with: the healthcheck's interpreter, when it is one. Pure. */
export function sandboxInterpreter(info: Pick<Dockerode.ContainerInspectInfo, "Config">): string | undefined {
  const test = info.Config.Healthcheck?.Test ?? [];
  const program = test[0] === "CMD" ? test[1] : undefined;
  return program && /\/python[0-9.]*$/.test(program) ? program : undefined;
}

const pyList = (list: string[]) => JSON.stringify(list);

/**
 * The probe as a Python program (only the standard library): the sections of probe.ts's script, in
 * its order, paths as the container sees them. The root filesystem is walked once on its own device
 * (like find -xdev), links never followed. Pure.
 */
export function sandboxProbeScript(dataPaths: string[], root = "/"): string {
  const names = (list: string[]) => `^/${BIN_DIRS}/(${list.map((n) => n.replace(/[.+*?^$()[\]{}|\\]/g, "\\$&")).join("|")})$`;
  return [
    "import os, re, stat, sys",
    `SEP = ${JSON.stringify(SEPARATOR)}`,
    "def section(text):",
    "    sys.stdout.write(text if text.endswith('\\n') or not text else text + '\\n')",
    "    sys.stdout.write(SEP + '\\n')",
    "def read(path):",
    "    try:",
    "        with open(path) as f: return f.read()",
    "    except OSError as e: return ''",
    "section(read('/proc/1/status'))",
    "section(read('/proc/1/mounts'))",
    "section(''.join(l for l in read('/proc/meminfo').splitlines(True) if l.startswith('SwapTotal:')))",
    "try:",
    "    os.listdir('/'); section('readable')",
    "except OSError as e: section(str(e))",
    `shells = re.compile(${JSON.stringify(names([...SHELLS, ...PACKAGE_MANAGERS]))})`,
    `tools = re.compile(${JSON.stringify(names(COMPILERS))})`,
    `caches = re.compile(${JSON.stringify(`^/(${CACHE_DIRS.join("|")})/.+`)})`,
    "found = []",
    `ROOT = ${JSON.stringify(root.replace(/\/+$/, ""))}`,
    "root_dev = os.lstat(ROOT or '/').st_dev",
    "for top, dirs, files in os.walk(ROOT or '/', onerror=lambda e: None):",
    "    kept = []",
    "    for d in dirs:",
    "        p = os.path.join(top, d)[len(ROOT):]",
    "        try: st = os.lstat(ROOT + p)",
    "        except OSError: continue",
    "        if stat.S_ISDIR(st.st_mode) and st.st_dev == root_dev: kept.append(d)",
    "        if shells.match(p): found.append('shell ' + p)",
    "    dirs[:] = kept",
    "    for n in files:",
    "        p = os.path.join(top, n)[len(ROOT):]",
    "        try: st = os.lstat(ROOT + p)",
    "        except OSError: continue",
    "        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o6000: found.append('setuid ' + p)",
    "        if shells.match(p): found.append('shell ' + p)",
    "        if tools.match(p): found.append('tool ' + p)",
    "        if stat.S_ISREG(st.st_mode) and caches.match(p) and n != 'lock': found.append('tool ' + p)",
    "        if len(found) >= 1000: break",
    "section('\\n'.join(found[:1000]))",
    "foreign = []",
    `for base in ${pyList(dataPaths)}:`,
    "    for top, dirs, files in os.walk(base, onerror=lambda e: foreign.append(str(e))):",
    "        for n in [top] + [os.path.join(top, x) for x in dirs + files]:",
    "            try: st = os.lstat(n)",
    "            except OSError as e: foreign.append(str(e)); continue",
    `            if (st.st_uid != ${APP_UID} or st.st_gid != ${APP_GID}) and n not in foreign: foreign.append(n)`,
    "sys.stdout.write('\\n'.join(foreign[:20]) + ('\\n' if foreign else ''))",
  ].join("\n");
}

/** Probes a running sandboxed container from inside (an exec of its Python); what it cannot is a rootError. */
export async function probeSandboxed(engine: Dockerode, info: Dockerode.ContainerInspectInfo): Promise<Probes> {
  const python = sandboxInterpreter(info);
  const dataPaths = (info.Mounts ?? []).filter((m) => m.Type === "volume").map((m) => m.Destination);
  if (!python) {
    throw new Error(`the audit cannot look inside sandboxed container ${info.Name.replace(/^\//, "")}: it probes a sandbox with the image's own ` +
      "Python, the interpreter of its healthcheck (app.healthcheck.command), and this healthcheck runs none");
  }
  const r = await execIn(engine.getContainer(info.Id), [python, "-I", "-S", "-c", sandboxProbeScript(dataPaths)], PROBE_TIMEOUT_MS);
  try {
    return parseProbeOutput(r.stdout, 1);
  } catch (e) {
    throw new Error(`${(e as Error).message}; exit ${r.exitCode}, its errors: ${r.stderr.trim().slice(-300) || "none"}`);
  }
}
