"""``lgsp migrate``: moving an agency's legacy document archive to its new system.

A job lists the source archive once and keeps a manifest (every record, its register and
year, the SHA-256 of every file); converts each record into an edXML edoc and the status
packets of its processing history (:mod:`bus.migrate.convert`); submits them through the
bus's durable path in a lane of their own (:mod:`bus.migrate.lane`: rate-limited, giving
way to live traffic, pausable), with one exactly-once key per legacy record; and proves
the result (:mod:`bus.migrate.verify`): manifest, what was sent and the target's
acknowledgements compared, with a report in Vietnamese (HTML) and CSV.
"""
