"""Curation: quality filters, exact/near/semantic dedup, diversity, leakage checks, mixing, stats.

Every step measures, writes what it measured into ``metadata["curate"][step]``, then
keeps the record or rejects it with a reason; nothing is dropped silently.
"""
