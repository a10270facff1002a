/**
 * What ties customers to their environment's edge proxy, done through the Docker Engine API (the
 * docker provider cannot connect a container it does not own to a network, or write into it):
 *
 *  - EdgeRoute (customer stack): connects the proxy to the customer's network, writes the customer's
 *    route file into the proxy's volume and reloads Caddy. It depends on the new container's gate,
 *    so traffic switches only once that container is healthy and passed the audit; the old container
 *    is removed after it. Deleted, it removes the route and disconnects the proxy.
 *  - EdgeNetworks (environment stack): when the proxy container is new (first deployment, or a new
 *    proxy image), connects it to every customer network of the environment, whose routes it finds
 *    in its volume.
 *
 * The providers are serialized into the Pulumi state and run in their own process: the text and
 * commands come in as inputs (src/edge/routes.ts); the engine client and exec are loaded from the
 * compiled project at run time (components/providerRuntime.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import { providerEngine, runIn } from "./providerRuntime";

export interface EdgeRouteInputs {
  /** the proxy container's name (hf-<environment>-<edge.name>) */
  proxy: pulumi.Input<string>;
  /** the customer's network, which the proxy joins */
  network: pulumi.Input<string>;
  routesDir: pulumi.Input<string>;
  fileName: pulumi.Input<string>;
  fileText: pulumi.Input<string>;
  reload: pulumi.Input<string[]>;
  /** the container the route sends traffic to; an output of its gate, so the switch waits for it */
  upstream: pulumi.Input<string>;
  dockerHost: pulumi.Input<string>;
}

interface RouteState {
  proxy: string;
  network: string;
  routesDir: string;
  fileName: string;
  fileText: string;
  reload: string[];
  upstream: string;
  dockerHost?: string;
}

/** A tar archive of one file owned by 1000:1000, for the Engine API's archive upload. */
function tarOf(name: string, text: string): Buffer {
  const body = Buffer.from(text, "utf8");
  const header = Buffer.alloc(512);
  const octal = (n: number, width: number) => `${n.toString(8).padStart(width - 1, "0")}\0`;
  header.write(name, 0);
  header.write(octal(0o644, 8), 100);
  header.write(octal(1000, 8), 108);
  header.write(octal(1000, 8), 116);
  header.write(octal(body.length, 12), 124);
  header.write(octal(Math.floor(Date.now() / 1000), 12), 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\0", 257);
  header.write("00", 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return Buffer.concat([header, body, Buffer.alloc((512 - (body.length % 512)) % 512), Buffer.alloc(1024)]);
}

async function runningProxy(state: RouteState) {
  const engine = providerEngine(state.dockerHost);
  const proxy = engine.getContainer(state.proxy);
  let info;
  try {
    info = await proxy.inspect();
  } catch {
    throw new Error(`the edge proxy ${state.proxy} is not on this Docker host: deploy the environment stack first ('fleet up <environment>')`);
  }
  if (!info.State.Running) throw new Error(`the edge proxy ${state.proxy} is not running (${info.State.Status}): 'fleet up <environment>' starts it`);
  return { engine, proxy, info };
}

async function connect(engine: any, info: any, network: string): Promise<void> {
  if (network in (info.NetworkSettings?.Networks ?? {})) return;
  try {
    await engine.getNetwork(network).connect({ Container: info.Id });
  } catch (err) {
    if (!/already exists/.test(String((err as Error).message))) throw err;
  }
}

async function disconnect(engine: any, container: string, network: string): Promise<void> {
  try {
    await engine.getNetwork(network).disconnect({ Container: container, Force: true });
  } catch { /* not connected, or either is gone: nothing to undo */ }
}

/**
 * A customer's swarm overlay the route no longer uses (it moved to an encrypted one, or back),
 * removed once no service uses it. The proxy's attachment to an overlay is a task of the manager's,
 * released a moment after the disconnect, and the old task of a start-first update lingers too:
 * until then the engine refuses the removal ("in use by task"), which the docker provider does not
 * retry, so the deployment would fail at its very end. Retried here for up to a minute, then
 * waited until the engine no longer shows it: the network resource's own delete, right after this
 * update, then finds it "already removed".
 */
async function removeLeftOverlay(engine: any, network: string): Promise<void> {
  let id: string;
  try {
    const info = await engine.getNetwork(network).inspect();
    if (info.Scope !== "swarm") return;
    id = info.Id;
  } catch {
    return; // gone already
  }
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    try {
      const services: any[] = await engine.listServices();
      if (services.some((s) => (s.Spec?.TaskTemplate?.Networks ?? []).some((n: any) => n.Target === id || n.Target === network))) return;
      await engine.getNetwork(id).remove();
      await networkGone(engine, id);
      return;
    } catch (err) {
      const message = String((err as Error).message);
      if (/no such network|not found/i.test(message)) return;
      if (!/in use by task|active endpoints/i.test(message)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * Waits (at most half a minute) until the engine no longer shows a removed swarm network: the manager
 * removes it a moment before the engine stops listing it, and the network resource's own delete,
 * which runs next, fails with "not found" when it still sees the network but can no longer remove it.
 */
async function networkGone(engine: any, id: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    try {
      await engine.getNetwork(id).inspect();
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Writes the route file (a temporary name, then a rename: a concurrent reload never reads half of it) and reloads. */
async function writeRoute(proxy: any, state: RouteState, text: string | undefined): Promise<{ code: number; output: string }> {
  const target = `${state.routesDir}/${state.fileName}`;
  if (text === undefined) {
    await runIn(proxy, ["rm", "-f", target]);
  } else {
    const tmp = `.${state.fileName}.tmp`;
    await proxy.putArchive(tarOf(tmp, text), { path: state.routesDir });
    const moved = await runIn(proxy, ["mv", "-f", `${state.routesDir}/${tmp}`, target]);
    if (moved.code !== 0) throw new Error(`could not write ${target} in ${state.proxy}: ${moved.output}`);
  }
  return runIn(proxy, state.reload);
}

/** The route of `next` live in the proxy; on a failed reload, `previous` (or no route) comes back. */
async function applyRoute(next: RouteState, previous: RouteState | undefined): Promise<void> {
  const { engine, proxy, info } = await runningProxy(next);
  await connect(engine, info, next.network);
  const reloaded = await writeRoute(proxy, next, next.fileText);
  if (reloaded.code !== 0) {
    await writeRoute(proxy, next, previous?.fileText);
    throw new Error(`the edge proxy ${next.proxy} refused the route of ${next.fileName} (the previous one stays): ${reloaded.output.slice(-600)}`);
  }
}

const routeProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: RouteState) {
    await applyRoute(inputs, undefined);
    return { id: `${inputs.proxy}/${inputs.fileName}`, outs: inputs };
  },
  async diff(_id: string, olds: RouteState, news: RouteState) {
    const replaces = olds.proxy !== news.proxy || olds.fileName !== news.fileName ? ["proxy"] : [];
    const changes = replaces.length > 0 || olds.network !== news.network || olds.fileText !== news.fileText
      || olds.upstream !== news.upstream || olds.routesDir !== news.routesDir || JSON.stringify(olds.reload) !== JSON.stringify(news.reload);
    return { changes, replaces, deleteBeforeReplace: false };
  },
  async update(_id: string, olds: RouteState, news: RouteState) {
    await applyRoute(news, olds);
    if (olds.network !== news.network) {
      const engine = providerEngine(news.dockerHost);
      await disconnect(engine, news.proxy, olds.network);
      await removeLeftOverlay(engine, olds.network);
    }
    return { outs: news };
  },
  async delete(_id: string, props: RouteState) {
    const engine = providerEngine(props.dockerHost);
    const proxy = engine.getContainer(props.proxy);
    try {
      await proxy.inspect();
    } catch {
      return; // the proxy is gone, and its routes with it
    }
    const reloaded = await writeRoute(proxy, props, undefined);
    if (reloaded.code !== 0) throw new Error(`the edge proxy ${props.proxy} failed to reload without ${props.fileName}: ${reloaded.output.slice(-600)}`);
    await disconnect(engine, props.proxy, props.network);
  },
};

export class EdgeRoute extends pulumi.dynamic.Resource {
  declare readonly upstream: pulumi.Output<string>;

  constructor(name: string, args: EdgeRouteInputs, opts?: pulumi.CustomResourceOptions) {
    super(routeProvider, name, { ...args }, opts, "hardened-fleet", "EdgeRoute");
  }
}

export interface EdgeNetworksInputs {
  /** the proxy container's ID: a new proxy container is connected anew */
  containerId: pulumi.Input<string>;
  /** its route files, `<customer>.caddy`: the customers it serves, and so the networks it joins */
  routesDir: pulumi.Input<string>;
  /** a customer's network is `<networkPrefix><customer><networkSuffix>` */
  networkPrefix: pulumi.Input<string>;
  networkSuffix: pulumi.Input<string>;
  /** further suffixes a customer's network may have (on a swarm: its encrypted overlay) */
  alsoSuffixes?: pulumi.Input<string[]>;
  dockerHost: pulumi.Input<string>;
}

interface NetworksState {
  containerId: string;
  routesDir: string;
  networkPrefix: string;
  networkSuffix: string;
  alsoSuffixes?: string[];
  dockerHost?: string;
  connected?: string[];
}

/**
 * Joins the networks of the customers the proxy has routes for, and only those: another project's
 * customers of an environment of the same name on this engine are not this proxy's to reach.
 */
async function connectAll(state: NetworksState): Promise<NetworksState> {
  const engine = providerEngine(state.dockerHost);
  const proxy = engine.getContainer(state.containerId);
  const info = await proxy.inspect();
  const listed = await runIn(proxy, ["ls", "-1", state.routesDir]);
  if (listed.code !== 0) throw new Error(`could not list the routes of the edge proxy: ${listed.output}`);
  const customers = listed.output.split("\n").map((f) => /^([a-z0-9-]+)\.caddy$/.exec(f.trim())?.[1]).filter((c): c is string => !!c);
  const connected: string[] = [];
  for (const customer of customers) {
    for (const suffix of [state.networkSuffix, ...(state.alsoSuffixes ?? [])]) {
      const network = `${state.networkPrefix}${customer}${suffix}`;
      try {
        await connect(engine, info, network);
        connected.push(network);
      } catch (err) {
        // a route whose network is gone (its stack destroyed by hand): the proxy answers 502 for it
        if (!/not found|No such network/i.test(String((err as Error).message))) throw err;
      }
    }
  }
  return { ...state, connected: connected.sort() };
}

const networksProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: NetworksState) {
    return { id: `${inputs.containerId}/networks`, outs: await connectAll(inputs) };
  },
  async diff(_id: string, olds: NetworksState, news: NetworksState) {
    return { changes: olds.containerId !== news.containerId, replaces: olds.containerId !== news.containerId ? ["containerId"] : [] };
  },
  async delete() {
    // the networks go with their customers; the proxy container with its own stack
  },
};

export class EdgeNetworks extends pulumi.dynamic.Resource {
  declare readonly connected: pulumi.Output<string[]>;

  constructor(name: string, args: EdgeNetworksInputs, opts?: pulumi.CustomResourceOptions) {
    super(networksProvider, name, { connected: undefined, ...args }, opts, "hardened-fleet", "EdgeNetworks");
  }
}
