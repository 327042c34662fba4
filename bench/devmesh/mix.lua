-- Request mix of the devmesh benchmark: every other request carries the sandbox routing key in a
-- realistic W3C baggage header with other members; the rest carry baggage without it.
local n = 0
local keyed = { ["Baggage"] = "userId=alice, sm-routing-key=benchkey;ttl=60, isProduction=false, tenant=acme" }
local plain = { ["Baggage"] = "userId=bob, isProduction=false, tenant=acme" }

request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("GET", "/api/items?id=42", keyed)
  end
  return wrk.format("GET", "/api/items?id=42", plain)
end

done = function(summary, latency, requests)
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status
  io.write(string.format("JSON %.1f %d %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), errs))
end
