-- wrk script: POST a realistic Deployment AdmissionReview to /validate.
local f = assert(io.open(os.getenv("REVIEW") or "benches/webhook/review.json", "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
