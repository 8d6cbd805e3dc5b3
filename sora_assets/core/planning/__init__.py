"""Planning: cost model, estimates, prices, fair share and the window solver."""
