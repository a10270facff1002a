/** Progress while Pulumi works: its own resource-by-resource lines, prefixed with the stack name. */
export type Log = (line: string) => void;

export const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

export function pulumiOutput(stack: string, log: Log): (out: string) => void {
  let pending = "";
  return (chunk: string) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) log(`  [${stack}] ${line.trimEnd()}`);
  };
}
