// An episode's files on the wire: their types, the path as one URL segment, and bytes as base64
// (the upload body is JSON, so a browser cannot send it cross-site without a preflight).
import { BadRequestError } from "./errors.js";
import type * as wire from "./types.generated.js";

/** One file of an episode's directory (`files()`): its path relative to the directory and its size. */
export type EpisodeFile = wire.FileEntry;

/** The answer of `writeFile()`; `step_count` is the episode's new version (an upload commits like a step). */
export type FileWritten = wire.FileWritten;

/**
 * A file path as one URL segment ("/" encoded too, so "a/../b" reaches the server, which refuses
 * it, instead of being resolved by URL parsing); "." and ".." alone are refused here.
 * @internal
 */
export function filePathSegment(path: string): string {
  if (path === "." || path === "..") {
    throw new BadRequestError(`Invalid file path '${path}'.`, { status: 400, code: "invalid_path" });
  }
  return encodeURIComponent(path);
}

/** @internal */
export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
