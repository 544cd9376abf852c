import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** One invalid field of a refused request, as the server named it. */
export interface FieldViolation {
  /** The field's path in the request, e.g. "events[0].metadata". */
  field: string;
  /** What is wrong with it. */
  description: string;
}

/**
 * HookwireError is every error a HookwireClient method throws for a failed
 * call: the gRPC status code and the message the server sent (or, for a
 * call that never reached a server, what went wrong on the way).
 */
export class HookwireError extends Error {
  override readonly name = "HookwireError";
  /** The gRPC status code, e.g. Code.InvalidArgument. */
  readonly code: Code;
  /** The code's name as gRPC spells it, e.g. "InvalidArgument". */
  readonly codeName: string;
  /** Response headers and trailers of the failed call (e.g. retry-after). */
  readonly metadata: Headers;
  /** For InvalidArgument: the fields the server named (BadRequest detail). */
  readonly fieldViolations: FieldViolation[];
  /** How many calls were made before giving up (1 when not retried). */
  readonly attempts: number;

  constructor(
    code: Code,
    message: string,
    options: { metadata?: Headers; fieldViolations?: FieldViolation[]; attempts?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.codeName = codeName(code);
    this.metadata = options.metadata ?? new Headers();
    this.fieldViolations = options.fieldViolations ?? [];
    this.attempts = options.attempts ?? 1;
  }

  /** Wraps any error thrown by a Connect call; keeps the server's message. */
  static from(err: unknown, attempts = 1): HookwireError {
    if (err instanceof HookwireError) {
      return err;
    }
    const ce = ConnectError.from(err);
    return new HookwireError(ce.code, ce.rawMessage, {
      metadata: ce.metadata,
      fieldViolations: fieldViolations(ce),
      attempts,
      cause: ce.cause ?? err,
    });
  }
}

/** "InvalidArgument" for Code.InvalidArgument (gRPC's spelling). */
export function codeName(code: Code): string {
  return Code[code] ?? `Code(${code})`;
}

const badRequestType = "google.rpc.BadRequest";

// fieldViolations decodes google.rpc.BadRequest details by hand (field 1:
// repeated FieldViolation{1: field, 2: description}) rather than shipping
// the googleapis error_details protos for two strings.
function fieldViolations(err: ConnectError): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const detail of err.details) {
    if (!("type" in detail) || detail.type !== badRequestType) {
      continue;
    }
    try {
      const reader = new BinaryReader(detail.value);
      while (reader.pos < reader.len) {
        const [field, wireType] = reader.tag();
        if (field !== 1 || wireType !== WireType.LengthDelimited) {
          reader.skip(wireType);
          continue;
        }
        const inner = new BinaryReader(reader.bytes());
        const violation: FieldViolation = { field: "", description: "" };
        while (inner.pos < inner.len) {
          const [f, wt] = inner.tag();
          if (f === 1 && wt === WireType.LengthDelimited) {
            violation.field = inner.string();
          } else if (f === 2 && wt === WireType.LengthDelimited) {
            violation.description = inner.string();
          } else {
            inner.skip(wt);
          }
        }
        out.push(violation);
      }
    } catch {
      // A malformed detail is dropped; the status message still says it all.
    }
  }
  return out;
}
