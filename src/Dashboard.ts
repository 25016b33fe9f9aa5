import { Layer } from "effect"
import * as Feed from "./Dashboard/Feed.js"
import * as Page from "./Dashboard/Page.js"

// A live view of the cache for people: the page at /dashboard (Page.ts, files in static/) draws the Server-Sent Events
// of /api/v1/cache/events (Feed.ts), which report what Activity.ts records of the requests while a page watches.

/**
 * The events endpoint's handlers (the HttpApi's "dashboard" group, which HttpLive leaves open), and the page, its
 * files and `/` pointing to it, served beside the HttpApi like /docs. Mounted where the service is composed, onto
 * HttpLive: the dashboard builds on HTTP's pieces, and HTTP knows nothing of it but the answers it publishes.
 */
export const Live = Layer.merge(Feed.FeedLive, Page.PageLive)
