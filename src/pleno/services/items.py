"""Item use cases: what the API means, independent of HTTP and of the storage engine."""

from __future__ import annotations

from collections.abc import Mapping

from pleno.db.models import Item
from pleno.db.repository import DuplicateNameError, ItemRepository

__all__ = ["DuplicateNameError", "ItemNotFoundError", "ItemService"]


class ItemNotFoundError(Exception):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"item {item_id} does not exist")
        self.item_id = item_id


class ItemService:
    def __init__(self, repository: ItemRepository) -> None:
        self._repository = repository

    async def create(self, name: str, description: str, quantity: int) -> Item:
        return await self._repository.add(name, description, quantity)

    async def list(self, limit: int, offset: int) -> tuple[list[Item], int]:
        return await self._repository.page(limit, offset)

    async def get(self, item_id: int) -> Item:
        item = await self._repository.get(item_id)
        if item is None:
            raise ItemNotFoundError(item_id)
        return item

    async def update(self, item_id: int, changes: Mapping[str, object]) -> Item:
        item = await self.get(item_id)
        if not changes:
            return item
        return await self._repository.update(item, changes)

    async def delete(self, item_id: int) -> None:
        await self._repository.delete(await self.get(item_id))
