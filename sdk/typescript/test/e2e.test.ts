// End-to-end: the SDK, as a user imports it, against a real `hookwire dev`
// delivering to a webhook receiver in this process.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { Webhook } from "standardwebhooks";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "@hookwire/sdk/gen/hookwire/v1/cluster_pb.js";
import {
  Code,
  DeliveryStatus,
  HookwireClient,
  HookwireError,
  PublishEventResponseSchema,
  SubscriptionStatus,
  type Subscription,
} from "@hookwire/sdk";
import {
  buildHookwire,
  closedPort,
  eventually,
  startCluster,
  startDev,
  startLossyProxy,
  startReceiver,
  type ClusterNode,
  type DevServer,
  type Receiver,
  type ReceivedWebhook,
} from "./harness.js";

const tenant = "sdk-test";

// One hookwire binary and one scratch directory for the whole file.
let workDir: string | undefined;
let binary: Promise<string> | undefined;
const hookwireBinary = async (): Promise<string> => {
  workDir ??= await mkdtemp(join(tmpdir(), "hookwire-sdk-test-"));
  binary ??= buildHookwire(workDir);
  return binary;
};
after(async () => {
  if (workDir) {
    await rm(workDir, { recursive: true, force: true });
  }
});

describe("HookwireClient against hookwire dev", () => {
  let dev: DevServer;
  let receiver: Receiver;
  let hw: HookwireClient;
  let sub: Subscription;
  let webhook: Webhook;
  const clients: HookwireClient[] = [];

  const newClient = (opts: Partial<ConstructorParameters<typeof HookwireClient>[0]> = {}) => {
    const c = new HookwireClient({ baseUrl: dev.grpcUrl, apiKey: dev.adminKey, ...opts });
    clients.push(c);
    return c;
  };

  // The webhook carrying payload field n, verified with the standardwebhooks
  // package and the subscription's secret from the create answer.
  const verifiedWebhook = async (n: number): Promise<ReceivedWebhook> => {
    const got = await eventually(`the webhook with n=${n}`, () =>
      receiver.received.find((w) => (JSON.parse(w.body) as { n?: number }).n === n),
    );
    const verified = webhook.verify(got.body, got.headers) as { n: number };
    assert.equal(verified.n, n);
    return got;
  };

  before(async () => {
    dev = await startDev(await hookwireBinary(), workDir!);
    receiver = await startReceiver();
    hw = newClient();
    await hw.tenants.create(tenant, "SDK test");
    sub = await hw.subscriptions.create(tenant, {
      description: "receiver in the test",
      eventTypes: ["order.*"],
      target: { transport: "http", config: { url: receiver.url } },
    });
    assert.match(sub.signingSecret, /^whsec_/, "the create answer carries the signing secret");
    webhook = new Webhook(sub.signingSecret);
  });

  after(async () => {
    for (const c of clients) {
      c.close();
    }
    await receiver?.close();
    await dev?.stop();
  });

  it("publishes an event that arrives signed and ends SUCCEEDED", async () => {
    const res = await hw.publish(tenant, { type: "order.created", payload: { n: 1, total: "9.99" }, metadata: { region: "eu" } });
    assert.match(res.id, /^evt_/);
    assert.equal(res.deliveryCount, 1);
    assert.equal(res.duplicate, false);
    assert.ok(res.idempotencyKey.length > 0, "the client sent an idempotency key of its own");

    const got = await verifiedWebhook(1);
    assert.deepEqual(JSON.parse(got.body), { n: 1, total: "9.99" }, "payload delivered as published");
    assert.equal(got.headers["content-type"], "application/json");

    const delivery = await eventually("the delivery to succeed", async () => {
      const page = await hw.deliveries.list(tenant, { eventId: res.id });
      assert.equal(page.items.length, 1);
      return page.items[0]!.status === DeliveryStatus.SUCCEEDED ? page.items[0] : undefined;
    });
    assert.equal(delivery.subscriptionId, sub.id);
    assert.equal(got.headers["webhook-id"], delivery.id, "webhook-id is the delivery id");

    const bySubscription = await hw.deliveries.list(tenant, { subscriptionId: sub.id, status: DeliveryStatus.SUCCEEDED });
    assert.ok(bySubscription.items.some((d) => d.id === delivery.id));
    const one = await hw.deliveries.get(tenant, delivery.id);
    assert.equal(one.eventId, res.id);
    const attempts = await hw.deliveries.listAttempts(tenant, delivery.id);
    assert.equal(attempts.length, 1);
    assert.equal(attempts[0]!.statusCode, 204);

    const ev = await hw.events.get(tenant, res.id);
    assert.equal(ev.event?.idempotencyKey, res.idempotencyKey);
    assert.equal(ev.event?.metadata["region"], "eu");
  });

  it("runs the example", async () => {
    const example = fileURLToPath(new URL("../examples/publish.js", import.meta.url));
    const env = { ...process.env, HOOKWIRE_ADDR: dev.grpcUrl, HOOKWIRE_API_KEY: dev.adminKey, HOOKWIRE_TENANT: tenant };
    const { stdout } = await promisify(execFile)(process.execPath, [example], { env });
    const id = /^published (evt_\S+) to 1 subscription\(s\)$/m.exec(stdout)?.[1];
    assert.ok(id, `example printed: ${stdout}`);
    assert.equal((await hw.events.get(tenant, id)).event?.type, "order.created");

    const refused = await promisify(execFile)(process.execPath, [example], { env: { ...env, HOOKWIRE_TENANT: "no-such-tenant" } }).then(
      () => assert.fail("the example succeeded with a bad tenant"),
      (err: { code?: number; stderr?: string }) => err,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr ?? "", /^publish failed: NotFound: tenant "no-such-tenant" not found$/m);
  });

  it("publishes a batch in order, each event delivered", async () => {
    const results = await hw.publishBatch(tenant, [
      { type: "order.created", payload: { n: 10 } },
      { type: "order.paid", payload: { n: 11 }, idempotencyKey: "batch-key-11" },
      { type: "invoice.sent", payload: { n: 12 } }, // no subscription takes it
    ]);
    assert.equal(results.length, 3);
    assert.equal(new Set(results.map((r) => r.id)).size, 3);
    assert.deepEqual(
      results.map((r) => r.deliveryCount),
      [1, 1, 0],
    );
    assert.equal(results[1]!.idempotencyKey, "batch-key-11");
    await verifiedWebhook(10);
    await verifiedWebhook(11);

    const again = await hw.publishBatch(tenant, [{ type: "order.paid", payload: { n: 11 }, idempotencyKey: "batch-key-11" }]);
    assert.equal(again[0]!.id, results[1]!.id);
    assert.equal(again[0]!.duplicate, true);
  });

  it("retries a publish whose answer was lost, with the same key: one event, same id", async () => {
    const proxy = await startLossyProxy(dev.grpcUrl);
    try {
      const viaProxy = newClient({ baseUrl: proxy.url, initialBackoffMs: 10 });
      const publishPath = "/hookwire.v1.EventService/PublishEvent";
      proxy.dropNext(publishPath);
      const res = await viaProxy.publish(tenant, { type: "order.created", payload: { n: 20 } });

      const publishes = proxy.calls.filter((c) => c.path === publishPath);
      assert.equal(publishes.length, 2, "the client retried once after the lost answer");
      assert.equal(publishes[0]!.dropped, true);
      const lost = fromBinary(PublishEventResponseSchema, publishes[0]!.answer!);
      assert.equal(lost.duplicate, false, "the first call made the event");
      assert.equal(res.id, lost.id, "the retry answered with the event the lost answer named");
      assert.equal(res.duplicate, true);

      const page = await hw.deliveries.list(tenant, { eventId: res.id });
      assert.equal(page.items.length, 1, "one event, one delivery: nothing duplicated");
      await verifiedWebhook(20);

      const explicit = await hw.publish(tenant, { type: "order.created", payload: { n: 20 }, idempotencyKey: res.idempotencyKey });
      assert.equal(explicit.id, res.id);
      assert.equal(explicit.duplicate, true);
    } finally {
      await proxy.close();
    }
  });

  it("does not resend an unsafe call whose answer was lost", async () => {
    const proxy = await startLossyProxy(dev.grpcUrl);
    try {
      const viaProxy = newClient({ baseUrl: proxy.url, initialBackoffMs: 10 });
      const createPath = "/hookwire.v1.SubscriptionService/CreateSubscription";
      proxy.dropNext(createPath);
      await assert.rejects(
        viaProxy.subscriptions.create(tenant, { eventTypes: ["never.*"], target: { transport: "http", config: { url: receiver.url } } }),
        (err: unknown) => err instanceof HookwireError && err.code === Code.Unavailable && err.attempts === 1,
      );
      assert.equal(proxy.calls.filter((c) => c.path === createPath).length, 1, "sent once: a resend could create a second subscription");
    } finally {
      await proxy.close();
    }
  });

  it("moves to the next server when one refuses connections", async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const multi = newClient({ baseUrl: `${dead},${dev.grpcUrl}`, initialBackoffMs: 10 });
    assert.deepEqual(multi.addresses, [dead, dev.grpcUrl]);
    const res = await multi.publish(tenant, { type: "order.created", payload: { n: 30 } });
    assert.match(res.id, /^evt_/);
    await verifiedWebhook(30);
    // Unsafe calls move on too: a refused connection reached no server.
    const unsafe = newClient({ baseUrl: [dead, dev.grpcUrl] });
    const tenantB = await unsafe.tenants.create("sdk-test-b");
    assert.equal(tenantB.id, "sdk-test-b");
    await unsafe.tenants.delete("sdk-test-b");
  });

  it("moves to the next server when one answers Unavailable, and stays there", async () => {
    const proxy = await startLossyProxy(dev.grpcUrl);
    try {
      const listPath = "/hookwire.v1.DeliveryService/ListDeliveries";
      const c = newClient({ baseUrl: [proxy.url, dev.grpcUrl], initialBackoffMs: 60_000, maxBackoffMs: 60_000 });
      proxy.dropNext(listPath); // as a follower that lost its leader answers
      const start = Date.now();
      const page = await c.deliveries.list(tenant, { subscriptionId: sub.id });
      assert.ok(page.items.length > 0);
      assert.ok(Date.now() - start < 30_000, "moved on at once, without backing off");
      assert.equal(proxy.calls.length, 1, "the first server was asked once");
      await c.deliveries.list(tenant, { subscriptionId: sub.id });
      assert.equal(proxy.calls.length, 1, "the next call went to the server that answered");
    } finally {
      await proxy.close();
    }
  });

  it("gives up after the configured retries", async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const c = newClient({ baseUrl: dead, retries: 2, initialBackoffMs: 5 });
    await assert.rejects(c.deliveries.list(tenant), (err: unknown) => {
      assert.ok(err instanceof HookwireError);
      assert.equal(err.code, Code.Unavailable);
      assert.equal(err.codeName, "Unavailable");
      assert.equal(err.attempts, 3);
      return true;
    });
    // A caller's signal also ends the wait between attempts.
    const slow = newClient({ baseUrl: dead, retries: 5, initialBackoffMs: 60_000, maxBackoffMs: 60_000 });
    const start = Date.now();
    await assert.rejects(
      slow.deliveries.list(tenant, {}, { signal: AbortSignal.timeout(200) }),
      (err: unknown) => err instanceof HookwireError && err.code === Code.Canceled,
    );
    assert.ok(Date.now() - start < 20_000, "cancelled during the backoff, not after it");
  });

  it("maps server errors to HookwireError with the server's code and message", async () => {
    await assert.rejects(hw.publish(tenant, { type: "order created!", payload: { n: 40 } }), (err: unknown) => {
      assert.ok(err instanceof HookwireError);
      assert.equal(err.code, Code.InvalidArgument);
      assert.equal(err.codeName, "InvalidArgument");
      assert.match(err.message, /event\.type/, `message names the field: ${err.message}`);
      assert.equal(err.attempts, 1, "InvalidArgument is not retried");
      return true;
    });
    await assert.rejects(
      hw.publish(tenant, { type: "order.created", metadata: { "bad key!": "x" } }),
      (err: unknown) => {
        assert.ok(err instanceof HookwireError);
        assert.equal(err.code, Code.InvalidArgument);
        assert.match(err.message, /metadata/);
        assert.ok(err.fieldViolations.some((v) => v.field.includes("metadata")), JSON.stringify(err.fieldViolations));
        return true;
      },
    );
    await assert.rejects(hw.subscriptions.get(tenant, "sub_doesnotexist"), (err: unknown) => {
      assert.ok(err instanceof HookwireError);
      assert.equal(err.code, Code.NotFound);
      assert.ok(err.message.length > 0);
      return true;
    });
    const wrongKey = newClient({ apiKey: "hw_wrong_key" });
    await assert.rejects(wrongKey.deliveries.list(tenant), (err: unknown) => err instanceof HookwireError && err.code === Code.Unauthenticated);
    assert.throws(() => newClient({ baseUrl: "ftp://x" }), /scheme ftp: is not http/);
  });

  it("manages subscriptions: get, list, update, pause, resume, delete", async () => {
    const created = await hw.subscriptions.create(tenant, {
      eventTypes: ["user.*"],
      target: { transport: "http", config: { url: receiver.url } },
    });
    assert.equal((await hw.subscriptions.get(tenant, created.id)).id, created.id);
    assert.equal((await hw.subscriptions.get(tenant, created.id)).signingSecret, "", "the secret is shown once only");
    const page = await hw.subscriptions.list(tenant, { pageSize: 1000 });
    assert.ok(page.items.some((s) => s.id === created.id) && page.items.some((s) => s.id === sub.id));

    const updated = await hw.subscriptions.update(tenant, { id: created.id, description: "renamed", eventTypes: ["user.created"] }, [
      "description",
      "event_types",
    ]);
    assert.equal(updated.description, "renamed");
    assert.deepEqual(updated.eventTypes, ["user.created"]);

    assert.equal((await hw.subscriptions.pause(tenant, created.id)).status, SubscriptionStatus.PAUSED);
    assert.equal((await hw.subscriptions.resume(tenant, created.id)).status, SubscriptionStatus.ENABLED);
    await hw.subscriptions.delete(tenant, created.id);
    await assert.rejects(hw.subscriptions.get(tenant, created.id), (err: unknown) => err instanceof HookwireError && err.code === Code.NotFound);
  });

  it("retries a delivery on request", async () => {
    const res = await hw.publish(tenant, { type: "order.created", payload: { n: 50 } });
    const delivery = await eventually("the delivery to succeed", async () => {
      const d = (await hw.deliveries.list(tenant, { eventId: res.id })).items[0];
      return d?.status === DeliveryStatus.SUCCEEDED ? d : undefined;
    });
    await hw.deliveries.retry(tenant, delivery.id, { force: true });
    const attempts = await eventually("a second attempt", async () => {
      const a = await hw.deliveries.listAttempts(tenant, delivery.id);
      return a.length === 2 ? a : undefined;
    });
    assert.equal(attempts[1]!.statusCode, 204);
    const deliveredTwice = await eventually("the webhook twice", () => {
      const got = receiver.received.filter((w) => w.headers["webhook-id"] === delivery.id);
      return got.length === 2 ? got : undefined;
    });
    for (const w of deliveredTwice) {
      webhook.verify(w.body, w.headers);
    }
  });
});

describe("HookwireClient against a rate-limited server", () => {
  let dev: DevServer;
  const clients: HookwireClient[] = [];
  const newClient = (opts: Partial<ConstructorParameters<typeof HookwireClient>[0]> = {}) => {
    const c = new HookwireClient({ baseUrl: dev.grpcUrl, apiKey: dev.adminKey, ...opts });
    clients.push(c);
    return c;
  };

  before(async () => {
    dev = await startDev(await hookwireBinary(), workDir!, ["--api-rate-limit", "1", "--api-rate-burst", "1"]);
  });
  after(async () => {
    for (const c of clients) {
      c.close();
    }
    await dev?.stop();
  });

  it("waits the server's retry-after on ResourceExhausted, then succeeds", async () => {
    const noRetries = newClient({ retries: 0 });
    // The bucket holds one call and refills one a second: of a few calls
    // in quick succession, all but the first are refused (or, on a slow
    // machine, all but one per second).
    let refused: unknown;
    for (let i = 0; i < 5 && refused === undefined; i++) {
      refused = await noRetries.tenants.list().then(
        () => undefined,
        (err: unknown) => err,
      );
    }
    assert.ok(refused instanceof HookwireError);
    assert.equal(refused.code, Code.ResourceExhausted);
    assert.equal(refused.metadata.get("retry-after"), "1");
    assert.match(refused.message, /over its rate limit/);

    const patient = newClient({ initialBackoffMs: 1 });
    const start = Date.now();
    await patient.tenants.list(); // refused (bucket empty), waits ~1s, accepted
    const page = await patient.tenants.list();
    assert.ok(Array.isArray(page.items));
    assert.ok(Date.now() - start >= 900, `took ${Date.now() - start}ms: the client waited the retry-after`);
  });
});

describe("HookwireClient against a three-server cluster", () => {
  const adminKey = "hw_sdk_test_admin_key_0123456789";
  let nodes: ClusterNode[] = [];
  let hw: HookwireClient | undefined;

  before(async () => {
    nodes = await startCluster(await hookwireBinary(), workDir!, adminKey, 3);
  });
  after(async () => {
    hw?.close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("keeps publishing when the server it uses crashes", async () => {
    // Patient enough for an election (about a second or two).
    hw = new HookwireClient({
      baseUrl: nodes.map((n) => n.grpcUrl).join(","),
      apiKey: adminKey,
      retries: 12,
      initialBackoffMs: 50,
      maxBackoffMs: 1000,
    });
    await eventually("the cluster to elect a leader", () => hw!.tenants.list(), 60_000);
    await hw.tenants.create("cluster");

    // Put the leader first: the client uses it, and its crash leaves the
    // others without a leader (Unavailable) until they elect one.
    const status = createClient(
      ClusterService,
      createGrpcTransport({
        baseUrl: nodes[0]!.grpcUrl,
        interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${adminKey}`), next(req))],
      }),
    );
    const leaderId = (await status.getClusterStatus({})).leaderId;
    const leader = nodes[Number(leaderId.slice(1)) - 1]!;
    const ordered = [leader, ...nodes.filter((n) => n !== leader)];
    hw.close();
    hw = new HookwireClient({
      baseUrl: ordered.map((n) => n.grpcUrl),
      apiKey: adminKey,
      retries: 12,
      initialBackoffMs: 50,
      maxBackoffMs: 1000,
    });
    const first = await hw.publish("cluster", { type: "order.created", payload: { n: 1 }, idempotencyKey: "cluster-1" });

    await leader.kill();
    const second = await hw.publish("cluster", { type: "order.created", payload: { n: 2 } });
    assert.match(second.id, /^evt_/);
    assert.notEqual(second.id, first.id);

    const again = await hw.publish("cluster", { type: "order.created", payload: { n: 1 }, idempotencyKey: "cluster-1" });
    assert.equal(again.id, first.id, "the surviving servers know the first event's key");
    assert.equal(again.duplicate, true);
    assert.equal((await hw.events.get("cluster", second.id)).event?.id, second.id);
  });
});
