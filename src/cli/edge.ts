/** `fleet edge ca`: the root certificate clients trust for an environment whose edge uses its local CA. */
import * as fs from "node:fs";
import type { Command } from "commander";
import { parseEnvironmentName } from "../config/targets";
import { edgeCaCertificate } from "../fleet/operations";
import { projectContext } from "./stacks";

export function registerEdge(program: Command): void {
  const edge = program.command("edge").description("the environment's edge proxy (https://<customer>.<edge.domain>)");
  edge.command("ca")
    .description("print the root certificate of the environment's local CA (edge.tls: internal), for clients to trust")
    .requiredOption("--env <environment>", "environment (staging, prod)")
    .option("--out <file>", "write it to this file instead of printing it")
    .action(async (opts: { env: string; out?: string }) => {
      const { environment } = parseEnvironmentName(opts.env);
      const pem = await edgeCaCertificate(projectContext(), environment);
      if (opts.out) {
        fs.writeFileSync(opts.out, pem);
        console.error(`wrote ${opts.out}: e.g. curl --cacert ${opts.out} https://<customer>.<edge.domain>/`);
      } else {
        process.stdout.write(pem);
      }
    });
}
