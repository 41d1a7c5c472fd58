"""`RemoteCloud`: a cloud behind the Open Inference Protocol (KServe, Triton, MLServer, `owsd serve-cloud`).

Only scrambled uint8 images ever reach it (it is not an `InProcessCloud`, so the plaintext baseline is refused).
Requests are retried with exponential backoff and full jitter on what a retry can fix (connection errors,
timeouts, 429, 503, and 500 if asked), never on a rejected request (400, 422); a batch that got its answer is
never sent again. A `Retry-After` header (seconds) on 429 or 503 sets the wait, up to `max_backoff`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
import tenacity
import torch

from owsd.components.cloud import Cloud, CloudClient
from owsd.errors import CloudResponseError, CloudUnavailableError, ConfigError
from owsd.serving.protocol import BINARY_EXTENSION, HEADER_LENGTH, ProtocolError, Tensor, decode, encode, loads

log = logging.getLogger(__name__)
PROBABILITY_TYPES = ("FP16", "FP32", "FP64")


class RemoteCloud(Cloud):
    """An Open Inference Protocol model over HTTP.

    Args:
        url: the server's base URL, e.g. `http://127.0.0.1:8080`.
        model: the model's name on the server.
        input_name: the input tensor's name; by default the model's only input in its metadata.
        output_name: the output tensor's name; by default the model's only output in its metadata.
        auth_header: the header that carries the credential.
        auth_env: environment variable holding the header's value (credentials never go in a config file).
        timeout: seconds allowed for connecting, and for each read or write.
        batch_size: images per request.
        concurrency: requests in flight at once.
        retries: further attempts after a retryable failure.
        backoff: seconds of the first retry's wait ceiling, doubling per attempt up to `max_backoff`.
        max_backoff: the longest wait before a retry, also when a 429 or 503 asks for longer with `Retry-After`.
        retry_on_500: also retry HTTP 500 (a server that fails transiently); off since a 500 may be permanent.
        binary: use binary tensors; by default when the server's metadata lists `binary_tensor_data`.
        trained_on: dataset splits the remote model was trained on, if known (see `Cloud.trained_on`).
    """

    def __init__(
        self,
        url: str,
        model: str,
        input_name: str | None = None,
        output_name: str | None = None,
        auth_header: str = "Authorization",
        auth_env: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 16,
        concurrency: int = 2,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        retry_on_500: bool = False,
        binary: bool | None = None,
        trained_on: list[str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"RemoteCloud url must start with http:// or https://, got {url!r}")
        for setting, value, least in (
            ("batch_size", batch_size, 1),
            ("concurrency", concurrency, 1),
            ("retries", retries, 0),
        ):
            if value < least:
                raise ConfigError(f"RemoteCloud {setting} must be at least {least}, got {value}")
        if timeout <= 0 or backoff < 0 or max_backoff < backoff:
            raise ConfigError("RemoteCloud needs timeout > 0 and 0 ≤ backoff ≤ max_backoff")
        self.url, self.model = url.rstrip("/"), model
        self.shown_url = without_userinfo(self.url)  # what ids, messages and logs name: never a password
        if urlsplit(self.url).password is not None:
            raise ConfigError(
                f"RemoteCloud url {self.shown_url} holds a password (user:password@): the url is written to "
                "config.yaml, output folders and a logger's config; put the header's value (e.g. `Basic ...`) in an "
                "environment variable and name it in auth_env"
            )
        credential = auth_env is not None or self.shown_url != self.url
        if credential and self.url.startswith("http://") and not is_loopback(self.url):
            raise ConfigError(
                f"RemoteCloud {self.shown_url}: a credential (auth_env or a user in the url) would cross "
                "the network in clear text over http://; use https:// (plain http is allowed on loopback only)"
            )
        self.input_name, self.output_name = input_name, output_name
        self.auth_header, self.auth_env = auth_header, auth_env
        self.timeout, self.batch_size, self.concurrency = timeout, batch_size, concurrency
        self.retries, self.backoff, self.max_backoff, self.retry_on_500 = retries, backoff, max_backoff, retry_on_500
        self.binary = binary
        self.trained_on = tuple(trained_on or ())

    @property
    def location(self) -> str:
        return self.shown_url

    @cached_property
    def cloud_id(self) -> str:
        """What the server says it serves (the model's metadata: name, versions, platform, tensors), asked once:
        the same server under another spelling of its URL is the same cloud; another model or version is not."""
        client = self.open()
        client.close()
        return client.cloud_id

    def open(self) -> RemoteCloudClient:
        """Connect: read the credential, the model's metadata and whether the server speaks binary tensors."""
        headers = {}
        if self.auth_env is not None:
            if self.auth_env not in os.environ:
                raise ConfigError(f"RemoteCloud auth_env: environment variable {self.auth_env} is not set")
            headers[self.auth_header] = os.environ[self.auth_env]
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        http = httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout, limits=limits)
        try:
            client = RemoteCloudClient(self, http)
        except BaseException:
            http.close()
            raise
        known = self.__dict__.get("cloud_id")  # what it served when this run named its cache
        if known is not None and client.cloud_id != known:
            client.close()
            raise CloudResponseError(
                f"the cloud at {self.shown_url} now serves {client.cloud_id}, not {known} as when this run began: "
                "its answers would not match the cache; run again"
            )
        return client


def served_identity(model: str, metadata: dict) -> str:
    """A cloud id from a model's v2 metadata: readable name and versions, and a digest of all of it."""
    canonical = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
    versions = ",".join(map(str, metadata.get("versions") or [])) or "unversioned"
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else model
    return f"remote-{name}-{versions}-sha256-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def without_userinfo(url: str) -> str:
    """`https://user:secret@host/path` → `https://host/path`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RemoteCloudClient(CloudClient):
    """An open connection: uint8 batches → N×C probabilities, `concurrency` requests at a time."""

    def __init__(self, cloud: RemoteCloud, http: httpx.Client) -> None:
        super().__init__(f"remote-{cloud.model}")  # until the server has said what it serves
        self.cloud, self.http = cloud, http
        self.retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._retryable),
            stop=tenacity.stop_after_attempt(cloud.retries + 1),
            wait=self._wait,
            reraise=True,
        )
        self._backoff = tenacity.wait_random_exponential(multiplier=cloud.backoff, max=cloud.max_backoff)
        metadata = self._json(self._request("GET", f"/v2/models/{cloud.model}"))
        self.cloud_id = served_identity(cloud.model, metadata)
        self.input_name = cloud.input_name or self._only(metadata, "inputs")
        self.output_name = cloud.output_name or self._only(metadata, "outputs")
        outputs = {o.get("name"): o for o in metadata.get("outputs", []) if isinstance(o, dict)}
        shape = outputs.get(self.output_name, {}).get("shape")
        self.num_classes = shape[-1] if isinstance(shape, list) and shape and shape[-1] > 0 else None
        self.binary = cloud.binary if cloud.binary is not None else self._speaks_binary()

    def close(self) -> None:
        self.http.close()

    def _classify(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.cpu()  # the bytes go over the wire from the host, whatever device scrambled them
        batches = [pixels[i : i + self.cloud.batch_size].numpy() for i in range(0, len(pixels), self.cloud.batch_size)]
        with ThreadPoolExecutor(self.cloud.concurrency) as pool:
            futures = [pool.submit(self._infer, batch) for batch in batches]
            try:
                answers = [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return torch.from_numpy(np.concatenate(answers)) if answers else torch.empty(0, self.num_classes or 0)

    def _infer(self, pixels: np.ndarray) -> np.ndarray:
        """One request (retried until answered): the probabilities of one batch, checked against the request."""
        fields = {
            "parameters": {"binary_data_output": self.binary},
            "outputs": [{"name": self.output_name, "parameters": {"binary_data": self.binary}}],
        }
        body, headers = encode(fields, "inputs", [Tensor(self.input_name, pixels, self.binary)])
        infer = f"/v2/models/{self.cloud.model}/infer"
        # A retried request may have reached the server before its answer was lost: count it as a resend.
        response = self._request(
            "POST", infer, lambda: self.record_resend(torch.from_numpy(pixels)), content=body, headers=headers
        )
        try:
            outputs = decode(response.content, response.headers.get(HEADER_LENGTH), "outputs").tensors
        except ProtocolError as error:
            raise self._bad_answer(f"is not a v2 response: {error}") from None
        tensor = next((t for t in outputs if t.name == self.output_name), None)
        if tensor is None:
            raise self._bad_answer(f"has no output {self.output_name!r}")
        probabilities = tensor.array
        if probabilities.dtype.kind != "f":
            raise self._bad_answer(
                f"has output {self.output_name!r} of type {probabilities.dtype}, not {'/'.join(PROBABILITY_TYPES)}"
            )
        expected = (len(pixels), self.num_classes or probabilities.shape[-1])
        if probabilities.shape != expected:
            raise self._bad_answer(f"has output shape {list(probabilities.shape)}, expected {list(expected)}")
        return probabilities.astype(np.float32)

    def _request(self, method: str, path: str, on_retry: Callable[[], None] | None = None, **kwargs) -> httpx.Response:
        """A response with status 200, after the retries the settings allow; anything else is one clear error.
        `on_retry` runs before each retry."""

        def before_retry(state: tenacity.RetryCallState) -> None:
            self._log_retry(state)
            if on_retry is not None:
                on_retry()

        try:  # a copy per call: threads
            response = self.retrying.copy(before_sleep=before_retry)(self._attempt, method, path, **kwargs)
        except (httpx.TransportError, _Retryable) as error:
            raise CloudUnavailableError(
                f"cloud at {self.cloud.shown_url} did not answer {method} {path} after {self.cloud.retries + 1} attempts: {_describe(error)}"
            ) from None
        if response.status_code != 200:
            kind = CloudUnavailableError if response.status_code >= 500 else CloudResponseError
            raise kind(f"cloud at {self.cloud.shown_url} refused {method} {path}: {_describe_response(response)}")
        return response

    def _attempt(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code in (429, 503) or (response.status_code == 500 and self.cloud.retry_on_500):
            raise _Retryable(response)
        return response

    def _speaks_binary(self) -> bool:
        """Triton (and `owsd serve-cloud`) list `binary_tensor_data` in the server metadata; MLServer does not."""
        try:
            response = self._request("GET", "/v2")
        except CloudResponseError:  # a server without the server-metadata endpoint speaks JSON
            return False
        extensions = self._json(response).get("extensions")
        return isinstance(extensions, list) and BINARY_EXTENSION in extensions

    def _json(self, response: httpx.Response) -> dict:
        try:
            value = loads(response.content)
        except ProtocolError as error:
            raise self._bad_answer(f"to {response.request.url.path} {error}") from None
        if not isinstance(value, dict):
            raise self._bad_answer(f"to {response.request.url.path} is not a JSON object")
        return value

    def _only(self, metadata: dict, key: str) -> str:
        names = [t.get("name") for t in metadata.get(key) or [] if isinstance(t, dict)]
        if len(names) != 1 or not isinstance(names[0], str):
            raise ConfigError(
                f"model {self.cloud.model} at {self.cloud.shown_url} has {key} {names}; set RemoteCloud {key[:-1]}_name"
            )
        return names[0]

    def _bad_answer(self, what: str) -> CloudResponseError:
        return CloudResponseError(
            f"the answer of the cloud at {self.cloud.shown_url} (model {self.cloud.model}) {what}"
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's `Retry-After` (in seconds, on 429 or 503) capped at `max_backoff`, else the jittered backoff."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Retryable) and error.response.status_code in (429, 503):
            seconds = _retry_after(error.response)
            if seconds is not None:
                return min(seconds, self.cloud.max_backoff)
        return self._backoff(state)

    def _retryable(self, error: BaseException) -> bool:
        return isinstance(error, (httpx.TransportError, _Retryable))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        log.warning(
            "cloud at %s: %s; retry %d of %d in %.2f s",
            self.cloud.shown_url,
            _describe(state.outcome.exception()),
            state.attempt_number,
            self.cloud.retries,
            state.next_action.sleep if state.next_action else 0.0,
        )


class _Retryable(Exception):
    """A status a retry may fix (429, 503, and 500 when allowed)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(_describe_response(response))
        self.response = response


def _retry_after(response: httpx.Response) -> float | None:
    """A `Retry-After` header's delay in seconds; None when absent or not a number (an HTTP date is ignored)."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, _Retryable) else f"{type(error).__name__}: {error}".rstrip(": ")


def _describe_response(response: httpx.Response) -> str:
    try:
        message = loads(response.content).get("error")
    except (ProtocolError, AttributeError):
        message = None
    return f"HTTP {response.status_code}" + (f": {message}" if isinstance(message, str) else "")
