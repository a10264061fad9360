"""The validating admission webhook, served by every replica (leader or
not: the Service sends reviews to any of them).

It keeps its own certificates (see ``certificates``): on start, and once a
day, it reads them from the chart's Secret, renews what is due (a write
conditional on the Secret's resourceVersion, so replicas starting together
agree on one chain), writes them to files kopf's webhook server serves and
reloads, and puts the CA into the chart's ValidatingWebhookConfiguration's
``caBundle``. Its RBAC is one Secret and one webhook configuration, by name.

The answers themselves are ``engine.admission_review`` (pure).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import pathlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf

from sluice import metrics
from sluice.certificates import Bundle, renewed
from sluice.engine.admission_review import PIPELINE_RUNS, PIPELINES, review
from sluice.kube import ApiError, KubeClient
from sluice.settings import Settings

log = logging.getLogger("sluice.webhook")

# How often the caBundle is checked (an upgrade or a restore may reset it),
# and how soon a failed step is tried again.
CHECK_SECONDS = 10.0
RETRY_SECONDS = 5.0
RENEWAL_CHECK_SECONDS = 24 * 3600.0
WEBHOOK_PATH = "/validate"
WEBHOOKS = frozenset({PIPELINES, PIPELINE_RUNS})


class AdmissionWebhook:
    def __init__(
        self,
        client: KubeClient,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.bundle: Bundle | None = None
        directory = pathlib.Path(settings.webhook_cert_dir)
        self.certfile = directory / "tls.crt"
        self.keyfile = directory / "tls.key"
        self._said: set[str] = set()

    @property
    def _secret_path(self) -> str:
        return f"/api/v1/namespaces/{self.settings.leader_namespace}/secrets/{self.settings.webhook_secret}"

    @property
    def _configuration_path(self) -> str:
        name = self.settings.webhook_configuration
        return f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}"

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("admission webhook: %s", message)

    async def run(self) -> None:
        """Serve until cancelled. Nothing that goes wrong (the API server
        restarting, a Secret edited by hand, certificates the server cannot
        load) ends it: each step is retried, and the server is started again.
        """
        await self._until_done(self.ensure_certificates)
        serving = asyncio.create_task(self._serve())
        try:
            while True:
                # The Secret is the one truth for every replica: read each
                # time, so a chain another replica stored is served here too,
                # and its CA is what goes into the caBundle.
                stored = await self._step(self.ensure_certificates)
                in_place = stored and await self._step(self.ensure_ca_bundle)
                if serving.done():
                    if not serving.cancelled() and serving.exception() is not None:
                        self._say_once(
                            "serving", f"the server stopped: {serving.exception()}; starting it again"
                        )
                    serving = asyncio.create_task(self._serve())
                await asyncio.sleep(CHECK_SECONDS if in_place else RETRY_SECONDS)
        finally:
            serving.cancel()

    async def _serve(self) -> None:
        server = kopf.WebhookServer(
            addr=None,  # every interface, IPv4 and IPv6
            port=self.settings.webhook_port,
            path=WEBHOOK_PATH,
            certfile=str(self.certfile),
            pkeyfile=str(self.keyfile),
            file_check_interval=10.0,
        )

        async def answer(
            request: Any,
            *,
            webhook: str | None = None,
            headers: dict[str, str] | None = None,
            sslpeer: dict[str, Any] | None = None,
        ) -> Any:
            # A 5,000-task pipeline takes seconds to check: not on the loop
            # that also reconciles (the leader answers reviews too).
            response = await asyncio.to_thread(review, request, webhook or "")
            allowed = response["response"]["allowed"]
            known = webhook if webhook in WEBHOOKS else "other"
            metrics.ADMISSION_REVIEWS.labels(known, str(allowed).lower()).inc()
            return response

        async for _ in server(answer):  # one yield per (re)start, e.g. after renewed files
            log.info("admission webhook: serving on port %d", self.settings.webhook_port)

    async def _until_done(self, step: Callable[[], Any]) -> None:
        done = await self._step(step)
        while not done:  # retried at an interval: nothing else would wake it
            await asyncio.sleep(RETRY_SECONDS)
            done = await self._step(step)

    async def _step(self, step: Callable[[], Any]) -> bool:
        try:
            return bool(await step())
        except asyncio.CancelledError:
            raise
        except ApiError as error:
            self._say_once(f"{error.status}{error.path}", f"{error} (retrying every {RETRY_SECONDS:g}s)")
        except Exception as error:  # a broken connection, a fenced write, a bad file: try again
            self._say_once(type(error).__name__, f"{error!r} (retrying every {RETRY_SECONDS:g}s)")
        return False

    async def ensure_certificates(self) -> bool:
        """Read the stored chain, store a renewed one if due, write the files."""
        secret = await self.client.get_optional(self._secret_path)
        if secret is None:
            self._say_once(
                "no-secret",
                f"Secret {self.settings.leader_namespace}/{self.settings.webhook_secret} is missing "
                "(the chart creates it): not serving until it exists",
            )
            return False
        bundle = Bundle.from_secret_data(secret.get("data"))
        fresh = renewed(bundle, self.settings.webhook_names, self.clock())
        if fresh is not None:
            try:
                await self.client.merge_patch(
                    self._secret_path,
                    {
                        "metadata": {"resourceVersion": secret["metadata"]["resourceVersion"]},
                        "data": fresh.secret_data(),
                    },
                )
            except ApiError as error:
                if error.conflict:  # another replica stored one first: use that
                    return False
                raise
            log.info(
                "admission webhook: stored a %s",
                "new CA and certificate" if bundle is None else "renewed chain",
            )
            bundle = fresh
        assert bundle is not None
        self._write_files(bundle)
        self.bundle = bundle
        return True

    def _write_files(self, bundle: Bundle) -> None:
        self.certfile.parent.mkdir(parents=True, exist_ok=True)
        # The key first, then the certificate: the server reloads on the certificate's change.
        for path, content in ((self.keyfile, bundle.key), (self.certfile, bundle.cert)):
            if not path.exists() or path.read_bytes() != content:
                staged = path.with_suffix(".tmp")
                staged.write_bytes(content)
                staged.chmod(0o600)
                staged.replace(path)

    async def ensure_ca_bundle(self) -> bool:
        """Put the CA into every webhook of the configuration; True once it is there."""
        assert self.bundle is not None
        configuration = await self.client.get_optional(self._configuration_path)
        if configuration is None:
            self._say_once(
                "no-configuration",
                f"ValidatingWebhookConfiguration {self.settings.webhook_configuration} is missing: "
                "nothing calls the webhook until it exists",
            )
            return False
        ca = base64.b64encode(self.bundle.ca_cert).decode()
        ops: list[dict[str, Any]] = []
        for index, hook in enumerate(configuration.get("webhooks") or ()):
            if (hook.get("clientConfig") or {}).get("caBundle") != ca:
                ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": ca})
        if ops:
            version = configuration["metadata"]["resourceVersion"]
            test = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
            await self.client.json_patch(self._configuration_path, [test, *ops])
            log.info("admission webhook: CA bundle set on %s", self.settings.webhook_configuration)
        return True
