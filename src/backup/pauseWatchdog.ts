/**
 * The guard of a paused customer. A backup pauses the customer's containers while restic reads its
 * volume; if fleet dies meanwhile (kill -9, a power cut of its session), nothing would resume them.
 * So, before pausing, fleet starts this process on its own (detached, its own process group); it
 * watches fleet's PID and, when fleet is gone, or past the deadline, interrupts the backup job's
 * restic first (a snapshot half-read is never finished; restic removes its lock) and then resumes
 * the customer's containers. When the
 * backup ends normally, fleet resumes them itself and stops the guard.
 *
 *   node pauseWatchdog.js <fleet pid> <deadline, ms since the epoch> <engine address or ""> <job id> <container id>...
 */
import type { Container } from "dockerode";
import { engineAt } from "../engine/client";
import { LABEL_ROLE } from "../hardening/names";
import { LABEL_JOB, ROLE_BACKUP_RELAY } from "./restic";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Stops one restic of the job: SIGINT once it runs (killed if it has not stopped 10 s later); one
 * still being started is waited for (5 s), and one that never started is removed so it cannot start.
 */
async function interrupt(c: Container): Promise<void> {
  for (let waited = 0; ; waited += 250) {
    const state = await c.inspect().then((i) => i.State, () => undefined);
    if (!state || (!state.Running && state.Status !== "created")) return;
    if (state.Running) break;
    if (waited >= 5_000) {
      await c.remove({ force: true }).catch(() => { /* started or gone meanwhile */ });
      return;
    }
    await sleep(250);
  }
  await c.kill({ signal: "SIGINT" }).catch(() => { /* finished already */ });
  const stopped = await Promise.race([c.wait().then(() => true, () => true), sleep(10_000).then(() => false)]);
  if (!stopped) await c.kill().catch(() => { /* finished meanwhile */ });
}

async function main(): Promise<void> {
  const [pidText, deadlineText, host, job, ...containers] = process.argv.slice(2);
  const pid = Number(pidText);
  const deadline = Number(deadlineText);
  if (!Number.isInteger(pid) || !Number.isFinite(deadline) || !job) throw new Error("usage: pauseWatchdog <pid> <deadline> <engine> <job> <container>...");
  let stop = false;
  process.on("SIGTERM", () => { stop = true; });
  while (!stop && alive(pid) && Date.now() < deadline) await sleep(200);
  if (stop) return;
  const now = new Date().toISOString();
  process.stdout.write(`${now} fleet (pid ${pid}) ${alive(pid) ? "passed the pause's deadline" : "is gone"}: stopping backup job ${job}, resuming ${containers.join(", ")}\n`);
  const engine = engineAt(host || undefined);
  // restic interrupted (SIGINT) removes its lock from the repository, through the relay (stopped
  // after it); it is killed only if it does not stop. Containers that are not running yet count too:
  // fleet may have asked the engine to start restic just before it died, and a restic that starts
  // after the relay is gone would leave its lock in the repository, blocking every prune for 30 min.
  const jobContainers = await engine.listContainers({ all: true, filters: { label: [`${LABEL_JOB}=${job}`] } }).catch(() => []);
  const restics = jobContainers.filter((c) => c.Labels[LABEL_ROLE] !== ROLE_BACKUP_RELAY);
  for (const c of restics) await interrupt(engine.getContainer(c.Id));
  for (const c of jobContainers.filter((x) => !restics.includes(x))) await engine.getContainer(c.Id).kill().catch(() => { /* gone */ });
  for (const id of containers) {
    await engine.getContainer(id).unpause().then(() => process.stdout.write(`${new Date().toISOString()} resumed ${id}\n`),
      (err: Error) => process.stdout.write(`${new Date().toISOString()} ${id}: ${err.message.split("\n")[0]}\n`));
  }
}

if (require.main === module) {
  main().then(() => process.exit(0), (err: Error) => {
    process.stderr.write(`${new Date().toISOString()} pause guard: ${err.message}\n`);
    process.exit(1);
  });
}
