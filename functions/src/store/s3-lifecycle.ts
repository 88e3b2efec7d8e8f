// How long state objects live in the bucket, shared by the API (which copies an old object to a
// fresh key before a new version names it again) and the CDK bucket's lifecycle rule
// (infra/lib/state-bucket.ts), so the two can never disagree.
//
// The rule deletes every object LIFETIME days after it was written. A live episode's state object
// is named by its latest version, committed at most MAX_TTL (30 days, the longest `ttl_s`) ago; the
// API lets a new version name an existing object (an unchanged state, a fork) only while that
// object is younger than REUSE_MAX_AGE, else it copies it first. So an object a live episode names
// is at most REUSE_MAX_AGE + MAX_TTL = 58 days old, under the rule's 60. What the rule removes:
// objects of expired episodes, objects a deleted episode's forks shared, a lost race's object.

const DAY_MS = 86_400_000;
/** Days after which the bucket's lifecycle rule deletes a state object. */
export const STATE_OBJECT_LIFETIME_DAYS = 60;
/** The longest episode TTL (`ttl_s`, config.ts `maxTtlS`). */
export const MAX_EPISODE_TTL_DAYS = 30;
/** An object older than this is copied to a fresh key before a new version names it. */
export const REUSE_MAX_AGE_MS = (STATE_OBJECT_LIFETIME_DAYS - MAX_EPISODE_TTL_DAYS - 2) * DAY_MS;
