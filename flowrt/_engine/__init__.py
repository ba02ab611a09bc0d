"""The engine: a compiled plan executed by the scheduler, node attempts, maps, the run's life
(durable writer, events, results). It imports nothing of the web pages or the CLI."""
