"""``stepflow proxy --api URL``: the AWS CLI, SDKs and Terraform against a deployed StepFlow.

Point any Step Functions client at the proxy (``--endpoint-url
http://127.0.0.1:8788``); each request goes to the deployed API re-signed for
``execute-api`` with the credentials botocore finds in the proxy's process
(environment, ``--profile``, SSO, instance role). docs/proxy.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from stepflow.local.routes import Route
from stepflow.proxy.forward import (
    NO_CREDENTIALS,
    Forwarder,
    ProxyServer,
    Upstream,
)
from stepflow.proxy.signing import is_loopback, signing_region

DEFAULT_PORT = 8788


def build_forwarder(
    api: str, region: str | None, profile: str | None, timeout: float | None = None
) -> Forwarder:
    """The forwarder to ``api`` signing with ``profile``'s (None: the default chain) credentials.

    Raises click.UsageError for a bad URL, region or profile and
    click.ClickException (exit 1) when no credentials are found.
    """
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        upstream = Upstream.parse(api)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api") from None
    try:
        session = boto3.session.Session(profile_name=profile)
    except BotoCoreError as exc:  # ProfileNotFound
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    try:
        chosen = signing_region(api, region, session.region_name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # a broken profile, an expired SSO token
        raise click.ClickException(f"AWS credentials: {exc}") from None
    if credentials is None:
        raise click.ClickException(NO_CREDENTIALS)

    def frozen() -> Any:
        # Refreshable credentials (SSO, assumed roles, instance role) renew here.
        return credentials.get_frozen_credentials()

    forwarder = Forwarder(upstream, chosen, frozen)
    if timeout is not None:
        forwarder.timeout = timeout
    return forwarder


def serve(
    forwarder: Forwarder,
    host: str,
    port: int,
    *,
    host_given: bool,
    routes: Sequence[Route] = (),
    what: str = "proxy",
    quiet: bool = False,
) -> None:
    """Serve ``forwarder`` (and ``routes``) until interrupted, printing the URL first."""
    if host_given and not is_loopback(host):
        click.echo(
            f"warning: listening on {host}: anyone who reaches this port calls the API "
            "with your AWS credentials",
            err=True,
        )

    def log(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    try:
        server = ProxyServer(forwarder, host, port, allow_remote=host_given, routes=routes, log=log)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    upstream = forwarder.upstream
    click.echo(
        f"stepflow {what} on {server.url}{'/console/' if routes else ''} -> {upstream.url('/')} "
        f"(signed for execute-api in {forwarder.region})",
        err=False,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@click.command("proxy")
@click.option("--api", required=True, metavar="URL", help="the deployed stack's ApiUrl output")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1)")
@click.option("--region", default=None, help="the API's region (default: from the URL)")
@click.option("--profile", default=None, help="the AWS profile whose credentials sign")
@click.option(
    "--timeout", type=click.FloatRange(min=1.0), default=None, help="seconds per upstream call"
)
@click.option("-q", "--quiet", is_flag=True, help="do not log one line per request")
def proxy_command(
    api: str,
    port: int,
    host: str | None,
    region: str | None,
    profile: str | None,
    timeout: float | None,
    quiet: bool,
) -> None:
    """Serve a deployed StepFlow API locally, re-signing each request for execute-api.

    Then: aws stepfunctions list-state-machines --endpoint-url http://127.0.0.1:8788
    """
    forwarder = build_forwarder(api, region, profile, timeout)
    serve(forwarder, host or "127.0.0.1", port, host_given=host is not None, quiet=quiet)


CONSOLE_PORT = 8789


@click.command("console")
@click.option("--api", required=True, metavar="URL", help="the deployed stack's ApiUrl output")
@click.option("--port", type=click.IntRange(0, 65535), default=CONSOLE_PORT, show_default=True)
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1)")
@click.option("--region", default=None, help="the API's region (default: from the URL)")
@click.option("--profile", default=None, help="the AWS profile whose credentials sign")
@click.option("-q", "--quiet", is_flag=True, help="do not log one line per request")
def console_command(
    api: str, port: int, host: str | None, region: str | None, profile: str | None, quiet: bool
) -> None:
    """Serve the web console of a deployed StepFlow locally, its API calls signed for you.

    Then open http://127.0.0.1:8789/console/ (docs/console.md, docs/proxy.md).
    """
    forwarder = build_forwarder(api, region, profile)
    serve(
        forwarder,
        host or "127.0.0.1",
        port,
        host_given=host is not None,
        routes=console_routes(api, forwarder.region, profile),
        what="console",
        quiet=quiet,
    )


def console_routes(api: str, region: str, profile: str | None) -> list[Route]:
    """The console's files and graph endpoint, reading the deployed API through a signed client."""
    import boto3

    from stepflow.console import ConsoleRoute
    from stepflow.proxy.signing import api_client

    def client() -> Any:
        session = boto3.session.Session(profile_name=profile)
        return api_client(api, region=region, session=session)

    return [ConsoleRoute(client)]
