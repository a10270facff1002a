/** `fleet sbom`, `fleet signing-key`, `fleet scan-db`, `fleet bases`: the images' supply chain (src/fleet/supplyChain.ts). */
import type { Command } from "commander";
import { loadEnvironment } from "../fleet/environment";
import { baseStatus, pinPublicKey, sbomFor, scannerDatabase, signingKeyOf, updateScannerDatabase } from "../fleet/supplyChain";
import { describeDatabase } from "../supplyChain/database";
import { formatTable } from "../table";
import { projectContext } from "./stacks";

const short = (digest: string | undefined) => (digest ? digest.slice(0, 19) : "-");

export function registerSupplyChain(program: Command): void {
  program.command("sbom")
    .description("print the SBOM (CycloneDX JSON) of the image an environment runs, or one customer's, as staging made it when it built the image")
    .argument("<environment>", "the environment (staging, prod)")
    .option("--customer <id>", "the image this customer runs (a customer kept on an earlier image by a rollback runs its own)")
    .action(async (environment: string, opts: { customer?: string }) => {
      const env = loadEnvironment(projectContext(), environment, "<environment>");
      const found = await sbomFor(env, opts.customer);
      console.error(`fleet sbom: ${found.imageRef} (from ${found.storedIn})`);
      console.log(JSON.stringify(found.sbom, null, 2));
    });

  program.command("signing-key")
    .description("print the public key a build environment signs its images with; --trust pins it in a promoting environment's config (supplyChain.publicKey)")
    .argument("<environment>", "the build environment (staging)")
    .option("--trust <environment>", "the promoting environment (prod) that should verify with this key")
    .action(async (environment: string, opts: { trust?: string }) => {
      const ctx = projectContext();
      const env = loadEnvironment(ctx, environment, "<environment>");
      const key = await signingKeyOf(env);
      if (opts.trust) {
        pinPublicKey(loadEnvironment(ctx, opts.trust, "--trust"), key.publicKey);
        console.error(`fleet signing-key: ${opts.trust} now verifies with ${environment}'s key ${key.fingerprint.slice(0, 16)} ` +
          `(supplyChain.publicKey in Pulumi.${opts.trust}.yaml): commit that file`);
      }
      console.error(`fleet signing-key: sha256 fingerprint ${key.fingerprint}`);
      process.stdout.write(key.publicKey.endsWith("\n") ? key.publicKey : `${key.publicKey}\n`);
    });

  const db = program.command("scan-db").description("the vulnerability scanner's database an environment scans with (supplyChain.database, else the user's cache)");
  db.command("status")
    .requiredOption("--env <environment>", "the environment")
    .action((opts: { env: string }) => {
      const { dir, status } = scannerDatabase(loadEnvironment(projectContext(), opts.env));
      console.log(status.present ? describeDatabase(status)
        : `${describeDatabase(status)}: run 'fleet scan-db update --env ${opts.env}' where the scanner's registry is reachable, or set supplyChain.database to a trivy database file (in ${dir})`);
      if (!status.present) process.exitCode = 1;
    });
  db.command("update")
    .description("download the newest database into the user's cache (needs the scanner's registry, ghcr.io or its mirror)")
    .requiredOption("--env <environment>", "the environment")
    .action(async (opts: { env: string }) => {
      await updateScannerDatabase(loadEnvironment(projectContext(), opts.env), (line) => console.error(`fleet scan-db: ${line}`));
    });

  program.command("bases")
    .description("whether each environment's running image was built from its base's newest digest; a stale one reaches customers through the normal rollout")
    .option("--env <environment...>", "environments (default: staging and prod)")
    .action(async (opts: { env?: string[] }) => {
      const ctx = projectContext();
      const rows = [];
      for (const name of opts.env ?? ["staging", "prod"]) rows.push(await baseStatus(loadEnvironment(ctx, name)));
      console.log(formatTable(["environment", "base", "built from", "newest", "state", "note"],
        rows.map((r) => [r.environment, r.base, short(r.builtFrom), short(r.newest), r.state === "stale" ? "STALE: fleet rollout" : r.state, r.note ?? ""])));
      if (rows.some((r) => r.state === "stale")) process.exitCode = 3;
    });
}
