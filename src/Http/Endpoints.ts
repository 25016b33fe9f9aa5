import { Api } from "../Api.js"

/** A path template (`/api/v1/products/:id`) as a pattern for request paths; a trailing slash is tolerated. */
export const templatePattern = (template: string) => new RegExp("^" + template.replace(/:[^/]+/g, "[^/]+") + "/?$")

/**
 * Every endpoint of the HttpApi: for the 405's `Allow` header, the 400 of a path the router could not take, and the
 * route label of the metrics.
 */
export const endpoints = Object.values(Api.groups).flatMap((group) =>
  Object.values(group.endpoints).map((endpoint) => ({
    method: endpoint.method,
    template: endpoint.path,
    pattern: templatePattern(endpoint.path),
    pathSchema: endpoint.pathSchema
  }))
)

/** Served beside the HttpApi's own endpoints. */
export const docsPaths = { ui: "/docs", document: "/docs/openapi.json" } as const

/**
 * The dashboard's page and its files, also served beside the HttpApi (by Dashboard/Page.ts, mounted where the service
 * is composed): named here so that the route labels know them without HTTP importing the dashboard.
 */
export const dashboardPaths = { page: "/dashboard", file: "/dashboard/:file" } as const
