// The ApiError a core call rejects with; the test fails if the call resolves or rejects with
// anything else.
import { expect } from "vitest";
import { ApiError } from "../../functions/src/core/errors.js";

export async function failure(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}
