// The app's one error handler: every error becomes `{"error":{"code","message","details"?}}` with
// its status (a 422 also carries FastAPI's `detail` list), and nothing internal reaches a client.
import type { Context, ErrorHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import {
  ApiError,
  InternalError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../core/errors.js";
import type { AppLogger } from "./types.js";

/** The wire body of an error. */
export function errorBody(err: ApiError): Record<string, unknown> {
  const body: Record<string, unknown> = {
    error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
  };
  if (err instanceof ValidationError) body.detail = err.issues;
  return body;
}

/** An error thrown by Hono or a middleware that is not ours, as one of ours. */
function asApiError(err: Error, logger: AppLogger, c: Context): ApiError {
  if (err instanceof ApiError) return err;
  const status = (err as { status?: number }).status;
  if (status === 413) return new PayloadTooLargeError("Request body too large.");
  if (err instanceof HTTPException && err.status < 500) {
    if (err.status === 415) return new UnsupportedMediaTypeError();
    const code = err.status === 404 ? "not_found" : err.status === 405 ? "method_not_allowed" : "bad_request";
    return new ApiError(err.status, code, "The request could not be processed.");
  }
  logger.error("unhandled error", { error: String(err), stack: err.stack, path: c.req.path });
  return new InternalError();
}

/** The app's `onError`. */
export function errorHandler(logger: AppLogger): ErrorHandler {
  return (err, c) => {
    const apiErr = asApiError(err, logger, c);
    for (const [k, v] of Object.entries(apiErr.headers ?? {})) c.header(k, v);
    return c.json(errorBody(apiErr), apiErr.status as 400);
  };
}

/** The app's `notFound`: 404 `not_found` in the one shape. */
export function routeNotFound(): never {
  throw new NotFoundError("No such route.");
}

/** A known path asked with another method: 405 in the same shape. */
export function methodNotAllowed(): never {
  throw new MethodNotAllowedError();
}
