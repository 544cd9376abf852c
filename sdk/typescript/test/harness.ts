// Test harness: a real `hookwire dev` on free loopback ports, a webhook
// receiver, and a gRPC proxy that can lose answers. Everything listens on
// 127.0.0.1 and is stopped by the test's after() hook.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The repository root (this file runs from sdk/typescript/build/test/). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/**
 * eventually polls check until it returns a value other than undefined
 * (or stops throwing) and returns it, or fails after timeoutMs with the
 * last error or what.
 */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) {
        return v;
      }
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ""}`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * buildHookwire builds cmd/hookwire once into dir (or returns $HOOKWIRE_BIN
 * when set, e.g. a binary CI already built).
 */
export async function buildHookwire(dir: string): Promise<string> {
  const prebuilt = process.env["HOOKWIRE_BIN"];
  if (prebuilt) {
    if (!existsSync(prebuilt)) {
      throw new Error(`HOOKWIRE_BIN=${prebuilt} does not exist`);
    }
    return prebuilt;
  }
  const bin = join(dir, "hookwire");
  await promisify(execFile)("go", ["build", "-o", bin, "./cmd/hookwire"], { cwd: repoRoot, maxBuffer: 16 << 20 });
  return bin;
}

/** A running `hookwire dev`. */
export interface DevServer {
  /** gRPC address as http://127.0.0.1:PORT. */
  grpcUrl: string;
  adminKey: string;
  /** Everything the server printed (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * startDev runs `hookwire dev` with a fresh data dir and ports picked by
 * the kernel, reads the addresses it prints, and polls /readyz on its
 * admin address until the server is ready.
 */
export async function startDev(bin: string, workDir: string, extraArgs: string[] = []): Promise<DevServer> {
  const dataDir = await mkdtemp(join(workDir, "data-"));
  const adminKey = "hw_sdk_test_admin_key_0123456789";
  const child = spawn(
    bin,
    ["dev", "--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "off", "--admin-addr", "127.0.0.1:0", "--log-level", "warn", ...extraArgs],
    { env: { ...process.env, HOOKWIRE_ADMIN_KEY: adminKey }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let exited: string | undefined;
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.on("exit", (code, signal) => (exited = `hookwire dev exited (code ${code}, signal ${signal})`));
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    await stopChild(child);
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const addrs = await eventually(
      "hookwire dev to print its addresses",
      () => {
        if (exited) {
          throw new Error(`${exited}:\n${out}`);
        }
        const grpc = /gRPC API\s+(\S+)/.exec(out)?.[1];
        const admin = /admin\s+(http:\/\/\S+)/.exec(out)?.[1];
        return grpc && admin ? { grpc, admin } : undefined;
      },
      60_000,
    );
    await eventually(
      "/readyz to answer 200",
      async () => {
        if (exited) {
          throw new Error(`${exited}:\n${out}`);
        }
        const res = await fetch(`${addrs.admin}/readyz`);
        await res.arrayBuffer();
        return res.status === 200 ? true : undefined;
      },
      60_000,
    );
    return { grpcUrl: `http://${addrs.grpc}`, adminKey, output: () => out, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const done = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await done;
  clearTimeout(timer);
}

/** One webhook as the receiver got it. */
export interface ReceivedWebhook {
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** An HTTP server on 127.0.0.1 that answers 204 and keeps what it got. */
export interface Receiver {
  url: string;
  received: ReceivedWebhook[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const received: ReceivedWebhook[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string") {
          headers[k] = v;
        }
      }
      received.push({ path: req.url ?? "", headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A loopback port nothing listens on (connections are refused). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** What the proxy did with one call. */
export interface ProxiedCall {
  path: string;
  /** The upstream's answer message (gRPC frame payload), when it had one. */
  answer?: Uint8Array;
  /** The answer was dropped and the client told Unavailable instead. */
  dropped: boolean;
}

/**
 * A gRPC proxy in front of the server (h2c). For the calls drop() picks,
 * it lets the server process the call completely, then throws the answer
 * away and tells the client Unavailable: an answer lost on the way back.
 */
export interface LossyProxy {
  url: string;
  calls: ProxiedCall[];
  dropNext(path: string): void;
  close(): Promise<void>;
}

export async function startLossyProxy(upstreamUrl: string): Promise<LossyProxy> {
  const upstream = http2.connect(upstreamUrl);
  upstream.on("error", () => {});
  const calls: ProxiedCall[] = [];
  const toDrop: string[] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"]);
    const forward: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(headers)) {
      if (!k.startsWith(":")) {
        forward[k] = v;
      }
    }
    forward[":method"] = "POST";
    forward[":path"] = path;
    const req = upstream.request(forward);
    stream.pipe(req);
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => (responseHeaders = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => stream.destroy());
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const i = toDrop.indexOf(path);
      const dropped = i >= 0;
      if (dropped) {
        toDrop.splice(i, 1);
      }
      // A gRPC message frame: 1 byte flags, 4 bytes length, the message.
      calls.push({ path, answer: body.length >= 5 ? body.subarray(5, 5 + body.readUInt32BE(1)) : undefined, dropped });
      if (dropped) {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-status": "14", "grpc-message": "the test proxy lost the answer" },
          { endStream: true },
        );
        return;
      }
      const h: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(responseHeaders)) {
        if (!k.startsWith(":") || k === ":status") {
          h[k] = v;
        }
      }
      const t: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(trailers)) {
        if (!k.startsWith(":")) {
          t[k] = v;
        }
      }
      if (Object.keys(t).length === 0) {
        stream.respond(h); // a trailers-only answer (an error) or no trailers
        stream.end(body);
        return;
      }
      stream.respond(h, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers(t));
      stream.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    dropNext: (path) => toDrop.push(path),
    close: async () => {
      upstream.close();
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions) {
        s.destroy();
      }
      await closed;
    },
  };
}

/** One `hookwire server` of a test cluster. */
export interface ClusterNode {
  grpcUrl: string;
  /** Kills the process at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

/**
 * startCluster runs `count` `hookwire server`s on loopback forming one
 * Raft cluster (--bootstrap-expect) with one master key and admin key. It
 * returns once each has printed its gRPC address; callers poll the API
 * for a leader.
 */
export async function startCluster(bin: string, workDir: string, adminKey: string, count = 3): Promise<ClusterNode[]> {
  const dir = await mkdtemp(join(workDir, "cluster-"));
  const masterKey = join(dir, "master.key");
  await promisify(execFile)(bin, ["keygen", "--out", masterKey]);
  const clusterAddrs: string[] = [];
  for (let i = 0; i < count; i++) {
    clusterAddrs.push(`127.0.0.1:${await closedPort()}`);
  }
  const nodes: ClusterNode[] = [];
  try {
    for (let i = 0; i < count; i++) {
      nodes.push(
        await startProcess(
          bin,
          [
            "server",
            "--node-id", `n${i + 1}`,
            "--data-dir", join(dir, `n${i + 1}`),
            "--master-key-file", masterKey,
            "--grpc-addr", "127.0.0.1:0",
            "--http-addr", "off",
            "--admin-addr", "off",
            "--cluster-addr", clusterAddrs[i]!,
            "--bootstrap-expect", String(count),
            "--join", clusterAddrs.join(","),
            "--log-level", "warn",
          ],
          { HOOKWIRE_ADMIN_KEY: adminKey },
        ),
      );
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  return nodes;
}

async function startProcess(bin: string, args: string[], env: Record<string, string>): Promise<ClusterNode> {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let exited: string | undefined;
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.on("exit", (code, signal) => (exited = `hookwire ${args[0]} exited (code ${code}, signal ${signal})`));
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const stop = async () => {
    process.removeListener("exit", killOnExit);
    await stopChild(child);
  };
  try {
    const grpc = await eventually(
      `hookwire ${args[0]} to print its gRPC address`,
      () => {
        if (exited) {
          throw new Error(`${exited}:\n${out}`);
        }
        return /^gRPC (\S+)/m.exec(out)?.[1];
      },
      60_000,
    );
    return {
      grpcUrl: `http://${grpc}`,
      output: () => out,
      stop,
      kill: async () => {
        const done = new Promise<void>((r) => child.once("exit", () => r()));
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGKILL");
          await done;
        }
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
