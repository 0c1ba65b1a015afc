"""Delivery: one attempt (:mod:`.worker`), and what decides which attempt runs next.

The embedded queue (:mod:`.embedded`) and RabbitMQ (:mod:`.broker`) only choose the next
delivery id; inbound polling (:mod:`.pollers`) brings packets from systems that do not push.
"""
