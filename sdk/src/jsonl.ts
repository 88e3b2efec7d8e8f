// JSON Lines (one JSON value per line, `\n`-separated) read from a byte stream as the bytes arrive,
// so a long trajectory is never held whole in memory.
import { ServerError } from "./errors.js";

/**
 * Yields each line's parsed value in order. A line that is not JSON is a {@link ServerError}
 * (`invalid_response`); a failure of the stream itself is rethrown as it is.
 * @internal
 */
export async function* readJsonLines<T>(
  stream: ReadableStream<Uint8Array>,
  endpoint: string,
): AsyncGenerator<T, void, undefined> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let lineNumber = 0;
  const parse = (line: string): T => {
    lineNumber++;
    try {
      return JSON.parse(line) as T;
    } catch (err) {
      throw new ServerError(`${endpoint} answered line ${lineNumber}, which is not JSON`, {
        status: 200,
        code: "invalid_response",
        endpoint,
        cause: err,
      });
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffered += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline = buffered.indexOf("\n");
      while (newline !== -1) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line !== "") yield parse(line);
        newline = buffered.indexOf("\n");
      }
      if (done) break;
    }
    if (buffered.trim() !== "") yield parse(buffered.trim());
  } finally {
    // A consumer that stops early (break, return, throw) releases the connection.
    await reader.cancel().catch(() => undefined);
  }
}
