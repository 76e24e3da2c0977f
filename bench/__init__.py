"""Load generator and benchmarks for the chat site (docs/performance.md says how to run them).

- `bench.server`: start daphne workers on a fresh database and a fresh channel-layer prefix,
  and end them by PID.
- `bench.seed`: create many users (and their sessions) straight in a database.
- `bench.site`: the HTTP side of the contract: sign up, sign in, create rooms.
- `bench.loadgen`: WebSocket clients in separate processes: connect, join, send at a fixed
  rate, record every delivery.
- `bench.run`: the standard scenarios (`make bench`); writes docs/performance.md.
"""
