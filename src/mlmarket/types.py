"""Shared aliases, so signatures say which string they mean."""

from typing import Any

AccountId = str
Region = str
Arn = str
JsonDict = dict[str, Any]
