// `<data folder>/stack.json`: where a running local stack is and its start-up credentials, so
// `npm run keys` (and anyone the user lets read the file) can reach its DynamoDB later. Readable
// by its owner only (mode 0600): the credentials are what keeps user code off these endpoints.
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface StackFile {
  readonly pid: number;
  readonly baseUrl: string;
  readonly dynamodbEndpoint: string;
  readonly executorEndpoint: string;
  readonly tableName: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly startedAt: string;
}

export const STACK_FILE = "stack.json";

export function writeStackFile(dataDir: string, info: Omit<StackFile, "pid" | "startedAt">): string {
  const path = join(dataDir, STACK_FILE);
  const temp = `${path}.${process.pid}.tmp`;
  const content: StackFile = { pid: process.pid, startedAt: new Date().toISOString(), ...info };
  writeFileSync(temp, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temp, 0o600); // the umask may have narrowed it further, never widened: make it exact
  renameSync(temp, path);
  return path;
}

/** Removes the file if it is still this process's (a newer stack may own the folder now). */
export function removeStackFile(dataDir: string): void {
  const path = join(dataDir, STACK_FILE);
  try {
    const current = JSON.parse(readFileSync(path, "utf8")) as Partial<StackFile>;
    if (current.pid === process.pid) rmSync(path, { force: true });
  } catch {
    /* gone or unreadable: nothing of ours to remove */
  }
}

/** The running stack recorded in a data folder, if any (a file left by a dead stack is ignored). */
export function readStackFile(dataDir: string): StackFile | undefined {
  let info: StackFile;
  try {
    info = JSON.parse(readFileSync(join(dataDir, STACK_FILE), "utf8")) as StackFile;
  } catch {
    return undefined;
  }
  try {
    process.kill(info.pid, 0);
    return info;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM" ? info : undefined;
  }
}
