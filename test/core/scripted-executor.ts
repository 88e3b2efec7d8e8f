// A scripted stand-in for the executor in the core's unit tier: each call's "state" is the list of
// code cells run so far (so a test sees exactly which cells ran, and how often), and a test may
// hold a call or shape its answer.
import type {
  DiscardRequest,
  ExecuteRequest,
  ExecuteResult,
  Executor,
} from "../../functions/src/executor/executor.js";

const decode = (snapshot: string | null) =>
  snapshot ? Buffer.from(snapshot, "base64").toString("utf8") : "";

export class ScriptedExecutor implements Executor {
  readonly calls: ExecuteRequest[] = [];
  readonly discards: DiscardRequest[] = [];
  /** Shapes (or holds) the next answers; the default answers after running the cell. */
  answer: ((req: ExecuteRequest) => Promise<Partial<ExecuteResult>> | Partial<ExecuteResult>) | undefined;

  async execute(req: ExecuteRequest): Promise<ExecuteResult> {
    this.calls.push(req);
    const shaped = (await this.answer?.(req)) ?? {};
    const ran = decode(req.snapshot) ? `${decode(req.snapshot)}|${req.code}` : req.code;
    return {
      stdout: `${req.code}\n`,
      stderr: "",
      exit_code: 0,
      snapshot: Buffer.from(ran, "utf8").toString("base64"),
      state_version: req.stateVersion + 1,
      duration_ms: 3,
      error_code: null,
      ...shaped,
    };
  }

  async discard(req: DiscardRequest): Promise<void> {
    this.discards.push(req);
  }

  /** The cells of a snapshot, in the order they ran. */
  static cells(snapshot: string | null): string[] {
    const text = decode(snapshot);
    return text === "" ? [] : text.split("|");
  }
}

/** A promise and its resolver, to hold a call until the test lets it go. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((r) => {
    open = r;
  });
  return { wait, open };
}
