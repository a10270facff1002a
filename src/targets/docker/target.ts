/** target: docker, on fleet's side: one host, a container per customer, its data on the host's engine. */
import type Dockerode from "dockerode";
import { auditContainer, auditFleet, failedChecks, type AuditFilter, type ContainerAudit } from "../../audit/audit";
import { ConfigError } from "../../config/errors";
import type { DockerEnvironmentConfig, Sandbox } from "../../config/schema";
import { type ContainerStatus, type DeployTarget, type LogSource, type MoveResult, type TargetEngine } from "../deployTarget";
import { logCollectorNames } from "../../hardening/names";
import { missingRuntime, runtimeOf, sandboxRuntime } from "../../hardening/sandbox";

export class DockerTarget implements DeployTarget {
  readonly kind = "docker" as const;
  private client: Dockerode | undefined;

  /** `connect`: a client of the environment's engine (docker:host, else DOCKER_HOST, else the local socket) */
  constructor(readonly config: DockerEnvironmentConfig, private readonly connect: () => Dockerode) {}

  /** The host's engine, connected on first use. */
  get engine(): Dockerode {
    this.client ??= this.connect();
    return this.client;
  }

  placement(): undefined {
    return undefined;
  }

  async findDataHome(): Promise<undefined> {
    return undefined;
  }

  dataEngine(): Dockerode {
    return this.engine;
  }

  engines(): TargetEngine[] {
    return [{ engine: this.engine }];
  }

  async volumeHolders(volume: string): Promise<TargetEngine[]> {
    const found = await this.engine.getVolume(volume).inspect().then(() => true, () => false);
    return found ? [{ engine: this.engine }] : [];
  }

  async prepareOneShot(): Promise<void> {
    // the image runs on this engine already
  }

  async status(container: string): Promise<ContainerStatus> {
    const info = await this.engine.getContainer(container).inspect().catch(() => undefined);
    if (!info) return { health: "not deployed", runtime: "-" }; // no container
    if (!info.State.Running) return { health: info.State.Status, runtime: "-" };
    // a paused container keeps its last health status (its healthcheck is frozen too)
    return { health: info.State.Paused ? "paused" : info.State.Health?.Status ?? "running", runtime: runtimeOf(info.HostConfig) };
  }

  async gate(container: string): Promise<string | undefined> {
    const a = await auditContainer(this.engine, container).catch((e: Error) => e);
    return a instanceof Error ? a.message : failedChecks(a.checks).join("; ") || undefined;
  }

  audit(filter: AuditFilter): Promise<ContainerAudit[]> {
    return auditFleet(this.engine, filter);
  }

  logSource(customer: string, container: string): LogSource {
    const { name, edge } = this.config;
    return {
      collectors: [{ engine: this.engine }], collector: logCollectorNames(name, edge.name).container, customer,
      fallback: { kind: "container", engine: this.engine, name: container },
    };
  }

  async restartCustomer(container: string): Promise<void> {
    const c = this.engine.getContainer(container);
    if ((await c.inspect()).State.Paused) await c.unpause();
    await c.restart({ t: 10 });
  }

  nodeEngineFor(node: string): Dockerode {
    throw new ConfigError("--node", [{ path: "--node", found: JSON.stringify(node),
      message: `is for target: swarm; '${this.config.name}' runs on one host (target: docker), whose engine holds every customer's data` }]);
  }

  /** The host's engine has the runtime the plan names (a sandboxed plan's runsc is registered in its daemon.json). */
  async checkRuntime(plan: string, sandbox: Sandbox): Promise<void> {
    if (sandboxRuntime(sandbox) === undefined) return; // the engine's default
    const info = (await this.engine.info()) as { Runtimes?: Record<string, unknown> };
    const problem = missingRuntime(sandbox, Object.keys(info.Runtimes ?? {}));
    if (problem) {
      throw new Error(`plan '${plan}' runs its customers in a ${sandbox} sandbox, and the engine of environment '${this.config.name}' ${problem}: ` +
        `register ${sandboxRuntime(sandbox)} in that engine's daemon.json "runtimes" (docs/sandbox.md; scripts/ensure-runsc.sh builds it, and ` +
        "'npm run setup' does both for this machine's engine), or choose a plan without sandbox. Nothing was created");
    }
  }

  checkMove(): never {
    throw new ConfigError("--env", [{ path: "--env", found: JSON.stringify(this.config.name), message: "runs on one host (target: docker): there is no other node to move to" }]);
  }

  async moveToNode(): Promise<MoveResult> {
    this.checkMove();
  }
}
