/**
 * The file backend's metadata left empty by a killed pulumi, with the real pulumi CLI. The backend
 * (gocloud's fileblob) writes each file's `<file>.attrs` in place; a pulumi killed between truncating
 * and writing it leaves it empty, and every later command of the stack fails with `failed to load
 * checkpoint: EOF` (a CI run met it after `fleet serve` was killed with SIGKILL mid-deployment).
 * This shows that failure on the real CLI, and that fleet's preparation of a stack (what every fleet
 * command runs first) removes the unreadable file and says so, after which pulumi reads the stack.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { parseStackTarget } from "../../src/config/targets";
import { prepareStack } from "../../src/pulumi/stacks";
import { runPulumi } from "../../src/pulumi/workspace";
import { killLeftovers } from "../support/cli";
import { copyProject } from "../support/projectCopy";

describe("the file backend's metadata left empty by a killed pulumi (real pulumi CLI)", () => {
  const ctx = copyProject();
  const target = parseStackTarget("staging-meta1");
  const settings = { passphrase: "backend-metadata-test", engine: () => assert.fail("no engine is needed") };
  const select = () => runPulumi(ctx, target, ["stack", "select", "--stack", target.stack, "--non-interactive"], undefined, settings.passphrase);
  after(() => {
    killLeftovers();
    fs.rmSync(ctx.root, { recursive: true, force: true });
  });

  it("an empty .attrs of the checkpoint fails every pulumi command of the stack; fleet removes it before its own, and pulumi reads the stack again", async () => {
    await prepareStack(ctx, target, () => {}, true, settings);
    await select();
    const attrs = path.join(ctx.root, ".fleet", "state", ".pulumi", "stacks", "hardened-fleet", `${target.stack}.json.attrs`);
    assert.ok(fs.existsSync(attrs), `the backend keeps ${attrs}`);
    assert.ok(fs.existsSync(attrs.replace(/\.attrs$/, "")), "and the checkpoint beside it");

    // what a pulumi killed in the middle of writing it leaves
    fs.truncateSync(attrs, 0);
    await assert.rejects(select(), /failed to load checkpoint: EOF/);

    const said: string[] = [];
    await prepareStack(ctx, target, (line) => said.push(line), true, settings);
    assert.match(said.join("\n"), new RegExp(`stack ${target.stack}: removed \\.pulumi/stacks/hardened-fleet/${target.stack}\\.json\\.attrs, a metadata file an interrupted pulumi left unreadable`));
    await select();
    const listed = await runPulumi(ctx, undefined, ["stack", "ls", "--json"], undefined, settings.passphrase);
    assert.ok((JSON.parse(listed.stdout) as { name: string }[]).some((s) => s.name === target.stack), listed.stdout);
  });
});
