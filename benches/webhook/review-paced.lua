-- Like review.lua, but each connection waits PACE_MS between requests, so 64 connections offer
-- a steady load (about 64 * 1000 / PACE_MS reviews/s) instead of saturating the server.
dofile("benches/webhook/review.lua")
local pace = tonumber(os.getenv("PACE_MS") or "30")
function delay()
  return pace
end
