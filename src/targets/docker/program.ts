/** target: docker, the Pulumi program's side: a container per customer on one engine (components/dockerCustomerService.ts). */
import { DockerCustomerService } from "../../../components/dockerCustomerService";
import type { CustomerProgram } from "../customerProgram";

export const dockerProgram: CustomerProgram = {
  createService(name, { identity, settled, dockerHost }) {
    return new DockerCustomerService(name, { identity, settings: settled.then((s) => s.service), dockerHost });
  },
  edgeUpstream: (spec) => spec.containerName,
  edgeAlsoSuffixes: () => [],
  logCollectors: (_env, dockerHost) => [{ host: dockerHost }],
  logAddress: (logs) => logs?.address,
  stackOutputs: () => ({}),
};
