/** Builds an image from a prepared context through the Engine API (what tests and benchmarks use). */
import * as fs from "node:fs";
import * as path from "node:path";
import Dockerode from "dockerode";

function listFiles(dir: string, rel = ""): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(dir, path.join(rel, e.name)) : [path.join(rel, e.name)]);
}

export async function buildImage(engine: Dockerode, context: string, dockerfile: string, tag: string,
  onLine: (line: string) => void = () => {}): Promise<string> {
  const stream = await engine.buildImage(
    { context, src: listFiles(context) },
    { t: tag, dockerfile: path.relative(context, dockerfile), rm: true, forcerm: true },
  );
  await new Promise<void>((resolve, reject) => {
    engine.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
      const failed = events?.find((e) => e.error);
      if (err || failed) reject(new Error(`build of ${tag} failed: ${err?.message ?? failed?.error}`));
      else resolve();
    }, (event: { stream?: string }) => { if (event.stream?.trim()) onLine(event.stream.trim()); });
  });
  return (await engine.getImage(tag).inspect()).Id;
}
