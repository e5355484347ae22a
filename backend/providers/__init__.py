"""Model providers: one module per vendor behind one streaming interface (see base.py)."""
