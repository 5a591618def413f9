-- wrk script: the same upstream call mediagate makes, sent straight to nginx (the baseline).
wrk.method = "POST"
wrk.path = "/v1/images/generations"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"prompt":"benchmark tile","n":1,"size":"64x64","response_format":"b64_json"}'
