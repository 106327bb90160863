"""The Limits page: every flow-control limiter with its limits in force, the jobs active
and the starts in the window per key, and the waiting jobs it holds back; admins change a
limit or reset it to the declared one (POST forms with the CSRF token, like every other
action; see actions.py). The work is conveyor/flow/api.py's, the shape flow/view.py's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import InvalidOptionError, InvalidRequestError
from ..flow.api import OFF
from ..flow.view import limit_data
from .access import admin_form, viewer
from .session import session_of
from .views import base_path, dashboard_of, render

KEYS_SHOWN = 20  # per limiter on the page; `conveyor limits --json` and /v1/limits have all


async def limits_page(request: Request) -> Response:
    viewer(request)
    dash = dashboard_of(request)
    backend = await dash.backend()
    found = [limit_data(info) for info in await dash.conveyor.limits.alist()]
    return render(request, "limits.html", now=await backend.now(), limits=found,
                  keys_shown=KEYS_SHOWN)


def _cap(text: str) -> int | str | None:
    if not text:
        return None
    if text == OFF:
        return text
    if not text.isdigit():
        raise InvalidOptionError(f"concurrency must be a positive integer or 'off', not {text!r}")
    return int(text)


async def limit_action(request: Request) -> Response:
    _, form = await admin_form(request)
    queue, name = request.path_params["queue"], request.path_params["name"]
    verb = request.path_params["action"]
    dash = dashboard_of(request)
    await dash.backend()  # opens the app's backend on this loop
    rate, cap = (str(form.get(field) or "").strip() for field in ("rate", "concurrency"))
    try:
        if verb == "reset":
            await dash.conveyor.limits.areset(name, queue=queue)
            flash = ("ok", f"Reset {name} of queue {queue} to its declared limit.")
        elif verb == "set" and (rate or cap):
            done = limit_data(await dash.conveyor.limits.aset(
                name, queue=queue, rate_limit=rate or None, concurrency=_cap(cap)))
            flash = ("ok", f"Changed {name} of queue {queue}: rate {done['rate'] or 'none'}, "
                           f"concurrency {done['concurrency'] or 'none'} (from the next claim).")
        else:
            flash = ("error", "Give a rate (like 10/s, or off) and/or a concurrency.")
    except (InvalidOptionError, InvalidRequestError) as exc:
        flash = ("error", str(exc))
    session_of(request).set_flash(*flash)
    return RedirectResponse(f"{base_path(request)}/limits", status_code=303)


routes = [
    Route("/limits", limits_page, name="limits"),
    Route("/limits/{queue}/{name}/{action:str}", limit_action, methods=["POST"]),
]
