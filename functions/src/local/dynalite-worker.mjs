// Boots the dynalite worker thread: registers tsx's loader in this thread, then loads the entry.
import { register } from "tsx/esm/api";

register();
await import("./dynalite-worker.ts");
