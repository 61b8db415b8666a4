"""One generation end to end, for every door: prepare (resolve, shape, count, fit), then start (admission
slot, engine stream) and iterate its neutral output events; closing it releases everything."""
