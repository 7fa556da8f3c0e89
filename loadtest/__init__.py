"""Load testing and the capacity model for Pleno (see docs/loadtest.md, docs/capacity.md)."""
