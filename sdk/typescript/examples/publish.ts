// Publishes one event. With `hookwire dev` running:
//   HOOKWIRE_API_KEY=<admin key> HOOKWIRE_TENANT=acme npm run example
import { HookwireClient, HookwireError } from "@hookwire/sdk";

const hw = new HookwireClient({
  baseUrl: process.env["HOOKWIRE_ADDR"] ?? "http://127.0.0.1:7070", // or "a:7070,b:7070,c:7070"
  apiKey: process.env["HOOKWIRE_API_KEY"],
});
const tenant = process.env["HOOKWIRE_TENANT"] ?? "acme";

try {
  const res = await hw.publish(tenant, {
    type: "order.created",
    payload: { id: 42, total: "9.99" },
    idempotencyKey: process.env["HOOKWIRE_IDEMPOTENCY_KEY"], // optional: the client makes one
  });
  console.log(`published ${res.id} to ${res.deliveryCount} subscription(s)${res.duplicate ? " (a duplicate: the first event)" : ""}`);
} catch (err) {
  if (!(err instanceof HookwireError)) {
    throw err;
  }
  console.error(`publish failed: ${err.codeName}: ${err.message}`);
  process.exitCode = 1;
} finally {
  hw.close();
}
