"""Development tools: what `make run` and operators use around the product, never imported by it."""
