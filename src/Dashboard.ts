import * as Feed from "./Dashboard/Feed.js"
import * as Page from "./Dashboard/Page.js"

// A live view of the cache for people: the page at /dashboard (Page.ts, files in static/) draws the Server-Sent Events
// of /api/v1/cache/events (Feed.ts), which report what Activity.ts records of the requests while a page watches.

/** The events endpoint's handlers, for the HttpApi. */
export const FeedLive = Feed.FeedLive

/** The page, its scripts and styles, and `/` pointing to it: served beside the HttpApi, like /docs. */
export const PageLive = Page.PageLive

export const path = Page.dashboardPath
