-- wrk script: one Runware imageInference per request, each with a fresh v4 taskUUID (a
-- repeated taskUUID would be answered from the idempotency record instead of run).
-- The API key comes from the WRK_KEY environment variable.
local key = os.getenv("WRK_KEY") or error("set WRK_KEY")
local air = os.getenv("WRK_MODEL") or "bench:wrk-nginx@1"
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

local function uuid4()
  local t = {}
  for i = 1, 16 do t[i] = math.random(0, 255) end
  t[7] = (t[7] % 16) + 64   -- version 4
  t[9] = (t[9] % 64) + 128  -- RFC 4122 variant
  local h = {}
  for i = 1, 16 do h[i] = string.format("%02x", t[i]) end
  local s = table.concat(h)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" .. s:sub(17, 20) .. "-" .. s:sub(21, 32)
end

local headers = {
  ["Authorization"] = "Bearer " .. key,
  ["Content-Type"] = "application/json",
}

function request()
  local body = '[{"taskType":"imageInference","taskUUID":"' .. uuid4() ..
    '","positivePrompt":"benchmark tile","model":"' .. air ..
    '","width":64,"height":64,"outputType":"base64Data","outputFormat":"PNG"}]'
  return wrk.format("POST", "/v1", headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    failed = (failed or 0) + 1
    if (failed or 0) <= 3 then io.stderr:write("status " .. status .. ": " .. body:sub(1, 300) .. "\n") end
  end
end

function done(summary, latency, requests)
  io.write(string.format("gateway requests: %d non-2xx: %d socket errors: %d\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
