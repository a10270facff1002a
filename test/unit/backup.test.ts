/**
 * Backups, the pure parts: the backup config and its errors, repository URLs (what a job is told,
 * where its relay connects), the secret files a job gets, the schedule, the retention policy as
 * restic applies it, and restic's JSON output.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { parseEnvironmentConfig } from "../../src/config/load";
import { durationSeconds } from "../../src/config/schema";
import { customerRepository, describeRepository, hostInsideJob, parseRepository, relayTarget, resticLocation, RELAY_ALIAS } from "../../src/backup/repository";
import { jobOptions, jobSecretFiles } from "../../src/backup/restic";
import { forgetArgs, keptByPolicy } from "../../src/backup/retention";
import { isDue, latestSlot, nextSlot, slotOffset } from "../../src/backup/schedule";
import { parseBackupSummary, parseLs, parseSnapshots, resticErrors } from "../../src/backup/snapshots";
import { latestByCustomer, type BackupRecord } from "../../src/backup/records";
import { engineAddress, engineAt } from "../../src/engine/client";
import { pauseContainer } from "../../src/fleet/backups";
import type Dockerode from "dockerode";
import { rawEnvironment } from "../support/fixtures";

function configProblem(mutate: (r: Record<string, any>) => void, stack: "staging" | "prod" = "staging"): string {
  const raw = rawEnvironment(stack);
  mutate(raw);
  try {
    parseEnvironmentConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return assert.fail("expected a ConfigError");
}

describe("backup config", () => {
  it("the committed environments have backups: staging on this host, prod off it", () => {
    const staging = parseEnvironmentConfig(rawEnvironment("staging"));
    const prod = parseEnvironmentConfig(rawEnvironment("prod"));
    assert.equal(parseRepository(staging.backup!.repository).kind, "local");
    assert.equal(parseRepository(prod.backup!.repository).kind, "rest");
    assert.equal(staging.backup!.maxPauseSeconds, 300);
  });

  it("production requires an off-host repository, and says so", () => {
    assert.match(configProblem((r) => { r.backup.repository = "/var/backups/prod"; }, "prod"),
      /backup\.repository: must be an off-host repository in production \(rest:, s3: or sftp:\)/);
    assert.match(configProblem((r) => { delete r.backup; }, "prod"), /backup\.repository: must be an off-host repository in production/);
  });

  for (const [name, mutate, message] of [
    ["credentials in the URL", (r: any) => { r.backup.repository = "rest:http://fleet:secret@10.0.0.5:8000/staging"; }, /without credentials/],
    ["a relative path", (r: any) => { r.backup.repository = "backups/staging"; }, /absolute path/],
    ["an unknown scheme", (r: any) => { r.backup.repository = "b2:bucket/staging"; }, /rest:http\(s\):\/\/host/],
    ["a schedule without unit", (r: any) => { r.backup.schedule = "6"; }, /backup\.schedule: must be a duration like 30m, 6h or 1d/],
    ["a schedule too short", (r: any) => { r.backup.schedule = "1m"; }, /backup\.schedule: must be at least 5m/],
    ["a retention that keeps nothing", (r: any) => { r.backup.retention = { hourly: 0, daily: 0, weekly: 0, monthly: 0 }; }, /backup\.retention: must keep at least one snapshot/],
    ["an unknown key", (r: any) => { r.backup.pasword = "x"; }, /backup: .*pasword/i],
    ["sftp without the server's host key", (r: any) => { r.backup.repository = "sftp:backup@vault.example.com:/srv/restic"; }, /backup\.sftpHostKey: is required with an sftp: repository/],
  ] as [string, (r: any) => void, RegExp][]) {
    it(`refuses ${name}, naming the key`, () => assert.match(configProblem(mutate), message));
  }

  it("durations", () => {
    assert.equal(durationSeconds("30m"), 1800);
    assert.equal(durationSeconds("6h"), 21600);
    assert.equal(durationSeconds("1d"), 86400);
  });
});

describe("repositories", () => {
  it("one repository per customer, under the environment's", () => {
    assert.deepEqual(customerRepository(parseRepository("/var/lib/hf/backups/staging/"), "acme"), { kind: "local", path: "/var/lib/hf/backups/staging/acme" });
    const rest = customerRepository(parseRepository("rest:http://10.240.1.2:8000/staging"), "acme");
    assert.deepEqual(rest, { kind: "rest", scheme: "http", host: "10.240.1.2", port: 8000, path: "/staging/acme" });
    assert.equal(describeRepository(rest), "rest:http://10.240.1.2:8000/staging/acme");
  });

  it("the job reaches an address through the relay's alias, a name as itself (TLS checks the real name)", () => {
    const byAddress = customerRepository(parseRepository("rest:http://10.240.1.2:8000/staging"), "acme");
    assert.deepEqual(relayTarget(byAddress), { host: "10.240.1.2", port: 8000 });
    assert.equal(resticLocation(byAddress), `rest:http://${RELAY_ALIAS}:8000/staging/acme/`);
    const byName = customerRepository(parseRepository("s3:https://s3.eu-central-1.example.com/fleet-backups/prod"), "acme");
    assert.equal(hostInsideJob(byName), "s3.eu-central-1.example.com");
    assert.equal(resticLocation(byName), "s3:https://s3.eu-central-1.example.com/fleet-backups/prod/acme/");
    assert.deepEqual(relayTarget(byName), { host: "s3.eu-central-1.example.com", port: 443 });
    const sftp = customerRepository(parseRepository("sftp:backup@vault.example.com:/srv/restic/prod"), "acme");
    assert.equal(resticLocation(sftp), "sftp:backup@vault.example.com:/srv/restic/prod/acme");
    assert.deepEqual(relayTarget(sftp), { host: "vault.example.com", port: 22 });
    assert.equal(relayTarget(parseRepository("/srv/backups")), undefined);
    assert.equal(resticLocation(parseRepository("/srv/backups")), "/repo");
  });

  it("secrets go into files: the password, the repository with the account for rest, an AWS credentials file for s3, a key for sftp", () => {
    const rest = customerRepository(parseRepository("rest:http://10.240.1.2:8000/staging"), "acme");
    const files = Object.fromEntries(jobSecretFiles(rest, { password: "pw", username: "fleet", credential: "s3cr:t/@" }).map((f) => [f.name, f.body]));
    assert.deepEqual(Object.keys(files).sort(), ["password", "repository"]);
    assert.equal(files.repository, `rest:http://fleet:s3cr%3At%2F%40@${RELAY_ALIAS}:8000/staging/acme/`);
    const s3 = customerRepository(parseRepository("s3:https://s3.example.com/b/prod"), "acme");
    const s3files = Object.fromEntries(jobSecretFiles(s3, { password: "pw", username: "AKIA1", credential: "sk" }).map((f) => [f.name, f.body]));
    assert.match(s3files["aws-credentials"]!, /aws_access_key_id = AKIA1\naws_secret_access_key = sk/);
    assert.ok(jobOptions(s3).env.includes("AWS_SHARED_CREDENTIALS_FILE=/run/fleet/aws-credentials"));
    const opts = jobOptions(rest);
    // the environment names files only
    assert.deepEqual(opts.env.filter((e) => /PASSWORD|REPOSITORY/.test(e)), ["RESTIC_PASSWORD_FILE=/run/fleet/password", "RESTIC_REPOSITORY_FILE=/run/fleet/repository"]);
    const sftp = customerRepository(parseRepository("sftp:backup@vault.example.com:/srv/restic"), "acme");
    assert.match(jobOptions(sftp).args.join(" "), /ssh -i \/run\/fleet\/ssh-key .*StrictHostKeyChecking=yes .*HostKeyAlias=vault\.example\.com -p 22 backup@vault\.example\.com -s sftp/);
    const sftpFiles = Object.fromEntries(jobSecretFiles(sftp, { password: "pw", credential: "-----BEGIN OPENSSH PRIVATE KEY-----", sftpHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabc" }).map((f) => [f.name, f.body]));
    assert.equal(sftpFiles.known_hosts, "vault.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabc\n");
    assert.equal(sftpFiles["ssh-key"], "-----BEGIN OPENSSH PRIVATE KEY-----\n");
  });
});

describe("the schedule", () => {
  const H = 3600_000;
  it("each customer has its slot in the interval, spread by its name", () => {
    const offsets = ["acme", "globex", "initech", "umbrella", "hooli"].map((c) => slotOffset(c, 6 * 3600));
    assert.ok(offsets.every((o) => o >= 0 && o < 6 * 3600));
    assert.ok(new Set(offsets).size > 3, "spread");
    const now = Date.UTC(2026, 11, 6, 12, 0, 0);
    const slot = latestSlot(now, "acme", 6 * 3600);
    assert.ok(slot <= now && slot > now - 6 * H);
    assert.equal(nextSlot(now, "acme", 6 * 3600), slot + 6 * H);
  });

  it("due: never backed up, the last attempt failed, or the slot passed since the last success", () => {
    const now = Date.UTC(2026, 11, 6, 12, 0, 0);
    const slot = latestSlot(now, "acme", 6 * 3600);
    assert.equal(isDue(now, "acme", 6 * 3600, undefined), true);
    assert.equal(isDue(now, "acme", 6 * 3600, { at: now - 60_000, ok: false }), true);
    assert.equal(isDue(now, "acme", 6 * 3600, { at: slot + 1, ok: true }), false);
    assert.equal(isDue(now, "acme", 6 * 3600, { at: slot - 1, ok: true }), true);
  });
});

describe("retention, as restic applies it", () => {
  const at = (iso: string) => ({ id: iso, time: iso });
  it("keeps the newest of each of the last N hours, days, weeks and months that have a snapshot", () => {
    const list = [
      at("2026-12-06T11:50:00Z"), at("2026-12-06T11:10:00Z"), at("2026-12-06T10:30:00Z"), at("2026-12-06T09:00:00Z"),
      at("2026-12-05T20:00:00Z"), at("2026-12-05T08:00:00Z"), at("2026-12-03T12:00:00Z"), at("2026-11-20T12:00:00Z"),
    ];
    // hourly 2: 11:50 and 10:30; daily 2: 11:50 (the 6th) and 20:00 (the 5th)
    assert.deepEqual([...keptByPolicy(list, { hourly: 2, daily: 2, weekly: 0, monthly: 0 })].sort(),
      ["2026-12-05T20:00:00Z", "2026-12-06T10:30:00Z", "2026-12-06T11:50:00Z"]);
    // weekly 2: ISO weeks 49 (Dec 6 is a Sunday: week 49 holds Nov 30 to Dec 6) and 47 (Nov 20)
    assert.deepEqual([...keptByPolicy(list, { hourly: 0, daily: 0, weekly: 2, monthly: 0 })].sort(), ["2026-11-20T12:00:00Z", "2026-12-06T11:50:00Z"]);
    // counts left over keep the oldest snapshot too (restic keeps the longest history it can)
    assert.deepEqual([...keptByPolicy(list, { hourly: 0, daily: 0, weekly: 0, monthly: 5 })].sort(), ["2026-11-20T12:00:00Z", "2026-12-06T11:50:00Z"]);
    assert.equal(keptByPolicy([], { hourly: 1, daily: 1, weekly: 1, monthly: 1 }).size, 0);
  });

  it("restic's arguments group a customer's repository by host", () => {
    assert.deepEqual(forgetArgs({ hourly: 24, daily: 7, weekly: 4, monthly: 12 }),
      ["--group-by", "host", "--keep-hourly", "24", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12"]);
  });
});

describe("restic's JSON", () => {
  it("the backup summary, its errors, the snapshots and a listing", () => {
    const out = [
      `{"message_type":"status","percent_done":0.5}`,
      `{"message_type":"summary","files_new":3,"data_added":1234,"total_files_processed":5,"total_bytes_processed":9999,"snapshot_id":"abcdef0123456789"}`,
    ].join("\n");
    assert.deepEqual(parseBackupSummary(out), { snapshot: "abcdef0123456789", totalBytes: 9999, files: 5, added: 1234 });
    assert.equal(parseBackupSummary(`{"message_type":"status"}`), undefined);
    assert.deepEqual(resticErrors(`{"message_type":"error","error":{"message":"permission denied"},"during":"archival","item":"/data/x"}\nplain text`),
      ["/data/x: permission denied"]);
    const snaps = parseSnapshots(JSON.stringify([
      { id: "b".repeat(64), short_id: "bbbbbbbb", time: "2026-12-06T10:00:00Z", tags: ["hf-reason=manual"], summary: { total_bytes_processed: 10, total_files_processed: 2 } },
      { id: "a".repeat(64), short_id: "aaaaaaaa", time: "2026-12-05T10:00:00Z" },
    ]));
    assert.deepEqual(snaps.map((s) => s.shortId), ["aaaaaaaa", "bbbbbbbb"], "oldest first");
    assert.equal(snaps[1]!.bytes, 10);
    assert.deepEqual(parseLs([
      `{"time":"x","tree":"y","paths":["/data"],"id":"z","struct_type":"snapshot"}`,
      `{"name":"uploads","type":"dir","path":"/data/uploads","struct_type":"node"}`,
      `{"name":"a.bin","type":"file","path":"/data/uploads/a.bin","size":42,"struct_type":"node"}`,
    ].join("\n")), [{ path: "uploads/a.bin", size: 42 }]);
  });

  it("the newest record of each customer", () => {
    const r = (customer: string, at: string, ok: boolean): BackupRecord => ({ kind: "backup", customer, at, ok, durationMs: 1 });
    const latest = latestByCustomer([r("a", "1", true), r("b", "2", true), r("a", "3", false), { ...r("a", "4", true), kind: "drill" }], "backup");
    assert.deepEqual([...latest.entries()].map(([c, x]) => [c, x.at]), [["a", "3"], ["b", "2"]]);
  });
});

describe("the pause guard's engine", () => {
  it("is the one the backup paused on: its address read back from the client", () => {
    for (const host of ["unix:///run/hf-swarm/hfsw/node1.sock", "tcp://10.231.0.11:2375", "ssh://ops@node2:22"]) assert.equal(engineAddress(engineAt(host)), host);
    // dockerode's default (DOCKER_HOST, else the socket it finds): "" gives the guard the same default
    if (!process.env.DOCKER_HOST) assert.equal(engineAddress(engineAt(undefined)), "");
  });
});

describe("pausing for a snapshot", () => {
  /** a container whose pause fails `failures` times the way runc does when the freezer times out */
  const fake = (failures: number, message = "(HTTP code 500) server error - Cannot pause container x: OCI runtime pause failed: unable to freeze: unknown") => {
    const calls: string[] = [];
    let left = failures;
    return {
      calls,
      container: {
        pause: async () => { calls.push("pause"); if (left-- > 0) throw new Error(message); },
        unpause: async () => { calls.push("unpause"); throw new Error("Container x is not paused"); },
      } as unknown as Dockerode.Container,
    };
  };

  it("tries a freeze that timed out again, and says so", async () => {
    const f = fake(2);
    const lines: string[] = [];
    await pauseContainer(f.container, "hf-prod-acme-1", (l) => lines.push(l), 5);
    assert.deepEqual(f.calls, ["pause", "unpause", "pause", "unpause", "pause"]);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /could not freeze it yet.*again in 0\.5s/);
  });

  it("gives up after its attempts naming the container and that it keeps running; other errors are not retried", async () => {
    const f = fake(9);
    await assert.rejects(pauseContainer(f.container, "hf-prod-acme-1", () => {}, 2), /could not pause hf-prod-acme-1 .*2 attempt\(s\).*unable to freeze.*keeps running/);
    const gone = fake(1, "no such container: x");
    await assert.rejects(pauseContainer(gone.container, "hf-prod-acme-1", () => {}, 5), /1 attempt\(s\).*no such container/);
    assert.deepEqual(gone.calls, ["pause"]);
  });
});
