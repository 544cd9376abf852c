// HookwireClient against fake servers on loopback whose connections fail
// in ways a real cluster's do (a server process dying mid-call).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Code, EventService, HookwireClient, HookwireError } from "@hookwire/sdk";

// listen serves handler on a free loopback port (h2c) and returns its URL.
async function listen(server: http2.Http2Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("HookwireClient when a server's connection drops mid-call", () => {
  let seen = 0;
  // dying takes each call's request and then closes the TCP connections
  // under it without an answer, as a server process killed mid-call does.
  const sockets = new Set<Socket>();
  const dying = http2.createServer(() => {
    seen++;
    for (const s of sockets) {
      s.destroy();
    }
  });
  dying.on("connection", (s: Socket) => sockets.add(s));
  const publishes: string[] = [];
  const healthy = http2.createServer(
    connectNodeAdapter({
      routes: (router) =>
        router.service(EventService, {
          publishEvent: (req) => {
            publishes.push(req.event?.idempotencyKey ?? "");
            return { id: "evt_01" };
          },
        }),
    }),
  );
  let urls: string[] = [];
  const clients: HookwireClient[] = [];

  before(async () => {
    urls = [await listen(dying), await listen(healthy)];
  });
  after(() => {
    for (const c of clients) {
      c.close();
    }
    dying.close();
    healthy.close();
  });

  it("sends a publish (it carries an idempotency key) to the next server", async () => {
    const hw = new HookwireClient({ baseUrl: urls, retries: 0 });
    clients.push(hw);
    const res = await hw.publish("acme", { type: "order.created", payload: { n: 1 } });
    assert.equal(res.id, "evt_01");
    assert.equal(seen, 1, "the first server took the call");
    assert.equal(publishes.length, 1);
    assert.equal(publishes[0], res.idempotencyKey, "the second server got the same key");
  });

  it("reports a call that may have acted as Unavailable, not Canceled, and does not repeat it", async () => {
    const hw = new HookwireClient({ baseUrl: urls, retries: 3 });
    clients.push(hw);
    const before = seen;
    const err = await hw.tenants.create("globex").then(
      () => assert.fail("create on a dying server succeeded"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HookwireError);
    assert.equal(err.code, Code.Unavailable, err.message);
    assert.match(err.message, /connection to the server was lost/);
    assert.equal(seen - before, 1, "a create without a key is sent once");
  });

  it("keeps Canceled when the caller cancelled", async () => {
    const stop = new AbortController();
    const hang = http2.createServer(() => stop.abort()); // takes the call, never answers
    const url = await listen(hang);
    try {
      const one = new HookwireClient({ baseUrl: url, retries: 3 });
      clients.push(one);
      const err = await one.publish("acme", { type: "order.created", payload: {} }, { signal: stop.signal }).then(
        () => assert.fail("a cancelled publish succeeded"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof HookwireError);
      assert.equal(err.code, Code.Canceled, err.message);
    } finally {
      hang.close();
    }
  });
});
