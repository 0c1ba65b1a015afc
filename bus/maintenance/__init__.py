"""What an operator does to the bus's database outside of traffic: schema migrations
(``lgsp db``), backups (``lgsp backup`` / ``restore``), retention with legal holds
(``lgsp hold``, ``lgsp purge``)."""
