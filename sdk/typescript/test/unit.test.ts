// Unit tests of the client's pure parts: addresses and backoff.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backoffMs, Code, codeName, HookwireError, parseAddresses } from "@hookwire/sdk";

describe("parseAddresses", () => {
  it("accepts the forms the CLI's --addr accepts", () => {
    assert.deepEqual(parseAddresses("http://127.0.0.1:7070"), ["http://127.0.0.1:7070"]);
    assert.deepEqual(parseAddresses("a:1, b:2 ,,c"), ["http://a:1", "http://b:2", "http://c:7070"]);
    assert.deepEqual(parseAddresses(["grpc://a:1", "https://b:2/", "grpc://c"]), ["http://a:1", "https://b:2", "http://c:7070"]);
    assert.deepEqual(parseAddresses("[::1]:7070"), ["http://[::1]:7070"]);
  });
  it("refuses what it cannot dial", () => {
    assert.throws(() => parseAddresses(" , "), /no server address/);
    assert.throws(() => parseAddresses("ws://a:1"), /scheme ws: is not http, https or grpc/);
    assert.throws(() => parseAddresses("a b:1"), /want host:port/);
  });
});

describe("backoffMs", () => {
  const policy = { retries: 5, initialBackoffMs: 100, maxBackoffMs: 1000 };
  it("doubles its ceiling and stays in the upper half of it", () => {
    assert.equal(backoffMs(0, policy, 0, () => 0), 50);
    assert.equal(backoffMs(0, policy, 0, () => 1), 100);
    assert.equal(backoffMs(2, policy, 0, () => 0), 200);
    assert.equal(backoffMs(2, policy, 0, () => 1), 400);
  });
  it("never exceeds maxBackoffMs, a server's retry-after included", () => {
    assert.equal(backoffMs(10, policy, 0, () => 1), 1000);
    assert.equal(backoffMs(0, policy, 700, () => 0), 700);
    assert.equal(backoffMs(0, policy, 60_000, () => 0), 1000);
  });
});

describe("HookwireError", () => {
  it("names the code as gRPC does", () => {
    const err = new HookwireError(Code.InvalidArgument, "event.type: bad");
    assert.equal(codeName(Code.ResourceExhausted), "ResourceExhausted");
    assert.equal(err.codeName, "InvalidArgument");
    assert.equal(err.message, "event.type: bad");
    assert.equal(err.name, "HookwireError");
    assert.ok(err instanceof Error);
  });
});
