/**
 * What the policy pack costs a preview, side by side in one run: `pulumi preview` of the pack's
 * fixture program (a docker.Container and fleet's ContainerGate; test/policy/program) without the
 * pack (the floor), then with it (every policy evaluated), alternating, five of each after a warm-up.
 * A benchmark, not a test.
 *   npm run bench -- policy
 */
import { POLICY_NAMES } from "../policies/src/rules";
import { formatTable } from "../src/table";
import { fixtureProgram } from "../test/support/policyProgram";
import { formatSpread, spread } from "./measure";

const RUNS = 5;

async function main(): Promise<void> {
  const fixture = fixtureProgram();
  try {
    const plain = { stack: "bench", pack: false };
    const packed = { stack: "bench" };
    const time = async (c: typeof plain | typeof packed) => {
      const t0 = Date.now();
      const r = await fixture.preview(c);
      if (r.code !== 0) throw new Error(`preview failed:\n${r.output}`);
      return (Date.now() - t0) / 1000;
    };
    await time(plain);
    await time(packed);
    const without: number[] = [];
    const withPack: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      without.push(await time(plain));
      withPack.push(await time(packed));
    }
    const ratio = spread(withPack).median / spread(without).median;
    console.log(`\npulumi preview of a docker.Container and its gate, ${RUNS} runs each, alternating (wall seconds: median [min-max])\n`);
    console.log(formatTable(["preview", "wall s", "floor", "floor wall s", "median ratio"], [
      [`with --policy-pack policies (${POLICY_NAMES.length} policies)`, formatSpread(withPack, 2), "the same preview without the pack", formatSpread(without, 2), ratio.toFixed(2)],
    ]));
  } finally {
    fixture.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
