"""Shared fixtures: the private RabbitMQ/PostgreSQL servers and quiet logging."""

from __future__ import annotations

import logging

import structlog

from tests.fixtures_services import postgres, rabbitmq

__all__ = ["postgres", "rabbitmq"]

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
