"""Message Batches below the door: the facade (`BatchDesk`) and the runner that works through the items."""

from rolecall.service.batches.desk import BATCH_TTL, BatchDesk

__all__ = ["BATCH_TTL", "BatchDesk"]
