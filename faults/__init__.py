"""The fault suite (`make faults`, issue 11): a real stack, real faults, an independent ledger.

Not part of `make test`: it starts private Redis and PostgreSQL servers and kills processes,
and a full run takes tens of minutes. See docs/reliability.md, "Running the fault suite".
"""
