-- One hot key: every request reads the same product (BENCH_HOT_ID, default 1). With CACHE_TTL=2s its entry expires
-- every two seconds under a steady read rate: the refresh-ahead measurement counts the misses that expiry causes.
local id = os.getenv("BENCH_HOT_ID") or "1"

request = function()
  return wrk.format("GET", "/api/v1/products/" .. id)
end
