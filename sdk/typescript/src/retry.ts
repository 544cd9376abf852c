import { Code } from "@connectrpc/connect";
import { HookwireError } from "./errors.js";

/** How a HookwireClient retries a call that failed on the way. */
export interface RetryPolicy {
  /** Retries after the first attempt (0: none). */
  retries: number;
  /** Upper bound of the first backoff; it doubles on each retry. */
  initialBackoffMs: number;
  /** Upper bound of any one backoff, a server's retry-after included. */
  maxBackoffMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  retries: 3,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
};

/**
 * Whether a call is safe to send twice. An idempotent call (a read, a
 * publish carrying an idempotency key, pause/resume/update) is retried on
 * Unavailable, DeadlineExceeded and ResourceExhausted. Any other (a create
 * without a key, a delete, a delivery retry) only when the server cannot
 * have acted: it refused the call over the rate limit (ResourceExhausted)
 * or the connection was never made.
 */
export type Idempotency = "idempotent" | "unsafe";

/** Whether err, from one attempt, may be retried for a call of this kind. */
export function retryable(err: HookwireError, idempotency: Idempotency): boolean {
  switch (err.code) {
    case Code.ResourceExhausted:
      return true;
    case Code.Unavailable:
      return idempotency === "idempotent" || neverSent(err);
    case Code.DeadlineExceeded:
      return idempotency === "idempotent";
    default:
      return false;
  }
}

/**
 * lostConnection is err as gRPC reports it: a call that ends Canceled
 * although its caller's signal did not abort it lost its HTTP/2
 * connection (Node ends the streams of a session whose socket closed, as
 * when the server process dies, with RST_STREAM CANCEL), which grpc-go
 * and the other gRPC clients report as Unavailable. So an idempotent call
 * goes on to the next server instead of failing.
 */
export function lostConnection(err: HookwireError, signal: AbortSignal | undefined): HookwireError {
  if (err.code !== Code.Canceled || signal?.aborted) {
    return err;
  }
  return new HookwireError(Code.Unavailable, `the connection to the server was lost: ${err.message}`, {
    metadata: err.metadata,
    attempts: err.attempts,
    cause: err,
  });
}

/**
 * neverSent: the attempt failed to connect (refused, unreachable, name not
 * found), so no server saw the request and it may go to the next address.
 */
export function neverSent(err: HookwireError): boolean {
  let c: unknown = err.cause;
  for (let depth = 0; depth < 8 && typeof c === "object" && c !== null; depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && connectFailures.has(code)) {
      return true;
    }
    c = (c as { cause?: unknown }).cause;
  }
  return false;
}

const connectFailures = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * backoffMs is the wait before retry number n (0 for the first retry):
 * a random time in the upper half of min(max, initial * 2^n) ("equal
 * jitter", so many clients spread out but none retries at once), or the
 * server's retry-after when that is longer; never over maxBackoffMs.
 */
export function backoffMs(n: number, policy: RetryPolicy, retryAfterMs = 0, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** n);
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  return Math.min(policy.maxBackoffMs, Math.max(jittered, retryAfterMs));
}

/** The retry-after metadata of a refused call (whole seconds), in ms. */
export function retryAfterMs(err: HookwireError): number {
  const v = err.metadata.get("retry-after");
  if (v === null) {
    return 0;
  }
  const seconds = Number(v.trim());
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

/** Resolves after ms, or rejects with Canceled when signal aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new HookwireError(Code.Canceled, "call cancelled while waiting to retry", { cause: signal.reason }));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new HookwireError(Code.Canceled, "call cancelled while waiting to retry", { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
