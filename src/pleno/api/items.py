"""The items API: /api/v1/items."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pleno.api.deps import FAULT_INJECTION, ItemServiceDep
from pleno.api.errors import ProblemError
from pleno.db.models import DESCRIPTION_MAX, NAME_MAX

INT32_MAX = 2**31 - 1  # the INTEGER columns' range on PostgreSQL; larger values are client errors

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX)]
Quantity = Annotated[int, Field(ge=0, le=INT32_MAX)]
ItemId = Annotated[int, Path(ge=1, le=INT32_MAX)]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    quantity: Quantity = 0


class ItemUpdate(BaseModel):
    """Partial update: only the fields present change; an explicit null is rejected."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    quantity: Quantity | None = None

    @field_validator("name", "description", "quantity")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields the client sent (defaults are not validated).
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    quantity: int
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[ItemRead]
    total: int
    limit: int
    offset: int


async def require_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ProblemError(415, "send the body as application/json")


router = APIRouter(prefix="/api/v1/items", tags=["items"], dependencies=FAULT_INJECTION)


@router.post("", status_code=201, response_model=ItemRead, dependencies=[Depends(require_json)])
async def create_item(
    body: ItemCreate, service: ItemServiceDep, request: Request, response: Response
) -> ItemRead:
    item = await service.create(body.name, body.description, body.quantity)
    response.headers["Location"] = request.app.url_path_for("get_item", item_id=str(item.id))
    return ItemRead.model_validate(item)


@router.get("", response_model=ItemPage)
async def list_items(
    service: ItemServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> ItemPage:
    items, total = await service.list(limit, offset)
    return ItemPage(
        items=[ItemRead.model_validate(item) for item in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{item_id}", response_model=ItemRead)
async def get_item(item_id: ItemId, service: ItemServiceDep) -> ItemRead:
    return ItemRead.model_validate(await service.get(item_id))


@router.patch("/{item_id}", response_model=ItemRead, dependencies=[Depends(require_json)])
async def update_item(item_id: ItemId, body: ItemUpdate, service: ItemServiceDep) -> ItemRead:
    item = await service.update(item_id, body.model_dump(exclude_unset=True))
    return ItemRead.model_validate(item)


@router.delete("/{item_id}", status_code=204, response_class=Response)
async def delete_item(item_id: ItemId, service: ItemServiceDep) -> None:
    await service.delete(item_id)
