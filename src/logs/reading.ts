/**
 * How `fleet logs` reads a customer's files in the log collector: command lines run in the collector
 * (its bash and coreutils; tested as exact strings) and what their output means. Pure.
 *
 * A read gives every file, oldest first, and where the current file ended (its inode and size); a
 * follow then polls from there, and a rotation (logrotate renames current.log to current.log.1) is
 * seen by the inode: the rest of the old file first, then the new one from its start.
 */
import { customerLogFile } from "./collector";

/** The end of what was read: current.log's inode (0: none yet) and the byte offset reached in it. */
export interface FilePosition {
  inode: number;
  offset: number;
}

const READ_SCRIPT = [
  'f=$1; set -- $(stat -c "%i %s" "$f" 2>/dev/null || echo "0 0")',
  'echo "at $1 $2"',
  'for n in $(ls "$f".* 2>/dev/null | sed "s/.*\\.//" | grep -E "^[0-9]+$" | sort -rn); do cat "$f.$n"; done',
  '[ "$1" = 0 ] || head -c "$2" "$f"',
].join("\n");

const POLL_SCRIPT = [
  'f=$1; ino=$2; off=$3',
  'now=$(stat -c %i "$f" 2>/dev/null || echo 0)',
  'if [ "$ino" = "$now" ]; then echo "at $now"; [ "$now" = 0 ] || tail -c +$((off + 1)) "$f"; exit 0; fi',
  // rotated: the rest of the old file, now $f.1; the new one from its start at the next poll
  'echo "rotated $now"',
  'if [ "$ino" != 0 ] && [ "$(stat -c %i "$f.1" 2>/dev/null)" = "$ino" ]; then tail -c +$((off + 1)) "$f.1"; fi',
].join("\n");

/** Every file of the customer, oldest first, after a first line `at <inode> <size>` of the current one. */
export function readCommand(customerId: string): string[] {
  return ["bash", "-c", READ_SCRIPT, "read", customerLogFile(customerId)];
}

/** What was added since `from`: `at <inode>` and the new bytes, or `rotated <new inode>` and the rest of the old file. */
export function pollCommand(customerId: string, from: FilePosition): string[] {
  return ["bash", "-c", POLL_SCRIPT, "poll", customerLogFile(customerId), String(from.inode), String(from.offset)];
}

function splitHeader(output: Buffer): { header: string[]; body: Buffer } {
  const nl = output.indexOf(0x0a);
  if (nl < 0) throw new Error(`the log collector answered without a header: ${JSON.stringify(output.toString("utf8").slice(0, 200))}`);
  return { header: output.subarray(0, nl).toString("utf8").split(" "), body: output.subarray(nl + 1) };
}

/** The complete lines of `body` and the bytes they took (a torn last line waits for the next poll). */
function completeLines(body: Buffer): { lines: string[]; bytes: number } {
  const end = body.lastIndexOf(0x0a) + 1;
  return { lines: body.subarray(0, end).toString("utf8").split("\n").filter((l) => l.length > 0), bytes: end };
}

export function parseRead(output: Buffer): { lines: string[]; position: FilePosition } {
  const { header, body } = splitHeader(output);
  if (header[0] !== "at") throw new Error(`unexpected answer of the log collector: ${header.join(" ")}`);
  const { lines, bytes } = completeLines(body);
  // a line the size cut in two is read whole by the next poll
  const torn = body.length - bytes;
  return { lines, position: { inode: Number(header[1]), offset: Number(header[2]) - torn } };
}

export function parsePoll(output: Buffer, from: FilePosition): { lines: string[]; position: FilePosition } {
  const { header, body } = splitHeader(output);
  const { lines, bytes } = completeLines(body);
  if (header[0] === "at") return { lines, position: { inode: from.inode, offset: from.offset + bytes } };
  if (header[0] === "rotated") return { lines, position: { inode: Number(header[1]), offset: 0 } };
  throw new Error(`unexpected answer of the log collector: ${header.join(" ")}`);
}

/** The customer's access log in the edge proxy: the rolled files (access-<time>.log, in time order), then access.log. */
export function accessReadCommand(dir: string, file: string): string[] {
  const stem = file.replace(/\.log$/, "");
  return ["bash", "-c", 'cd "$1" 2>/dev/null || exit 0; for f in $(ls "$2"-*.log 2>/dev/null | sort); do cat "$f"; done; cat "$2.log" 2>/dev/null; exit 0',
    "access", dir, stem];
}
