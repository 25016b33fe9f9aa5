-- The Effect hello-world's one route, built per request like hit.lua (same client-side cost in wrk; the router
-- ignores the query string).
local ids = tonumber(os.getenv("BENCH_IDS") or "1000")

init = function(args)
  math.randomseed(os.time() + (tonumber(args[1]) or 0))
end

request = function()
  return wrk.format("GET", "/hello?id=" .. math.random(1, ids))
end
