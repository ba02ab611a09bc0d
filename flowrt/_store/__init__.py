"""The stores' shared parts: the RunStore protocol, stored records, the claim rules both
stores call, SQLite and the SQL texts. It imports nothing of the engine."""
