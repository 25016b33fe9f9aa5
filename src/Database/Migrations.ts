import * as Migrator from "@effect/sql/Migrator"
import createProducts from "../migrations/0001_create_products.js"
import createCacheInvalidations from "../migrations/0002_create_cache_invalidations.js"
import notifyCacheInvalidations from "../migrations/0003_notify_cache_invalidations.js"
import createCacheEpoch from "../migrations/0004_create_cache_epoch.js"

/** Every migration, for both databases: each says where the dialects differ. */
export const loader = Migrator.fromRecord({
  "0001_create_products": createProducts,
  "0002_create_cache_invalidations": createCacheInvalidations,
  "0003_notify_cache_invalidations": notifyCacheInvalidations,
  "0004_create_cache_epoch": createCacheEpoch
})
