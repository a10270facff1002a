/** Pulumi mocks that record every resource the program registers, for assertions on its inputs. */
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, any>;
}

export const recorded: Recorded[] = [];

export function installMocks(stack = "staging"): void {
  pulumi.runtime.setMocks({
    newResource(args: pulumi.runtime.MockResourceArgs) {
      recorded.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "docker:index/image:Image") state.repoDigest = `sha256:${"e".repeat(64)}`;
      if (args.type === "random:index/randomPassword:RandomPassword") state.result = "x".repeat(48);
      // the engine gives a container the first address of its network
      if (args.type === "docker:index/container:Container") state.networkDatas = [{ networkName: args.inputs.networkMode, ipAddress: "172.20.0.2" }];
      return { id: `${args.name}-id`, state };
    },
    call(args: pulumi.runtime.MockCallArgs) {
      return args.inputs;
    },
  }, "hardened-fleet", stack, false);
}

export function resetRecorded(): void {
  recorded.length = 0;
}

export function byType(type: string): Recorded[] {
  return recorded.filter((r) => r.type === type);
}

/** Resolves an Output in a mocked program. */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => { resolve(v); return v; }));
}
