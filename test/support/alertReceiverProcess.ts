/**
 * A chat webhook receiver as a process of its own, for a watcher that runs inside a network namespace
 * (run with `ip netns exec <namespace>`): listens on that namespace's 127.0.0.1, prints
 * "listening <port>", then each alert it accepts as one JSON line.
 */
import * as http from "node:http";

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { alert: unknown };
    process.stdout.write(`${JSON.stringify(body.alert)}\n`);
    res.writeHead(200);
    res.end("ok");
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
