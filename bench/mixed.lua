-- Mixed: 95% GET by id, 5% PUT (a stock change) on random ids among 1..1000. Each PUT invalidates its id key and
-- every list key.
local ids = tonumber(os.getenv("BENCH_IDS") or "1000")
local putPercent = tonumber(os.getenv("BENCH_PUT_PERCENT") or "5")
local json = { ["Content-Type"] = "application/json" }

init = function(args)
  math.randomseed(os.time() + (tonumber(args[1]) or 0))
end

request = function()
  local id = math.random(1, ids)
  if math.random(1, 100) <= putPercent then
    return wrk.format("PUT", "/api/v1/products/" .. id, json, '{"stock":' .. math.random(0, 10000) .. "}")
  end
  return wrk.format("GET", "/api/v1/products/" .. id)
end
