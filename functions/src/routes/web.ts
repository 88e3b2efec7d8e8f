// The HumanAgent page and the Swagger UI assets (built into web/dist/ by `npm run build:web`).
import type { Context } from "hono";
import { Hono } from "hono";
import type { AppEnv, WebAsset } from "../http/types.js";

export function webRoutes(assets: Readonly<Record<string, WebAsset>>) {
  const app = new Hono<AppEnv>();
  for (const [path, asset] of Object.entries(assets)) {
    const serveAsset = (c: Context) =>
      c.body(asset.body, 200, { "Content-Type": asset.contentType, "Cache-Control": "no-cache" });
    app.get(path, serveAsset);
    if (path === "/web") app.get("/web/", serveAsset);
  }
  return app;
}
