// DynamoDB's rules that the local front applies itself rather than trusting dynalite: item size as
// DynamoDB counts it (UTF-8 bytes, where dynalite counts UTF-16 code units), capacity units, the
// error shapes the AWS SDK decodes, and DynamoDB Streams records (NEW_AND_OLD_IMAGES).
import type { AttributeValue } from "@aws-sdk/client-dynamodb";

/** An item (or key) in AttributeValue form, as on the wire. */
export type AttributeMap = Record<string, Record<string, unknown>>;

/** DynamoDB's item size limit: 400 KB, names and values included. */
export const MAX_ITEM_BYTES = 400 * 1024;

/** An error answered to the client as DynamoDB would (status and JSON body with `__type`). */
export class OperationError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message ?? body.__type));
  }

  get type(): string {
    return String(this.body.__type ?? "");
  }
}

export function validationError(message: string): OperationError {
  return new OperationError(400, { __type: "com.amazon.coral.validate#ValidationException", message });
}

/** A PutItem/UpdateItem/DeleteItem on an item that an ongoing transaction holds. */
export function transactionConflict(): OperationError {
  return new OperationError(400, {
    __type: "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
    message: "Transaction is ongoing for the item",
  });
}

export function unrecognizedClient(): OperationError {
  return new OperationError(403, {
    __type: "com.amazon.coral.service#UnrecognizedClientException",
    message: "The security token included in the request is invalid.",
  });
}

export interface CancellationReason {
  Code: string;
  Message?: string;
  Item?: AttributeMap;
}

export function transactionCanceled(reasons: CancellationReason[]): OperationError {
  return new OperationError(400, {
    __type: "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
    message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(", ")}]`,
    CancellationReasons: reasons,
  });
}

export function isConditionalCheckFailed(err: unknown): boolean {
  return err instanceof OperationError && err.type.endsWith("ConditionalCheckFailedException");
}

/** Size of a number as DynamoDB stores it: about one byte per two significant digits, plus one. */
function numberSize(text: string): number {
  const digits = text
    .replace(/^[-+]/, "")
    .replace(/[eE].*$/, "")
    .replace(".", "")
    .replace(/^0+/, "");
  const significant = digits.replace(/0+$/, "");
  if (significant.length === 0) return 1;
  return 1 + Math.ceil(significant.length / 2) + (text.startsWith("-") ? 1 : 0);
}

/** Size of one AttributeValue by DynamoDB's rules (strings and names in UTF-8 bytes). */
export function valueSize(value: Record<string, unknown>): number {
  const [type, v] = Object.entries(value)[0] ?? ["NULL", true];
  switch (type) {
    case "S":
      return Buffer.byteLength(String(v));
    case "N":
      return numberSize(String(v));
    case "B":
      return Buffer.byteLength(String(v), "base64");
    case "SS":
      return (v as string[]).reduce((n, s) => n + Buffer.byteLength(s), 0);
    case "NS":
      return (v as string[]).reduce((n, s) => n + numberSize(s), 0);
    case "BS":
      return (v as string[]).reduce((n, s) => n + Buffer.byteLength(s, "base64"), 0);
    case "L":
      return 3 + (v as Record<string, unknown>[]).reduce((n, e) => n + 1 + valueSize(e), 0);
    case "M":
      return 3 + Object.keys(v as object).length + itemSize(v as AttributeMap);
    default:
      return 1; // NULL, BOOL
  }
}

/** Size of an item by DynamoDB's rules: the UTF-8 bytes of every name plus every value's size. */
export function itemSize(item: AttributeMap | undefined): number {
  if (!item) return 0;
  let n = 0;
  for (const [name, value] of Object.entries(item)) n += Buffer.byteLength(name) + valueSize(value);
  return n;
}

/** Write units of one write: the larger of the old and new item, per started KB (at least 1). */
export function writeUnits(oldItem: AttributeMap | undefined, newItem: AttributeMap | undefined): number {
  return Math.max(1, Math.ceil(Math.max(itemSize(oldItem), itemSize(newItem)) / 1024));
}

/** Read units of one item read: per started 4 KB (at least 1), half for eventually consistent. */
export function readUnits(item: AttributeMap | undefined, consistent: boolean): number {
  const units = Math.max(1, Math.ceil(itemSize(item) / 4096));
  return consistent ? units : units / 2;
}

/** A DynamoDB Streams record (view type NEW_AND_OLD_IMAGES), as a stream's Lambda receives it. */
export interface ChangeRecord {
  eventID: string;
  eventName: "INSERT" | "MODIFY" | "REMOVE";
  eventVersion: "1.1";
  eventSource: "aws:dynamodb";
  awsRegion: string;
  dynamodb: {
    ApproximateCreationDateTime: number;
    Keys: Record<string, AttributeValue>;
    NewImage?: Record<string, AttributeValue>;
    OldImage?: Record<string, AttributeValue>;
    SequenceNumber: string;
    SizeBytes: number;
    StreamViewType: "NEW_AND_OLD_IMAGES";
  };
  eventSourceARN: string;
  /** Present on removals made by Time to Live. */
  userIdentity?: { type: "Service"; principalId: "dynamodb.amazonaws.com" };
}

let sequence = 0n;

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * The stream record of one applied write, or none: DynamoDB Streams writes no record for a write
 * that changes nothing (an identical put, a delete of a missing item).
 */
export function changeRecord(
  tableName: string,
  keys: AttributeMap,
  oldImage: AttributeMap | undefined,
  newImage: AttributeMap | undefined,
  byTtl = false,
): ChangeRecord | undefined {
  if (!oldImage && !newImage) return undefined;
  if (oldImage && newImage && deepEqual(oldImage, newImage)) return undefined;
  sequence += 1n;
  const wire = (item: AttributeMap) => item as unknown as Record<string, AttributeValue>; // the same JSON shape
  const eventName = !oldImage ? "INSERT" : !newImage ? "REMOVE" : "MODIFY";
  return {
    eventID: sequence.toString(16).padStart(32, "0"),
    eventName,
    eventVersion: "1.1",
    eventSource: "aws:dynamodb",
    awsRegion: "local",
    dynamodb: {
      ApproximateCreationDateTime: Math.floor(Date.now() / 1000),
      Keys: wire(keys),
      ...(newImage ? { NewImage: wire(newImage) } : {}),
      ...(oldImage ? { OldImage: wire(oldImage) } : {}),
      SequenceNumber: sequence.toString().padStart(21, "0"),
      SizeBytes: itemSize(keys) + itemSize(newImage) + itemSize(oldImage),
      StreamViewType: "NEW_AND_OLD_IMAGES",
    },
    eventSourceARN: `arn:aws:dynamodb:local:000000000000:table/${tableName}/stream/local`,
    ...(byTtl ? { userIdentity: { type: "Service", principalId: "dynamodb.amazonaws.com" } } : {}),
  };
}
