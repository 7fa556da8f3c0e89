"""Item persistence. Speaks SQLAlchemy; knows nothing of HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pleno.db.models import Item


class DuplicateNameError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"an item named {name!r} already exists")
        self.name = name


class ItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, name: str, description: str, quantity: int) -> Item:
        now = datetime.now(UTC)
        item = Item(
            name=name, description=description, quantity=quantity, created_at=now, updated_at=now
        )
        self._session.add(item)
        await self._flush_unique(name)
        await self._session.commit()
        return item

    async def get(self, item_id: int) -> Item | None:
        return await self._session.get(Item, item_id)

    async def page(self, limit: int, offset: int) -> tuple[list[Item], int]:
        total = await self._session.scalar(select(func.count()).select_from(Item))
        rows = await self._session.scalars(
            select(Item).order_by(Item.id).limit(limit).offset(offset)
        )
        return list(rows), total or 0

    async def update(self, item: Item, changes: Mapping[str, object]) -> Item:
        for field, value in changes.items():
            setattr(item, field, value)
        item.updated_at = datetime.now(UTC)
        await self._flush_unique(item.name)
        await self._session.commit()
        return item

    async def delete(self, item: Item) -> None:
        await self._session.delete(item)
        await self._session.commit()

    async def _flush_unique(self, name: str) -> None:
        try:
            await self._session.flush()
        except IntegrityError as error:
            await self._session.rollback()
            # The only unique constraint on items is the name.
            raise DuplicateNameError(name) from error
