// The executor governor's store on the service table (admission/executor-governor.ts has the
// reasoning). Items:
//   EXECUTOR / CONTENTION      `contended_until` (epoch ms), `expires_at` (TTL, epoch s): the flag
//                              every API instance reads (eventually consistent) at most once per
//                              check interval; written only when an invoke was throttled (or a
//                              tenant met its cap) and the flag ends within half its lifetime.
//   TENANT#<id> / LEASE#<k>    one of a tenant's step slots while it is held: `held_until` (epoch
//                              ms, the step's deadline), `token` (the holder), `expires_at` (TTL
//                              an hour after `held_until`, for slots whose release was lost).
// Each slot item is held by one step at a time, so no item is hot; a slot exists only while held
// (release deletes it) or until its lost holder's time ends.
//
// Units (on-demand): a flag read is 0.5 RRU; a flag write 1 WRU. A governed step: 1 WRU to take a
// slot (its first pick is free) and 1 WRU to give it back; a pick that is taken costs 1 WRU more
// and one Query of the tenant's held slots (0.5 RRU per 4 KB, ~60 B a slot).
import { randomBytes } from "node:crypto";
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
} from "@aws-sdk/client-dynamodb";
import type { ExecutorGovernorStore, StepSlot } from "../admission/executor-governor.js";
import { readUnits, writeUnits } from "./item-size.js";
import { tenantPk } from "./layout.js";

const FLAG_KEY: Record<string, AttributeValue> = { pk: { S: "EXECUTOR" }, sk: { S: "CONTENTION" } };
const SLOT_PREFIX = "LEASE#";
const slotSk = (index: number) => `${SLOT_PREFIX}${String(index).padStart(6, "0")}`;
/** Lost slots are removed by TTL this long after their holder's time ended. */
const SLOT_TTL_AFTER_S = 3_600;
/** Puts tried after the first pick was taken, among the slots a Query found free. */
const RETRIES_AFTER_QUERY = 3;

export interface DynamoDbExecutorGovernorOpts {
  readonly client: DynamoDBClient;
  readonly tableName: string;
}

/** Requests and the units DynamoDB bills for them (`npm run bench`). */
export interface GovernorStoreStats {
  reads: number;
  writes: number;
  readUnits: number;
  writeUnits: number;
}

const isConditionFailure = (err: unknown) =>
  err instanceof ConditionalCheckFailedException ||
  (err as { name?: string }).name === "ConditionalCheckFailedException";

/** {@link ExecutorGovernorStore} on the service table; every condition is evaluated by DynamoDB. */
export class DynamoDbExecutorGovernorStore implements ExecutorGovernorStore {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  readonly stats: GovernorStoreStats = { reads: 0, writes: 0, readUnits: 0, writeUnits: 0 };

  constructor(opts: DynamoDbExecutorGovernorOpts) {
    this.client = opts.client;
    this.tableName = opts.tableName;
  }

  async readContendedUntil(): Promise<number> {
    this.countRead(readUnits(0, false));
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: FLAG_KEY,
        ProjectionExpression: "contended_until",
      }),
    );
    const until = Number(out.Item?.contended_until?.N ?? 0);
    return Number.isFinite(until) ? until : 0;
  }

  async markContended(untilMs: number, keepFromMs: number): Promise<boolean> {
    try {
      await this.put(
        {
          ...FLAG_KEY,
          contended_until: { N: String(Math.trunc(untilMs)) },
          expires_at: { N: String(Math.ceil(untilMs / 1000) + 60) },
        },
        "attribute_not_exists(pk) OR contended_until < :keep",
        { ":keep": { N: String(Math.trunc(keepFromMs)) } },
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async takeStepSlot(
    tenantId: string,
    cap: number,
    untilMs: number,
    nowMs: number,
  ): Promise<StepSlot | undefined> {
    // First a random slot: a tenant well under its cap gets it at once, with no read.
    const first = Math.floor(Math.random() * cap);
    const taken = await this.tryTake(tenantId, first, untilMs, nowMs);
    if (taken) return taken;
    const held = await this.heldSlots(tenantId, nowMs);
    held.add(first);
    const free: number[] = [];
    for (let k = 0; k < cap && free.length < 4 * RETRIES_AFTER_QUERY; k++) if (!held.has(k)) free.push(k);
    // Shuffled, so concurrent takers of one tenant seldom pick the same slot.
    for (let i = free.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [free[i], free[j]] = [free[j] as number, free[i] as number];
    }
    for (const k of free.slice(0, RETRIES_AFTER_QUERY)) {
      const slot = await this.tryTake(tenantId, k, untilMs, nowMs);
      if (slot) return slot;
    }
    return undefined;
  }

  async releaseStepSlot(slot: StepSlot): Promise<void> {
    this.countWrite();
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: tenantPk(slot.tenantId) }, sk: { S: slotSk(slot.index) } },
          ConditionExpression: "#token = :token",
          ExpressionAttributeNames: { "#token": "token" },
          ExpressionAttributeValues: { ":token": { S: slot.token } },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /** One conditional put of slot `index`: free, or its holder's time ended. */
  private async tryTake(
    tenantId: string,
    index: number,
    untilMs: number,
    nowMs: number,
  ): Promise<StepSlot | undefined> {
    const token = randomBytes(9).toString("base64url");
    try {
      await this.put(
        {
          pk: { S: tenantPk(tenantId) },
          sk: { S: slotSk(index) },
          held_until: { N: String(Math.trunc(untilMs)) },
          token: { S: token },
          expires_at: { N: String(Math.ceil(untilMs / 1000) + SLOT_TTL_AFTER_S) },
        },
        "attribute_not_exists(pk) OR held_until < :now",
        { ":now": { N: String(Math.trunc(nowMs)) } },
      );
      return { tenantId, index, token };
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /** The tenant's slots held now (an eventually consistent Query: a hint, the puts decide). */
  private async heldSlots(tenantId: string, nowMs: number): Promise<Set<number>> {
    const held = new Set<number>();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
          ProjectionExpression: "sk, held_until",
          ExpressionAttributeValues: { ":pk": { S: tenantPk(tenantId) }, ":prefix": { S: SLOT_PREFIX } },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      // Units are billed on the whole items read (~60 B each), not the projection.
      this.countRead(readUnits((out.Count ?? 0) * 64, false));
      for (const item of out.Items ?? []) {
        if (Number(item.held_until?.N ?? 0) < nowMs) continue;
        held.add(Number((item.sk?.S ?? "").slice(SLOT_PREFIX.length)));
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return held;
  }

  private async put(
    item: Record<string, AttributeValue>,
    condition: string,
    values: Record<string, AttributeValue>,
  ): Promise<void> {
    this.countWrite();
    await this.client.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: item,
        ConditionExpression: condition,
        ExpressionAttributeValues: values,
      }),
    );
  }

  private countRead(units: number): void {
    this.stats.reads += 1;
    this.stats.readUnits += units;
  }

  private countWrite(): void {
    this.stats.writes += 1;
    this.stats.writeUnits += writeUnits(0);
  }
}
