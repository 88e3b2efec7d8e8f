// The episode store is the DynamoDB adapter of the core's repository port now
// (dynamodb-episode-repository.ts); item layouts live in layout.ts. Kept for existing imports.
export { DynamoDbEpisodeRepository as EpisodeStore } from "./dynamodb-episode-repository.js";
export { episodePk } from "./layout.js";
