-- List-page hit: the first page, warmed before the run.
wrk.method = "GET"
wrk.path = "/api/v1/products?offset=0&limit=20"
