-- Cache miss by id: the same reads as hit.lua, run against instances started with CACHE_TTL=1ms, so every entry
-- has expired before it is read again (ids spread over 1..1000). The bench checks misses/request from the stats.
local ids = tonumber(os.getenv("BENCH_IDS") or "1000")

init = function(args)
  math.randomseed(os.time() + (tonumber(args[1]) or 0))
end

request = function()
  return wrk.format("GET", "/api/v1/products/" .. math.random(1, ids))
end
