/**
 * Hookwire's producer SDK: a typed client for the control plane's gRPC API.
 *
 *   const hw = new HookwireClient({ baseUrl: "http://127.0.0.1:7070", apiKey });
 *   const { id } = await hw.publish("acme", { type: "order.created", payload: { id: 42 } });
 */
export {
  HookwireClient,
  Subscriptions,
  Deliveries,
  Tenants,
  Events,
  parseAddresses,
  type HookwireClientOptions,
  type CallOptions,
  type PublishInput,
  type PublishResult,
  type SubscriptionInput,
  type Page,
  type PageOptions,
  type DeliveryFilter,
} from "./client.js";
export { HookwireError, codeName, type FieldViolation } from "./errors.js";
export { backoffMs, type RetryPolicy } from "./retry.js";
export { Code } from "@connectrpc/connect";
// The API's messages and enums, generated from proto/hookwire/v1.
export * from "./gen/hookwire/v1/event_pb.js";
export * from "./gen/hookwire/v1/subscription_pb.js";
export * from "./gen/hookwire/v1/delivery_pb.js";
export * from "./gen/hookwire/v1/tenant_pb.js";
