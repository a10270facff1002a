#!/usr/bin/env node
/** `fleet`: the operator's CLI. Run it with `npm run fleet -- <command>`. */
import { Command } from "commander";
import { registerAudit } from "./audit";
import { registerBackup } from "./backup";
import { registerBind } from "./bind";
import { registerEdge } from "./edge";
import { registerMove } from "./move";
import { registerPolicy } from "./policy";
import { registerServe } from "./serve";
import { registerStacks } from "./stacks";
import { registerSupplyChain } from "./supplyChain";
import { registerLogs } from "./logs";
import { registerUsage } from "./usage";
import { registerWatch } from "./watch";

export function buildCli(): Command {
  const program = new Command("fleet")
    .description("hardened-fleet: hardened per-customer containers on a Docker host")
    .showHelpAfterError()
    // a command's options only before its subcommand's name: `fleet backup drill --env E` gives --env to drill
    .enablePositionalOptions();
  registerStacks(program);
  registerAudit(program);
  registerEdge(program);
  registerServe(program);
  registerBind(program);
  registerMove(program);
  registerBackup(program);
  registerWatch(program);
  registerLogs(program);
  registerUsage(program);
  registerSupplyChain(program);
  registerPolicy(program);
  return program;
}

if (require.main === module) {
  buildCli().parseAsync(process.argv).catch((err: unknown) => {
    console.error(`fleet: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
