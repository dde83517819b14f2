"""The built-in offline realtime model (``provider = "local"``)."""

from .model import OfflineModel

__all__ = ["OfflineModel"]
