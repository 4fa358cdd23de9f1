"""Read models shared by the portal (web/) and the JSON API: each function reads, never
writes, always filtered by the tenant, and returns frozen dataclasses that the portal
renders and the API serialises. Account roles come from chart.py, never from literal
account codes (REDESIGN.md §4 step 3)."""
