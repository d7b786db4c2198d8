-- wrk script for bench/vault.sh: GET /secrets/bench-N/ spread over the
-- seeded secrets, with the bearer token that vaultload wrote to a file.
local f = assert(io.open(os.getenv("KEYGATE_BENCH_TOKEN_FILE"), "r"))
local auth = "Bearer " .. f:read("*a")
f:close()
local secrets = tonumber(os.getenv("KEYGATE_BENCH_SECRETS") or "1000")
local n = 0

request = function()
  n = n + 1
  return wrk.format("GET", "/secrets/bench-" .. (n % secrets) .. "/?api-version=7.5",
    { ["Authorization"] = auth })
end
