"""How it is measured: benchmark cases and grids, their inputs, the timers, the machine
record, the pytest plugin and the order, shards and partners of a sweep."""
