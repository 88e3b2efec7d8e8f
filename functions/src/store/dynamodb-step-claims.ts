// The step claim on DynamoDB: one small item per episode (`CLAIM` in its partition, layout.ts) that
// a step takes with one conditional PutItem before the executor runs. It makes "one step at a time
// per episode" and "a retry never runs while its first attempt runs" hold on any number of API
// instances: in AWS each API instance serves one request at a time and Lambda sends a concurrent
// invocation to another execution environment, so neither the API's in-process map nor the
// executor's `busy` can see two steps of one episode overlap.
//
// Why its own item and no read: the condition is evaluated by DynamoDB, so the step's Query need
// not return the claim (it would take `Limit: 3` and read one more version item whenever no claim
// is there), and an item of its own is ~0.1-0.3 KB whatever the episode: 1 write unit, where an
// update of the head is billed on the head's size (up to 256 import names, ~65 KB).
import { createHash, randomBytes } from "node:crypto";
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, GetCommand } from "@aws-sdk/lib-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import type { ClaimStepInput, ClaimStepResult, Episode, StepClaim } from "../core/episode-repository.js";
import type { TableClient } from "./dynamodb-batch.js";
import { itemBytes, writeUnits } from "./item-size.js";
import { CLAIM_SK, episodePk } from "./layout.js";

/** The claim names its request by 8 bytes of the id's SHA-256 (an id may be 255 characters). */
const requestHash = (requestId: string) =>
  createHash("sha256").update(requestId, "utf8").digest().subarray(0, 8);

/**
 * Granted when no attempt holds the episode, or the holder's deadline has passed, or the holder
 * ran on an older incarnation (a reset since) or an older version (it committed, or another step
 * committed over it). Incarnations start with their creation time in hex, so `<` orders them.
 */
const FREE_OR_SUPERSEDED =
  "attribute_not_exists(pk) OR until_ms < :now OR incarnation < :inc OR (incarnation = :inc AND base_version < :v)";

export class DynamoDbStepClaims {
  constructor(private readonly table: TableClient) {}

  async claim(input: ClaimStepInput): Promise<ClaimStepResult> {
    const { episode } = input;
    const pk = episodePk(episode.tenantId, episode.id);
    const attemptId = randomBytes(8).toString("hex");
    const item: Record<string, unknown> = {
      pk,
      sk: CLAIM_SK,
      incarnation: episode.incarnation,
      base_version: episode.version,
      until_ms: Math.ceil(input.untilMs),
      attempt_id: attemptId,
      ...(input.requestId !== undefined ? { request_hash: requestHash(input.requestId) } : {}),
      // A lapsed claim blocks nothing: DynamoDB's TTL (the local sweep) removes it, also when its
      // episode expired (the roll-up removes only version items then).
      expires_at: Math.ceil(input.untilMs / 1000),
    };
    this.table.stats.writes++;
    this.table.stats.writeUnits += writeUnits(itemBytes(item));
    try {
      await this.table.putItem(item, {
        ConditionExpression: FREE_OR_SUPERSEDED,
        ExpressionAttributeValues: marshall({
          ":now": input.nowMs,
          ":inc": episode.incarnation,
          ":v": episode.version,
        }),
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      });
      return { kind: "claimed", claim: { attemptId } };
    } catch (err) {
      if ((err as { name?: string }).name !== "ConditionalCheckFailedException") throw err;
      const raw = (err as { Item?: Record<string, AttributeValue> }).Item;
      const holder = raw ? unmarshall(raw, { wrapNumbers: false }) : await this.read(pk);
      const rid = holder?.request_hash;
      const sameRequest =
        input.requestId !== undefined &&
        rid instanceof Uint8Array &&
        Buffer.from(rid).equals(requestHash(input.requestId));
      const untilMs = Number(holder?.until_ms);
      return { kind: "held", sameRequest, untilMs: Number.isFinite(untilMs) ? untilMs : input.untilMs };
    }
  }

  /** Deletes the claim if this attempt still holds it (a step that did not commit). */
  async release(episode: Episode, claim: StepClaim): Promise<void> {
    this.table.stats.writes++;
    this.table.stats.writeUnits += 1;
    try {
      await this.table.doc.send(
        new DeleteCommand({
          TableName: this.table.tableName,
          Key: { pk: episodePk(episode.tenantId, episode.id), sk: CLAIM_SK },
          ConditionExpression: "attempt_id = :a",
          ExpressionAttributeValues: { ":a": claim.attemptId },
        }),
      );
    } catch (err) {
      // Taken over by another attempt after this one's deadline: it is theirs now.
      if ((err as { name?: string }).name !== "ConditionalCheckFailedException") throw err;
    }
  }

  /** The holder, for an endpoint that does not return it with the refusal (rare path). */
  private async read(pk: string): Promise<Record<string, unknown> | undefined> {
    this.table.stats.reads++;
    const out = await this.table.doc.send(
      new GetCommand({ TableName: this.table.tableName, Key: { pk, sk: CLAIM_SK }, ConsistentRead: true }),
    );
    return out.Item;
  }
}
