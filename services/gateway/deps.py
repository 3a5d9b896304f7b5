"""FastAPI dependencies every dialect's routes share: the Gateway and the resolved caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.auth import resolve_caller
from services.gateway.caller import Caller
from services.gateway.jobs import Gateway


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
CallerDep = Annotated[Caller, Depends(resolve_caller)]
