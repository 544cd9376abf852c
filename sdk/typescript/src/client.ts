import { randomUUID } from "node:crypto";
import { Code, createClient, type CallOptions as ConnectCallOptions, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { HookwireError } from "./errors.js";
import {
  backoffMs,
  defaultRetryPolicy,
  lostConnection,
  retryable,
  retryAfterMs,
  sleep,
  type Idempotency,
  type RetryPolicy,
} from "./retry.js";
import { EventService, type EventSchema, type GetEventResponse, type PublishEventResponse } from "./gen/hookwire/v1/event_pb.js";
import {
  SubscriptionService,
  type Subscription,
  type SubscriptionSchema,
} from "./gen/hookwire/v1/subscription_pb.js";
import { DeliveryService, type Attempt, type Delivery, type DeliveryStatus } from "./gen/hookwire/v1/delivery_pb.js";
import { TenantService, type Tenant } from "./gen/hookwire/v1/tenant_pb.js";

/** Options of a HookwireClient. */
export interface HookwireClientOptions {
  /**
   * The control plane's gRPC address: "http://127.0.0.1:7070", "host:port"
   * (plain HTTP/2; port 7070 when none is given), "https://host:port" (TLS),
   * or several servers of one cluster as an array or comma-separated, as
   * the CLI's --addr a,b,c. The client uses one until it answers
   * Unavailable, then moves on to the next.
   */
  baseUrl: string | string[];
  /** API key, sent as "authorization: Bearer <key>" with every call. */
  apiKey?: string;
  /** Retries after a failed first attempt (default 3; 0: none). */
  retries?: number;
  /** Deadline of each attempt in milliseconds (default 10000; 0: none). */
  timeoutMs?: number;
  /** First backoff's upper bound (default 100 ms); it doubles per retry. */
  initialBackoffMs?: number;
  /** Longest backoff, a server's retry-after included (default 5000 ms). */
  maxBackoffMs?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call, its retries and the waits between them. */
  signal?: AbortSignal;
  /** Overrides the client's per-attempt deadline. */
  timeoutMs?: number;
}

/** An event to publish. */
export interface PublishInput {
  /** Dot-separated event type, e.g. "order.created". */
  type: string;
  /**
   * The payload. A Uint8Array is sent byte for byte (content type default
   * application/octet-stream); any other value is sent as its JSON
   * (application/json), so a string becomes a JSON string.
   */
  payload?: unknown;
  /** MIME type of the payload; see payload for the default. */
  contentType?: string;
  /** Up to 50 pairs, visible to subscription filters as metadata["key"]. */
  metadata?: Record<string, string>;
  /**
   * Publishing the same key again in this tenant returns the first event
   * (duplicate: true) instead of making a new one. When omitted the client
   * makes one (a random UUID), so its own retries never duplicate an event.
   */
  idempotencyKey?: string;
  /** For ordered subscriptions: same key, strictly in publish order. */
  orderingKey?: string;
}

/** The server's acknowledgement of a durable event. */
export interface PublishResult {
  /** The event id ("evt_..."); the first event's when duplicate. */
  id: string;
  /** How many deliveries the event fanned out to. */
  deliveryCount: number;
  /** The idempotency key matched an earlier event, which is returned. */
  duplicate: boolean;
  /** The key sent: the caller's, or the one the client generated. */
  idempotencyKey: string;
  /** Subscriptions whose filter failed on this event (they did not get it). */
  filterErrors: { subscriptionId: string; error: string }[];
}

/** A subscription to create or update (the generated message's fields). */
export type SubscriptionInput = MessageInitShape<typeof SubscriptionSchema>;

/** A page of a list and the token of the next ("" on the last page). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

/** Paging of list calls. */
export interface PageOptions {
  /** At most this many items (server default 100, at most 1000). */
  pageSize?: number;
  /** nextPageToken of the previous page. */
  pageToken?: string;
}

/** Filters of deliveries.list; they combine with AND. */
export interface DeliveryFilter extends PageOptions {
  eventId?: string;
  subscriptionId?: string;
  status?: DeliveryStatus;
  eventType?: string;
}

interface Endpoint {
  url: string;
  sessions: Http2SessionManager;
  clients: Map<DescService, Client<DescService>>;
  transport: ReturnType<typeof createGrpcTransport>;
}

/**
 * HookwireClient calls Hookwire's gRPC API: publish events, manage
 * subscriptions and tenants, inspect and retry deliveries. Every method
 * throws HookwireError. Calls that failed on the way (Unavailable,
 * DeadlineExceeded, ResourceExhausted) are retried with jittered
 * exponential backoff when that cannot repeat their effect; publishes
 * always carry an idempotency key, so they always can.
 */
export class HookwireClient {
  readonly subscriptions: Subscriptions;
  readonly deliveries: Deliveries;
  readonly tenants: Tenants;
  readonly events: Events;

  private readonly endpoints: Endpoint[];
  private current = 0;
  private readonly policy: RetryPolicy;
  private readonly timeoutMs: number;

  constructor(options: HookwireClientOptions) {
    const urls = parseAddresses(options.baseUrl);
    const retries = options.retries ?? defaultRetryPolicy.retries;
    if (!Number.isInteger(retries) || retries < 0) {
      throw new TypeError(`retries must be a whole number >= 0, not ${retries}`);
    }
    this.policy = {
      retries,
      initialBackoffMs: options.initialBackoffMs ?? defaultRetryPolicy.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? defaultRetryPolicy.maxBackoffMs,
    };
    this.timeoutMs = options.timeoutMs ?? 10_000;
    const interceptors: Interceptor[] = [];
    if (options.apiKey) {
      const authorization = `Bearer ${options.apiKey}`;
      interceptors.push((next) => (req) => {
        req.header.set("authorization", authorization);
        return next(req);
      });
    }
    this.endpoints = urls.map((url) => {
      const sessions = new Http2SessionManager(url);
      return {
        url,
        sessions,
        clients: new Map(),
        transport: createGrpcTransport({ baseUrl: url, sessionManager: sessions, interceptors }),
      };
    });
    this.subscriptions = new Subscriptions(this);
    this.deliveries = new Deliveries(this);
    this.tenants = new Tenants(this);
    this.events = new Events(this);
  }

  /** The server addresses this client uses, in order. */
  get addresses(): readonly string[] {
    return this.endpoints.map((e) => e.url);
  }

  /**
   * Publishes one event and resolves once it and its deliveries are
   * durable. A retried publish carries the same idempotency key, so the
   * server answers with the first event rather than a second one.
   */
  async publish(tenant: string, event: PublishInput, options?: CallOptions): Promise<PublishResult> {
    const msg = toEvent(event);
    const res = await this.call(EventService, "idempotent", options, (c, o) => c.publishEvent({ tenant, event: msg }, o));
    return toResult(res, msg.idempotencyKey);
  }

  /**
   * Publishes many events (1 to 1000) in one call and one durable write:
   * all or none (an invalid event refuses the whole batch). Results are in
   * the order of events; each event has its own idempotency key.
   */
  async publishBatch(tenant: string, events: PublishInput[], options?: CallOptions): Promise<PublishResult[]> {
    const msgs = events.map(toEvent);
    const res = await this.call(EventService, "idempotent", options, (c, o) => c.publishEvents({ tenant, events: msgs }, o));
    return res.results.map((r, i) => toResult(r, msgs[i]?.idempotencyKey ?? ""));
  }

  /** Closes the HTTP/2 connections; calls made afterwards reconnect. */
  close(): void {
    for (const e of this.endpoints) {
      e.sessions.abort();
    }
  }

  /**
   * call runs one RPC with the client's retry policy. A round tries the
   * current server and, while servers answer Unavailable, the next ones
   * (each at most once); between rounds it backs off. The server that
   * answered stays current for the next call.
   * @internal
   */
  async call<S extends DescService, R>(
    service: S,
    idempotency: Idempotency,
    options: CallOptions | undefined,
    fn: (client: Client<S>, options: ConnectCallOptions) => Promise<R>,
  ): Promise<R> {
    const callOptions: ConnectCallOptions = {
      timeoutMs: options?.timeoutMs ?? this.timeoutMs,
      signal: options?.signal,
    };
    let attempts = 0;
    for (let retry = 0; ; retry++) {
      let err: HookwireError | undefined;
      for (let hop = 0; hop < this.endpoints.length; hop++) {
        const i = this.current;
        attempts++;
        try {
          return await fn(this.client(i, service), callOptions);
        } catch (e) {
          err = lostConnection(HookwireError.from(e, attempts), callOptions.signal);
        }
        if (err.code !== Code.Unavailable || !retryable(err, idempotency)) {
          break;
        }
        this.current = (i + 1) % this.endpoints.length;
      }
      if (err === undefined) {
        throw new HookwireError(Code.Internal, "no server address");
      }
      if (retry >= this.policy.retries || !retryable(err, idempotency)) {
        throw err;
      }
      await sleep(backoffMs(retry, this.policy, retryAfterMs(err)), options?.signal);
    }
  }

  private client<S extends DescService>(i: number, service: S): Client<S> {
    const e = this.endpoints[i];
    if (e === undefined) {
      throw new HookwireError(Code.Internal, `no server address ${i}`);
    }
    let c = e.clients.get(service);
    if (c === undefined) {
      c = createClient(service, e.transport) as unknown as Client<DescService>;
      e.clients.set(service, c);
    }
    return c as unknown as Client<S>;
  }
}

/** Subscriptions: where a tenant's events go. */
export class Subscriptions {
  constructor(private readonly hw: HookwireClient) {}

  /**
   * Creates a subscription. The answer carries signing_secret (or the
   * ed25519 public key) once only: keep it to verify webhooks. Not retried
   * once a server may have received it (a retry could create two).
   */
  create(tenant: string, subscription: SubscriptionInput, options?: CallOptions): Promise<Subscription> {
    return this.hw.call(SubscriptionService, "unsafe", options, (c, o) => c.createSubscription({ tenant, subscription }, o));
  }

  get(tenant: string, id: string, options?: CallOptions): Promise<Subscription> {
    return this.hw.call(SubscriptionService, "idempotent", options, (c, o) => c.getSubscription({ tenant, id }, o));
  }

  async list(tenant: string, page: PageOptions = {}, options?: CallOptions): Promise<Page<Subscription>> {
    const res = await this.hw.call(SubscriptionService, "idempotent", options, (c, o) =>
      c.listSubscriptions({ tenant, pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? "" }, o),
    );
    return { items: res.subscriptions, nextPageToken: res.nextPageToken };
  }

  /**
   * Changes the fields named in updateMask (proto field names, e.g.
   * ["description", "event_types"]) to their values in subscription,
   * whose id says which subscription.
   */
  update(
    tenant: string,
    subscription: SubscriptionInput & { id: string },
    updateMask: string[],
    options?: CallOptions,
  ): Promise<Subscription> {
    return this.hw.call(SubscriptionService, "idempotent", options, (c, o) =>
      c.updateSubscription({ tenant, subscription, updateMask: { paths: updateMask } }, o),
    );
  }

  async delete(tenant: string, id: string, options?: CallOptions): Promise<void> {
    await this.hw.call(SubscriptionService, "unsafe", options, (c, o) => c.deleteSubscription({ tenant, id }, o));
  }

  /** Stops deliveries (they wait) until resume. */
  pause(tenant: string, id: string, options?: CallOptions): Promise<Subscription> {
    return this.hw.call(SubscriptionService, "idempotent", options, (c, o) => c.pauseSubscription({ tenant, id }, o));
  }

  resume(tenant: string, id: string, options?: CallOptions): Promise<Subscription> {
    return this.hw.call(SubscriptionService, "idempotent", options, (c, o) => c.resumeSubscription({ tenant, id }, o));
  }
}

/** Deliveries: one event on its way to one subscription. */
export class Deliveries {
  constructor(private readonly hw: HookwireClient) {}

  async list(tenant: string, filter: DeliveryFilter = {}, options?: CallOptions): Promise<Page<Delivery>> {
    const res = await this.hw.call(DeliveryService, "idempotent", options, (c, o) =>
      c.listDeliveries(
        {
          tenant,
          eventId: filter.eventId ?? "",
          subscriptionId: filter.subscriptionId ?? "",
          status: filter.status ?? 0,
          eventType: filter.eventType ?? "",
          pageSize: filter.pageSize ?? 0,
          pageToken: filter.pageToken ?? "",
        },
        o,
      ),
    );
    return { items: res.deliveries, nextPageToken: res.nextPageToken };
  }

  get(tenant: string, id: string, options?: CallOptions): Promise<Delivery> {
    return this.hw.call(DeliveryService, "idempotent", options, (c, o) => c.getDelivery({ tenant, id }, o));
  }

  /** Every attempt of a delivery, first to last. */
  async listAttempts(tenant: string, deliveryId: string, options?: CallOptions): Promise<Attempt[]> {
    const res = await this.hw.call(DeliveryService, "idempotent", options, (c, o) => c.listAttempts({ tenant, deliveryId }, o));
    return res.attempts;
  }

  /**
   * Attempts a dead or cancelled delivery again (force: also one that is
   * pending or succeeded). Not retried once a server may have received it.
   */
  retry(tenant: string, id: string, opts: { force?: boolean } = {}, options?: CallOptions): Promise<Delivery> {
    return this.hw.call(DeliveryService, "unsafe", options, (c, o) => c.retryDelivery({ tenant, id, force: opts.force ?? false }, o));
  }
}

/** Tenants (an admin key is needed to create, list or delete them). */
export class Tenants {
  constructor(private readonly hw: HookwireClient) {}

  create(id: string, displayName = "", options?: CallOptions): Promise<Tenant> {
    return this.hw.call(TenantService, "unsafe", options, (c, o) => c.createTenant({ id, displayName }, o));
  }

  get(id: string, options?: CallOptions): Promise<Tenant> {
    return this.hw.call(TenantService, "idempotent", options, (c, o) => c.getTenant({ id }, o));
  }

  async list(page: PageOptions = {}, options?: CallOptions): Promise<Page<Tenant>> {
    const res = await this.hw.call(TenantService, "idempotent", options, (c, o) =>
      c.listTenants({ pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? "" }, o),
    );
    return { items: res.tenants, nextPageToken: res.nextPageToken };
  }

  async delete(id: string, options?: CallOptions): Promise<void> {
    await this.hw.call(TenantService, "unsafe", options, (c, o) => c.deleteTenant({ id }, o));
  }
}

/** Events as published. */
export class Events {
  constructor(private readonly hw: HookwireClient) {}

  /** The event with its payload, its deliveries and why others got none. */
  get(tenant: string, id: string, options?: CallOptions): Promise<GetEventResponse> {
    return this.hw.call(EventService, "idempotent", options, (c, o) => c.getEvent({ tenant, id }, o));
  }
}

type EventInit = MessageInitShape<typeof EventSchema> & { idempotencyKey: string };

function toEvent(input: PublishInput): EventInit {
  let payload: Uint8Array;
  let contentType = input.contentType ?? "";
  if (input.payload === undefined) {
    payload = new Uint8Array();
  } else if (input.payload instanceof Uint8Array) {
    payload = input.payload;
    contentType ||= "application/octet-stream";
  } else {
    const json = JSON.stringify(input.payload);
    if (json === undefined) {
      throw new HookwireError(Code.InvalidArgument, `payload of type ${typeof input.payload} has no JSON form; pass a JSON value or a Uint8Array`);
    }
    payload = new TextEncoder().encode(json);
    contentType ||= "application/json";
  }
  return {
    type: input.type,
    payload,
    contentType,
    metadata: input.metadata ?? {},
    idempotencyKey: input.idempotencyKey || randomUUID(),
    orderingKey: input.orderingKey ?? "",
  };
}

function toResult(res: PublishEventResponse, idempotencyKey: string): PublishResult {
  return {
    id: res.id,
    deliveryCount: res.deliveryCount,
    duplicate: res.duplicate,
    idempotencyKey,
    filterErrors: res.filterErrors.map((f) => ({ subscriptionId: f.subscriptionId, error: f.error })),
  };
}

/**
 * parseAddresses turns the baseUrl option into http(s) URLs: a list or a
 * comma-separated string; "grpc://" means plain http; an address without
 * a scheme is plain http and gets port 7070 when it has none (as the CLI).
 */
export function parseAddresses(baseUrl: string | string[]): string[] {
  const parts = (Array.isArray(baseUrl) ? baseUrl : [baseUrl]).flatMap((s) => s.split(","));
  const urls: string[] = [];
  for (const raw of parts) {
    const a = raw.trim();
    if (a === "") {
      continue;
    }
    let withScheme: string;
    if (a.startsWith("grpc://")) {
      withScheme = "http://" + a.slice("grpc://".length);
    } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) {
      withScheme = a;
    } else {
      withScheme = "http://" + a;
    }
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new TypeError(`server address ${JSON.stringify(a)}: want host:port or http(s)://host:port`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`server address ${JSON.stringify(a)}: scheme ${url.protocol} is not http, https or grpc`);
    }
    if (url.port === "" && withScheme !== a) {
      url.port = "7070";
    }
    urls.push(url.origin + url.pathname.replace(/\/+$/, ""));
  }
  if (urls.length === 0) {
    throw new TypeError(`no server address in ${JSON.stringify(baseUrl)}`);
  }
  return urls;
}
