-- Cache hit by id: random ids among 1..1000 (the bench warms all of them first, so every read hits).
local ids = tonumber(os.getenv("BENCH_IDS") or "1000")

init = function(args)
  math.randomseed(os.time() + (tonumber(args[1]) or 0))
end

request = function()
  return wrk.format("GET", "/api/v1/products/" .. math.random(1, ids))
end
