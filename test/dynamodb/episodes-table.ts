// The episodes table's key schema (pk, sk strings) on a dynalite store (in memory or on disk), for
// the tests that compare the local DynamoDB front with dynalite's own actions.
import { type DynaliteStore, runAction } from "../../functions/src/local/dynalite-store.js";

export const TableName = "episodes";

/** Creates the table and waits out dynalite's short CREATING state. */
export async function createEpisodesTable(store: DynaliteStore): Promise<void> {
  await runAction(store, "CreateTable", {
    TableName,
    AttributeDefinitions: [
      { AttributeName: "pk", AttributeType: "S" },
      { AttributeName: "sk", AttributeType: "S" },
    ],
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    BillingMode: "PAY_PER_REQUEST",
  });
  await new Promise((r) => setTimeout(r, 20));
}
