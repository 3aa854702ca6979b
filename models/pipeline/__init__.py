"""The offline pipeline: build every artifact serving needs, then load Redis (`make artifacts`)."""
