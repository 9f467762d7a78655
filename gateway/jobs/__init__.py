"""Asynchronous inference jobs (docs/jobs.md).

    submit.py     the policy: Prefer: respond-async → a job on the queue, 202 + Location
    api.py        GET / DELETE /v1/jobs/{id}, GET /v1/jobs
    records.py    what a job carries (request, outcome) and the API's view of it
    callbacks.py  which Callback-URL a tenant may give
    runner.py     one job run through the upstream client; worker.py: the executors
    webhooks.py   signed deliveries with retries and a dead letter; signing.py: the HMAC
    service.py    a process's workers and webhook sender; cli.py: `gateway worker`
The queue itself is in gateway/stores/ (jobs.py: the seams; memory and Redis Streams).
"""
