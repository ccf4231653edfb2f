"""Posts webhook deliveries over HTTP (`sharing.webhooks.WebhookSender`) with httpx.

The host is resolved and checked again at send time, and the connection goes to the address that
was checked (the original name still travels as `Host` and as the TLS server name, so the
certificate is verified against it): a DNS answer that changes between check and connect cannot
point a delivery into a private network. Redirects are not followed and no cookie is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from sharing.webhooks import WebhookSendError, resolve_url
from tenants.errors import Invalid

__all__ = ["HttpxWebhookSender"]


class HttpxWebhookSender:
    """One HTTP client for every delivery; `timeout` bounds a whole post, resolution included."""

    def __init__(self, timeout: float, allow_private: bool) -> None:
        self._timeout = timeout
        self._allow_private = allow_private
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            trust_env=False,  # a proxy from the environment would connect where it likes
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post(url, body, headers)
        except Invalid as exc:
            raise WebhookSendError(f"refused: {exc.detail}") from None
        except (TimeoutError, httpx.TimeoutException):
            raise WebhookSendError(f"no answer within {self._timeout:g} seconds") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise WebhookSendError(_describe(exc)) from None
        except OSError as exc:
            raise WebhookSendError(f"network error: {_describe(exc)}") from None

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        checked = await resolve_url(url, allow_private=self._allow_private)
        target = httpx.URL(checked.url)
        pinned = target.copy_with(host=checked.addresses[0])
        sent = {**headers, "Host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": target.raw_host.decode("ascii")}
        async with self._client.stream(
            "POST", pinned, content=body, headers=sent, extensions=extensions
        ) as response:
            return response.status_code  # the body is never read: nobody needs it

    async def aclose(self) -> None:
        await self._client.aclose()


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    name = type(exc).__name__
    return f"{name}: {text[:150]}" if text else name
