-- Writes only: PUT of the stock of a random id among 1..1000. Each invalidates its id key and every list page.
local ids = tonumber(os.getenv("BENCH_IDS") or "1000")
local json = { ["Content-Type"] = "application/json" }

init = function(args)
  math.randomseed(os.time() + (tonumber(args[1]) or 0))
end

request = function()
  return wrk.format("PUT", "/api/v1/products/" .. math.random(1, ids), json, '{"stock":' .. math.random(0, 10000) .. "}")
end
