"""Per-key limits (issue #11): the arithmetic (`state`), the counters behind it (`counters`), and the
limiter the generation pipeline asks before it starts (`limiter`)."""

from rolecall.service.limits.counters import LimitCounters, MemoryCounters
from rolecall.service.limits.limiter import UNLIMITED, Limiter, Ticket

__all__ = ["UNLIMITED", "LimitCounters", "Limiter", "MemoryCounters", "Ticket"]
