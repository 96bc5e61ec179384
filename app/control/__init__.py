"""Worker and queue control (W2): pause / resume queues, commands to workers, supervisor restarts.

`pauses` is the durable registry (Redis), `worker_side` enforces it inside every worker,
`queues` and `workers` are what the API, CLI and console call, `supervisor` restarts programs.
"""
