/**
 * `fleet policy-config <environment>`: the policy pack's config (policies/, docs/policy-pack.md) that
 * fleet runs the environment's stacks with, for the plain Pulumi workflow:
 *
 *   fleet policy-config prod > .fleet/policy-prod.json
 *   pulumi preview -s prod --policy-pack policies --policy-pack-config .fleet/policy-prod.json
 */
import type { Command } from "commander";
import { loadEnvironment } from "../fleet/environment";
import { packConfig, packDir, previewsFirst } from "../policy/packConfig";
import { projectContext } from "./stacks";

export function registerPolicy(program: Command): void {
  program.command("policy-config")
    .description("print the policy pack's config (JSON) that fleet runs an environment's stacks with, for `pulumi preview --policy-pack policies --policy-pack-config <file>`")
    .argument("<environment>", "the environment (staging, prod); its customer stacks use the same")
    .action((environment: string) => {
      const ctx = projectContext();
      const env = loadEnvironment(ctx, environment, "<environment>");
      console.log(JSON.stringify(packConfig(env.config), null, 2));
      console.error(`fleet policy-config: the pack is ${packDir(ctx.projectDir)}; ${env.name} is ${env.config.tier}` +
        (previewsFirst(env.config) ? ": every policy mandatory, and fleet previews before each deployment" : ""));
    });
}
